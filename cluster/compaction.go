package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
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
	// Quiet is how long the member must have taken at most QuietRevisions
	// new revisions before everything older is compacted (default 3s). A
	// burst's last Margin revisions are its tail, where its deleted keys
	// (index entries of runs that ended, folded history, folded rollup
	// deltas) lie: etcd keeps each on its heap and steps over it in every
	// read of its range until it is compacted, so an idle member drops them
	// at once instead of after Window. Nothing lags a member that writes
	// nothing, so no watch is cancelled by it.
	Quiet time.Duration
	// QuietRevisions is how many revisions a Quiet period may take and still
	// count as quiet (default 20: the leader's timers and heartbeats).
	QuietRevisions int64
	// QuietMin is how many revisions must have come since the last
	// compaction for a quiet member to compact (default
	// DefaultCompactionQuietMin, or Margin/20 when that is less). etcd's
	// compaction walks every revision it keeps, whatever it drops (its cost
	// follows the store, not the burst: a few seconds of a core at a
	// million stored), so a member that is quiet between a few writes does
	// not compact after each; the tail it leaves is that few.
	QuietMin int64
	// Gap is the least time between two compactions for Margin (default
	// 5s): each walks every revision kept and drops what is behind, so at
	// ten thousand txns a second compacting every look took 3% of the
	// node's CPU. The history then grows to Margin plus Gap's revisions.
	Gap time.Duration
	// Interval between looks at the current revision (default 1s; a look is
	// a read of the member's memory, not a request). Negative: no compaction
	// by the member, only etcd's hourly periodic one.
	Interval time.Duration
	// Trim is how often a quiet member gives back the memory reads left
	// (default 30s; see trim).
	Trim time.Duration
}

// DefaultCompactionMargin is how many revisions the embedded member keeps.
//
// A revision is a txn, and group commit puts the writes of a dozen
// executions in one: a 100,000-run burst took 9,300 revisions, so 10,000
// held its whole history (its deleted keys took 97 MB of etcd's index and
// made every read over an index prefix step over them: a page of 25 took 30
// ms instead of 5), and 2,000 still a fifth of it at the end (a page 18 ms,
// the node 1.2 GB). 500 revisions are still seconds of the busiest burst,
// more than a watch lags.
const DefaultCompactionMargin = 500

// DefaultCompactionQuietMin is how many revisions a quiet member compacts
// at least (Compaction.QuietMin).
const DefaultCompactionQuietMin = 100

func (c Compaction) withDefaults() Compaction {
	if c.Margin <= 0 {
		c.Margin = DefaultCompactionMargin
	}
	if c.Window <= 0 {
		c.Window = 5 * time.Minute
	}
	if c.Quiet <= 0 {
		c.Quiet = 3 * time.Second
	}
	if c.QuietRevisions <= 0 {
		c.QuietRevisions = 20
	}
	if c.QuietMin <= 0 {
		c.QuietMin = min(DefaultCompactionQuietMin, max(c.Margin/20, 1))
	}
	if c.Gap <= 0 {
		c.Gap = 5 * time.Second
	}
	if c.Interval == 0 {
		c.Interval = time.Second
	}
	if c.Trim <= 0 {
		c.Trim = 30 * time.Second
	}
	return c
}

// quiet reports whether the member took at most QuietRevisions revisions
// over the last Quiet period, from the revisions seen (oldest first) and
// the current one; false until it has looked for a whole period.
func (c Compaction) quiet(now time.Time, rev int64, seen []revisionAt) bool {
	for i := len(seen) - 1; i >= 0; i-- {
		if !seen[i].at.After(now.Add(-c.Quiet)) {
			return rev-seen[i].rev <= c.QuietRevisions
		}
	}
	return false
}

// revisionAt is the member's revision at a moment.
type revisionAt struct {
	at  time.Time
	rev int64
}

