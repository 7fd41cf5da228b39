package service

import (
	"context"
	"errors"

	"github.com/starbook/starbook"
	"github.com/starbook/starbook/quota"
)

var _ starbook.StorageKeeper = (*Service)(nil)

// errNoGuard is a node started without a storage guard.
var errNoGuard = errors.New("this node has no storage guard")

// StoreSpace reads etcd's db size and quota now.
func (s *Service) StoreSpace(ctx context.Context) (*starbook.StoreSpace, error) {
	if s.Storage == nil {
		return nil, errNoGuard
	}
	r, err := s.Storage.Refresh(ctx)
	if err != nil {
		return nil, err
	}
	return s.space(r), nil
}

// FreeStore compacts, defragments and disarms (quota.Free), then reads the
// space again so that this node admits new runs at once if it may.
func (s *Service) FreeStore(ctx context.Context) (*starbook.StoreSpace, error) {
	if s.Storage == nil {
		return nil, errNoGuard
	}
	last, _ := s.Storage.Reading()
	res, err := quota.Free(ctx, s.Store.Client(), last.Quota, 0)
	if err != nil {
		return nil, err
	}
	r, err := s.Storage.Refresh(ctx)
	if err != nil {
		return nil, err
	}
	sp := s.space(r)
	sp.Freed = &starbook.StoreFreed{Compacted: res.Compacted, Disarmed: res.Disarmed, StillFull: res.Full}
	for _, m := range res.Members {
		sp.Freed.Members = append(sp.Freed.Members, starbook.StoreMemberFree{Endpoint: m.Endpoint, Before: m.Before,
			After: m.After, InUse: m.InUse, Quota: m.Quota, Took: m.Took})
	}
	return sp, nil
}

func (s *Service) space(r quota.Reading) *starbook.StoreSpace {
	sp := &starbook.StoreSpace{DBBytes: r.Size, InUse: r.InUse, Quota: r.Quota, Alarm: r.Alarm, At: r.At}
	if err := s.Storage.Admit(); err != nil {
		sp.Refusal = err.Error()
	}
	return sp
}
