package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	sbruntime "github.com/starbook/starbook/runtime"
)

// Retention configures the leader's deletion of old executions.
type Retention struct {
	// Age: executions that ended longer ago than this are deleted (default 720h).
	Age time.Duration
	// Interval between passes; the first runs when leadership starts (default 10m).
	Interval time.Duration
	// Batch is how many executions one delete txn removes at most (default
	// 8: each is about fifteen ops); fewer when their ops would pass etcd's
	// default limit of 128 per txn.
	Batch int
	// CompactMargin is how many revisions compaction keeps behind the current
	// one (default 10000); negative: never compact.
	CompactMargin int64
	// Now is the clock deciding what is old; time.Now when nil.
	Now func() time.Time
	// Logger gets one line per pass that deleted something; nil discards.
	Logger *slog.Logger
	// OnPass, when set, is told each pass's outcome (tests, metrics).
	OnPass func(deleted int, err error)
}

// DefaultRetention is how long ended executions are kept.
const DefaultRetention = 720 * time.Hour

func (r Retention) withDefaults() Retention {
	if r.Age <= 0 {
		r.Age = DefaultRetention
	}
	if r.Interval <= 0 {
		r.Interval = 10 * time.Minute
	}
	if r.Batch <= 0 {
		r.Batch = 8
	}
	if r.CompactMargin == 0 {
		r.CompactMargin = 10_000
	}
	if r.Now == nil {
		r.Now = time.Now
	}
	if r.Logger == nil {
		r.Logger = slog.New(slog.DiscardHandler)
	}
	return r
}