// compactionTarget returns the revision to compact to, or 0 for none: the
// history beyond Margin once it passes twice Margin and the last compaction
// (at last) is Gap old, every revision that is Window old, and every
// revision that is Quiet old when at most QuietRevisions came after it and
// QuietMin came before it since the last compaction; quiet reports that
// last case, a burst's end. seen holds the revisions looked at, oldest
// first; it returns those still younger than Window.
func (c Compaction) compactionTarget(now, last time.Time, rev, compacted int64, seen []revisionAt) (target int64, quiet bool, kept []revisionAt) {
	if t := rev - c.Margin; t-compacted >= c.Margin && !now.Before(last.Add(c.Gap)) {
		target = t
	}
	for i := len(seen) - 1; i >= 0; i-- {
		if !seen[i].at.After(now.Add(-c.Quiet)) {
			if q := seen[i].rev; rev-q <= c.QuietRevisions && q-compacted >= c.QuietMin && q >= target {
				target, quiet = q, true
			}
			break
		}
	}
	for len(seen) > 0 && !seen[0].at.After(now.Add(-c.Window)) {
		if seen[0].rev > target {
			target, quiet = seen[0].rev, false
		}
		seen = seen[1:]
	}
	if target <= compacted {
		return 0, false, append(seen, revisionAt{now, rev})
	}
	return target, quiet, append(seen, revisionAt{now, rev})
}

// compactLoop compacts the member's history as compactionTarget says, until
// ctx is done. A failed compaction is logged and tried again at the next look.
func (e *Embedded) compactLoop(ctx context.Context) {
	t := time.NewTicker(e.compaction.Interval)
	defer t.Stop()
	var compacted int64
	var last time.Time
	var seen []revisionAt
	trimmed := time.Now()
	for {
		var now time.Time
		select {
		case <-ctx.Done():
			return
		case now = <-t.C:
		}
		var target int64
		var burstOver bool
		rev := e.Etcd.Server.KV().Rev()
		if now.Sub(trimmed) >= e.compaction.Trim && e.compaction.quiet(now, rev, seen) {
			e.trim()
			trimmed = now
		}
		target, burstOver, seen = e.compaction.compactionTarget(now, last, rev, compacted, seen)
		if target == 0 {
			continue
		}
		// Each compaction waits for the last to be done: it walks every
		// revision kept, so at a million stored one takes seconds, and
		// compactions asked for faster than that would queue in the member.
		if err := e.compactTo(ctx, target); err != nil {
			if ctx.Err() != nil {
				return
			}
			e.defrag.Logger.Warn("embedded etcd compaction", "err", err)
			continue
		}
		compacted, last = target, time.Now()
		// A compaction hashes every revision it keeps, reading the whole
		// db file through the member's mapping: the pages it touched are
		// not the node's working set.
		if _, err := e.releaseMapped(); err != nil {
			e.defrag.Logger.Warn("embedded etcd: release the mapped db file", "err", err)
		}
		if burstOver {
			e.afterBurst(ctx)
		}
	}
}

// afterBurst is the member's upkeep once a burst's tail is compacted and the
// member is quiet, the time when blocking it costs least: the db file is
// defragmented if the burst left it worth shrinking (Maintain), and the heap
// that held the burst's history goes back to the system now rather than at
// the runtime's leisure, so that a node's memory after a burst is that of
// what it stores.
func (e *Embedded) afterBurst(ctx context.Context) {
	r, err := e.Maintain(ctx)
	if err != nil {
		if ctx.Err() == nil {
			e.defrag.Logger.Warn("embedded etcd maintenance after a burst", "err", err)
		}
	}
	if r.After == 0 { // Maintain frees the memory when it defragments
		e.releaseMemory()
	}
}

// compactTo compacts the member's history up to rev, and returns once the
// compacted revisions are gone from the member's index and file. A history
// compacted further already (by the leader's retention) is not an error.
func (e *Embedded) compactTo(ctx context.Context, rev int64) error {
	if _, err := e.Client.Compact(ctx, rev, clientv3.WithCompactPhysical()); err != nil && !errors.Is(err, rpctypes.ErrCompacted) {
		return fmt.Errorf("compact embedded etcd to revision %d: %w", rev, err)
	}
	return nil
}
