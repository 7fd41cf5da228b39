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
// ones freed (80 MB of heap for the same 48 MB); compacting what is older
// than Window frees the rest once the burst is over. Zero fields take the
// defaults.
type Compaction struct {
	// Margin is how many revisions are kept behind the current one (default
	// DefaultCompactionMargin). A watch further
	// behind than that is cancelled as compacted, and every watch in a node
	// then lists again. The member compacts down to Margin whenever the
	// history behind the current revision passes twice Margin.
	Margin int64
	// Window is how long a revision is kept however few came after it
	// (default 5m, as Kubernetes compacts its etcd): an idle member does not
	// hold a burst's last Margin revisions forever.
	Window time.Duration
	// Interval between looks at the current revision (default 1s; a look is
	// a read of the member's memory, not a request). Negative: no compaction
	// by the member, only etcd's hourly periodic one.
	Interval time.Duration
}

// DefaultCompactionMargin is how many revisions the embedded member keeps.
//
// A revision is a txn, and group commit puts the writes of dozens of
// executions in one: 10,000 revisions held a whole 100,000-run burst's
// history (its deleted keys took 97 MB of etcd's index and made every read
// over an index prefix step over them: a page of 25 took 30 ms instead of
// 5). 2,000 revisions are still seconds of the busiest burst, far more than
// a watch lags.
const DefaultCompactionMargin = 2_000

func (c Compaction) withDefaults() Compaction {
	if c.Margin <= 0 {
		c.Margin = DefaultCompactionMargin
	}
	if c.Window <= 0 {
		c.Window = 5 * time.Minute
	}
	if c.Interval == 0 {
		c.Interval = time.Second
	}
	return c
}

// revisionAt is the member's revision at a moment.
type revisionAt struct {
	at  time.Time
	rev int64
}

// compactionTarget returns the revision to compact to, or 0 for none: the
// history beyond Margin once it passes twice Margin, and every revision that
// is Window old. seen holds the revisions looked at, oldest first; it
// returns those still younger than Window.
func (c Compaction) compactionTarget(now time.Time, rev, compacted int64, seen []revisionAt) (int64, []revisionAt) {
	var target int64
	if t := rev - c.Margin; t-compacted >= c.Margin {
		target = t
	}
	for len(seen) > 0 && !seen[0].at.After(now.Add(-c.Window)) {
		target = max(target, seen[0].rev)
		seen = seen[1:]
	}
	if target <= compacted {
		target = 0
	}
	return target, append(seen, revisionAt{now, rev})
}

// compactLoop compacts the member's history as compactionTarget says, until
// ctx is done. A failed compaction is logged and tried again at the next look.
func (e *Embedded) compactLoop(ctx context.Context) {
	t := time.NewTicker(e.compaction.Interval)
	defer t.Stop()
	var compacted int64
	var seen []revisionAt
	for {
		var now time.Time
		select {
		case <-ctx.Done():
			return
		case now = <-t.C:
		}
		var target int64
		target, seen = e.compaction.compactionTarget(now, e.Etcd.Server.KV().Rev(), compacted, seen)
		if target == 0 {
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
