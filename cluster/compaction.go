package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// Compaction configures the embedded member's compaction of old revisions.
// etcd keeps every revision of every key until it is compacted: in its index
// on the Go heap and in its db file, which is mapped into the process. With
// etcd's hourly compaction, a busy hour's superseded revisions (a claim, its
// release, each status an execution passed through) pile up and are freed
// all at once, leaving the heap fragmented and the file full of holes: 100k
// parked executions started in a burst held 119 MB of heap for 48 MB of live
// objects. Compacting as the history grows lets new revisions reuse what old
// ones freed (80 MB of heap for the same 48 MB). Zero fields take the defaults.
type Compaction struct {
	// Margin is how many revisions are kept behind the current one (default
	// 10,000, as much as the leader's retention keeps). A watch further
	// behind than that is cancelled as compacted, and every watch in a node
	// then lists again. The member compacts down to Margin whenever the
	// history behind the current revision passes twice Margin.
	Margin int64
	// Interval between looks at the current revision (default 2s; a look is
	// a read of the member's memory, not a request). Negative: no compaction
	// by revision, only etcd's hourly periodic one.
	Interval time.Duration
}

// DefaultCompactionMargin is how many revisions the embedded member keeps.
const DefaultCompactionMargin = 10_000

func (c Compaction) withDefaults() Compaction {
	if c.Margin <= 0 {
		c.Margin = DefaultCompactionMargin
	}
	if c.Interval == 0 {
		c.Interval = 2 * time.Second
	}
	return c
}

// compactLoop compacts the member's history every time it has grown by
// Margin revisions beyond Margin, until ctx is done. A failed compaction is
// logged and tried again at the next look.
func (e *Embedded) compactLoop(ctx context.Context) {
	t := time.NewTicker(e.compaction.Interval)
	defer t.Stop()
	var compacted int64
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		target := e.Etcd.Server.KV().Rev() - e.compaction.Margin
		if target-compacted < e.compaction.Margin {
			continue
		}
		if err := e.compactTo(ctx, target); err != nil {
			if ctx.Err() != nil {
				return
			}
			e.defrag.Logger.Warn("embedded etcd compaction", "err", err)
			continue
		}
		compacted = target
	}
}

// compactTo compacts the member's history up to rev. A history compacted
// further already (by the leader's retention) is not an error.
func (e *Embedded) compactTo(ctx context.Context, rev int64) error {
	if _, err := e.Client.Compact(ctx, rev); err != nil && !errors.Is(err, rpctypes.ErrCompacted) {
		return fmt.Errorf("compact embedded etcd to revision %d: %w", rev, err)
	}
	return nil
}
