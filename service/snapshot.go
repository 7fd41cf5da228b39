package service

import (
	"context"
	"io"

	"github.com/starbook/starbook"
	"github.com/starbook/starbook/snapshot"
)

var _ starbook.Snapshotter = (*Service)(nil)

// Snapshot streams a snapshot of the etcd member the store's client is
// connected to (the whole keyspace, not only this store's prefix) to w.
func (s *Service) Snapshot(ctx context.Context, w io.Writer) (int64, error) {
	return snapshot.Stream(ctx, s.Store.Client(), w)
}
