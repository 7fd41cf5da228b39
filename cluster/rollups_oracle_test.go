package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/oklog/ulid/v2"
	clientv3 "go.etcd.io/etcd/client/v3"

	sbruntime "github.com/starbook/starbook/runtime"
)

// The exact SLO path before rollups, kept as the rollups' test oracle: it
// reads every execution record of the window.

// endedPage is how many execution records one read of EndedSince returns.
const endedPage = 1000

// EndedSince calls fn, oldest first, for every execution created at or after
// since that has ended. Ids sort by creation time, so this is one range read
// of executions/ from since's id on, paged endedPage records at a time at
// one revision (a consistent view). The executions fn gets carry only their
// id, runbook, status, trigger and timestamps: input, result and error are
// not decoded.
func (s *Store) EndedSince(ctx context.Context, since time.Time, fn func(*sbruntime.Execution)) error {
	var zero [10]byte
	from := s.k.execution(ulid.MustNew(ulid.Timestamp(since), bytesReader(zero[:])).String())
	end := clientv3.GetPrefixRangeEnd(s.k.executions())
	var rev int64
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(endedPage)}
		if rev > 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		resp, err := s.cli.Get(ctx, from, opts...)
		if err != nil {
			return fmt.Errorf("read executions since %s: %w", since.Format(time.RFC3339), err)
		}
		rev = resp.Header.Revision
		for _, kv := range resp.Kvs {
			var e struct {
				Runbook   string            `json:"runbook"`
				Status    sbruntime.Status  `json:"status"`
				Trigger   sbruntime.Trigger `json:"trigger"`
				CreatedAt time.Time         `json:"created_at"`
				UpdatedAt time.Time         `json:"updated_at"`
				EndedAt   *time.Time        `json:"ended_at"`
			}
			record, err := recordJSON(kv.Value)
			if err != nil {
				return fmt.Errorf("decode %s: %w", kv.Key, err)
			}
			if err := json.Unmarshal(record, &e); err != nil {
				return fmt.Errorf("decode %s: %w", kv.Key, err)
			}
			if !e.Status.Terminal() || e.EndedAt == nil {
				continue
			}
			fn(&sbruntime.Execution{ID: s.k.IDUnder(string(kv.Key), s.k.executions()), Runbook: e.Runbook, Status: e.Status,
				Trigger: e.Trigger, CreatedAt: e.CreatedAt, UpdatedAt: e.UpdatedAt, EndedAt: e.EndedAt})
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return nil
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}