// RetentionTask returns a leader task (NodeConfig.LeaderTasks) that deletes
// old executions and compacts etcd every r.Interval while the node leads.
func (s *Store) RetentionTask(r Retention) func(ctx context.Context) {
	r = r.withDefaults()
	return func(ctx context.Context) {
		t := time.NewTicker(r.Interval)
		defer t.Stop()
		for {
			n, err := s.Prune(ctx, r.Now().Add(-r.Age), r.Batch)
			if err == nil {
				_, err = s.PruneDeadEvents(ctx, r.Now().Add(-r.Age))
				err = s.PruneDays(ctx, r.Now().Add(-r.Age)) // usage and budget counters of old days
			}
			if err == nil && n > 0 && r.CompactMargin > 0 {
				_, err = s.Compact(ctx, r.CompactMargin)
			}
			switch {
			case ctx.Err() != nil:
				return
			case err != nil:
				r.Logger.Warn("retention", "err", err, "deleted", n)
			case n > 0:
				r.Logger.Info("retention: deleted ended executions", "deleted", n, "ended_before", r.Now().Add(-r.Age))
			}
			if r.OnPass != nil {
				r.OnPass(n, err)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}
}

// Prune deletes every execution that ended before cutoff with all it left
// behind: record, history, logs, approvals, notices and the trigger pointers
// that name it. Executions that have not ended are never touched. It
// returns how many it deleted.
func (s *Store) Prune(ctx context.Context, cutoff time.Time, batch int) (int, error) {
	if batch <= 0 {
		batch = 8
	}
	dedup, err := s.dedupPointers(ctx)
	if err != nil {
		return 0, err
	}
	deleted := 0
	var doomed []*sbruntime.Execution
	var ops []clientv3.Op
	flush := func() error {
		if len(doomed) == 0 {
			return nil
		}
		if _, err := s.cli.Txn(ctx).Then(ops...).Commit(); err != nil {
			return fmt.Errorf("delete ended executions: %w", err)
		}
		deleted += len(doomed)
		doomed, ops = doomed[:0], ops[:0]
		return nil
	}
	// Ids sort by creation time: one that was created after cutoff cannot
	// have ended before it, and neither can any later one.
	start, end := s.k.executions(), clientv3.GetPrefixRangeEnd(s.k.executions())
	const page = 500
	for {
		resp, err := s.cli.Get(ctx, start, clientv3.WithRange(end), clientv3.WithLimit(page),
			clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
		if err != nil {
			return deleted, fmt.Errorf("list executions: %w", err)
		}
		for _, kv := range resp.Kvs {
			e, err := s.k.decodeExecution(kv)
			if err != nil {
				continue // not ours to judge; leave it
			}
			if e.CreatedAt.After(cutoff) {
				return deleted, flush()
			}
			if e.Status.Terminal() && e.EndedAt != nil && e.EndedAt.Before(cutoff) {
				// A batch also stays under etcd's ops per txn: an alert's
				// run with a dead letter, a group and dedup keys has 18+.
				more := s.deleteOps(e, dedup[e.ID])
				if len(ops)+len(more) > defaultMaxTxnOps {
					if err := flush(); err != nil {
						return deleted, err
					}
				}
				doomed, ops = append(doomed, e), append(ops, more...)
				if len(doomed) == batch {
					if err := flush(); err != nil {
						return deleted, err
					}
				}
			}
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return deleted, flush()
		}
		start = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// deleteOps are the deletes of everything an ended execution left behind.
func (s *Store) deleteOps(e *sbruntime.Execution, dedup []string) []clientv3.Op {
	k, id := s.k, e.ID
	ops := []clientv3.Op{
		clientv3.OpDelete(k.execution(id)),
		clientv3.OpDelete(k.history(id), clientv3.WithPrefix()),
		clientv3.OpDelete(k.logs(id), clientv3.WithPrefix()),
		clientv3.OpDelete(k.waits(id), clientv3.WithPrefix()),
		clientv3.OpDelete(k.signals(id), clientv3.WithPrefix()),
		clientv3.OpDelete(k.legacySignalWaits(id), clientv3.WithPrefix()),
		clientv3.OpDelete(k.executionApprovals(id), clientv3.WithPrefix()),
		clientv3.OpDelete(k.executionNotices(id), clientv3.WithPrefix()),
		clientv3.OpDelete(k.cancel(id)),
		clientv3.OpDelete(k.active(e.Runbook, id)),
		clientv3.OpDelete(k.children(id), clientv3.WithPrefix()),
		clientv3.OpDelete(k.childEnd(id)),
	}
	ops = append(ops, k.deadLetterDeleteOps(e)...)
	ops = append(ops, k.indexDeleteOps(e)...)
	ops = append(ops, k.groupEndOps(e)...) // its end released it: defensive
	if e.Trigger.Type == "alert" && e.Trigger.Source != "" {
		ops = append(ops, clientv3.OpDelete(k.alertRun(e.Trigger.Source, id)))
	}
	for _, key := range dedup {
		ops = append(ops, clientv3.OpDelete(key))
	}
	return ops
}

// dedupPointers maps execution ids to the trigger dedup keys that name them.
// (Those keys expire with their lease too; retention does not wait for it.)
func (s *Store) dedupPointers(ctx context.Context) (map[string][]string, error) {
	resp, err := s.cli.Get(ctx, s.k.allDedup(), clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("list dedup keys: %w", err)
	}
	out := map[string][]string{}
	for _, kv := range resp.Kvs {
		id := strings.TrimSpace(string(kv.Value))
		out[id] = append(out[id], string(kv.Key))
	}
	return out, nil
}

// Compact compacts etcd's history up to margin revisions before the current
// one, so that deleted keys free their space. It returns the revision
// compacted to (0 if there was nothing to do).
func (s *Store) Compact(ctx context.Context, margin int64) (int64, error) {
	resp, err := s.cli.Get(ctx, s.k.probe("compact"), clientv3.WithCountOnly())
	if err != nil {
		return 0, fmt.Errorf("compact: %w", err)
	}
	target := resp.Header.Revision - margin
	if target <= 1 {
		return 0, nil
	}
	if _, err := s.cli.Compact(ctx, target); err != nil {
		if errors.Is(err, rpctypes.ErrCompacted) {
			return 0, nil // compacted further already (auto-compaction)
		}
		return 0, fmt.Errorf("compact to %d: %w", target, err)
	}
	return target, nil
}
