package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"time"
)

// Defrag configures the embedded member's defragmentation. Compaction frees
// the pages of old revisions inside etcd's db file but never shrinks the
// file, and the member keeps the whole file mapped and resident: a file that
// is mostly free pages costs the node memory for nothing. Defragmenting
// rewrites the file without them; it blocks every read and write of the
// member while it runs (about a second for a 230 MB file), so it is done only
// when a file worth shrinking is a tenth free or more. Zero fields take the
// defaults.
type Defrag struct {
	// Interval between checks (default 10m); negative: no periodic check
	// (Embedded.Maintain still defragments when called). Compaction, hourly
	// by etcd itself and after retention passes, is what frees the pages.
	Interval time.Duration
	// MinSize is the file size under which it is never defragmented
	// (default 32 MiB).
	MinSize int64
	// MaxInUse is the fraction of the file in use under which it is
	// defragmented (default 0.9). etcd counts a page in use while it holds
	// anything, and compaction leaves many pages part empty, so the file
	// shrinks much further than its free bytes: after 100k executions parked
	// among other work, a 234 MB file with 169 MB in use shrank to 134 MB;
	// parked while the member compacted as they came (see Compaction), a 110
	// MB file with 96 MB in use shrank to 74 MB.
	MaxInUse float64
	// Logger gets a line per defragmentation; nil discards.
	Logger *slog.Logger
	// OnCheck, when set, is told each periodic check's outcome (tests, metrics).
	OnCheck func(DefragResult, error)
}

// DefaultDefragMinSize is the smallest db file the embedded member defragments.
const DefaultDefragMinSize = 32 << 20

func (d Defrag) withDefaults() Defrag {
	if d.Interval == 0 {
		d.Interval = 10 * time.Minute
	}
	if d.MinSize <= 0 {
		d.MinSize = DefaultDefragMinSize
	}
	if d.MaxInUse <= 0 {
		d.MaxInUse = 0.9
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	return d
}

// maintenanceKey is written by Maintain: outside every node's prefix.
const maintenanceKey = "/.embedded-maintenance"

// backendCommitInterval is etcd's default --backend-batch-interval.
const backendCommitInterval = 100 * time.Millisecond

// DefragResult is the outcome of one check of the member's db file.
type DefragResult struct {
	Size  int64 // bytes of the file before
	InUse int64 // bytes of it in use before
	// After is the file's size after defragmenting, 0 when it was not.
	After int64
	Took  time.Duration
}

// Maintain defragments the member's db file if it is at least MinSize and
// less than MaxInUse of it is in use; it returns what it found and did. It
// blocks the member's reads and writes while it defragments. The member runs
// it every Defrag.Interval by itself.
func (e *Embedded) Maintain(ctx context.Context) (DefragResult, error) {
	d, ep := e.defrag, e.Client.Endpoints()[0]
	// The pages a compaction freed count as free only once two more backend
	// commits (every 100 ms, and only when something was written) have passed
	// the reads that could still see them: an idle member needs a nudge.
	for range 2 {
		if _, err := e.Client.Put(ctx, maintenanceKey, time.Now().UTC().Format(time.RFC3339Nano)); err != nil {
			return DefragResult{}, fmt.Errorf("embedded etcd maintenance write: %w", err)
		}
		select {
		case <-ctx.Done():
			return DefragResult{}, ctx.Err()
		case <-time.After(backendCommitInterval + 20*time.Millisecond):
		}
	}
	st, err := e.Client.Status(ctx, ep)
	if err != nil {
		return DefragResult{}, fmt.Errorf("embedded etcd status: %w", err)
	}
	r := DefragResult{Size: st.DbSize, InUse: st.DbSizeInUse}
	if r.Size < d.MinSize || float64(r.InUse) >= d.MaxInUse*float64(r.Size) {
		return r, nil
	}
	start := time.Now()
	if _, err := e.Client.Defragment(ctx, ep); err != nil {
		return r, fmt.Errorf("defragment embedded etcd (%d bytes, %d in use): %w", r.Size, r.InUse, err)
	}
	r.Took = time.Since(start)
	if st, err = e.Client.Status(ctx, ep); err != nil {
		return r, fmt.Errorf("embedded etcd status after defragmenting: %w", err)
	}
	r.After = st.DbSize
	// The old file's mapping is gone and the compaction that made the file
	// worth shrinking freed etcd's index entries of the old revisions: give
	// that memory back to the OS now. Go's scavenger would keep about a
	// tenth of the heap goal of it (23 MB of 209 with 100k parked). The new
	// file was mapped whole: its pages go too.
	e.releaseMemory()
	d.Logger.Info("embedded etcd defragmented", "size_before", r.Size, "in_use_before", r.InUse,
		"size_after", r.After, "took", r.Took)
	return r, nil
}

// maintainLoop runs Maintain every Interval until ctx is done, when the
// member is quiet: a defragmentation blocks every read and write (6 s for a
// 1.8 GB file, measured in a million-run burst, long enough to break the
// node's watches), and a busy member's burst ends in a defragmentation
// anyway (afterBurst).
func (e *Embedded) maintainLoop(ctx context.Context) {
	t := time.NewTicker(e.defrag.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if busy, err := e.busy(ctx); err != nil || busy {
			if ctx.Err() != nil {
				return
			}
			e.defrag.Logger.Debug("embedded etcd maintenance put off: the member is busy", "err", err)
			continue
		}
		r, err := e.Maintain(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			e.defrag.Logger.Warn("embedded etcd maintenance", "err", err)
		}
		if e.defrag.OnCheck != nil {
			e.defrag.OnCheck(r, err)
		}
	}
}

// busy reports whether the member took more than the compaction's
// QuietRevisions revisions over its Quiet period, waiting that period.
func (e *Embedded) busy(ctx context.Context) (bool, error) {
	from := e.Etcd.Server.KV().Rev()
	select {
	case <-ctx.Done():
		return false, ctx.Err()
	case <-time.After(e.compaction.Quiet):
	}
	return e.Etcd.Server.KV().Rev()-from > e.compaction.QuietRevisions, nil
}
