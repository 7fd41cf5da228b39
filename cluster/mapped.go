package cluster

import (
	"fmt"
	"path/filepath"
	"runtime/debug"
	"runtime/metrics"

	"go.etcd.io/etcd/server/v3/storage/datadir"
)

// releaseMemory gives back to the system what the node holds and no longer
// needs: the heap's free pages (debug.FreeOSMemory) and its resident pages
// of the member's db file (releaseMapped). A failed release is logged.
func (e *Embedded) releaseMemory() {
	debug.FreeOSMemory()
	if _, err := e.releaseMapped(); err != nil {
		e.defrag.Logger.Warn("embedded etcd: release the mapped db file", "err", err)
	}
}

// trimFreeMin is the least free heap (not yet given back) that trim
// collects for: below it, a forced collection costs more than it returns.
const trimFreeMin = 32 << 20

// trim gives back what the reads of a quiet member left: the pages of the
// db file they mapped (a walk of every execution maps the whole file) and,
// when it holds trimFreeMin or more, the heap they freed, which the Go
// runtime would keep up to a tenth past its heap goal (at 100,000 stored,
// 120 MB of a node's 400 MB of heap after a walk of every page).
func (e *Embedded) trim() {
	if _, err := e.releaseMapped(); err != nil {
		e.defrag.Logger.Warn("embedded etcd: release the mapped db file", "err", err)
	}
	if reclaimable() >= trimFreeMin {
		debug.FreeOSMemory()
	}
}

// reclaimable estimates the heap bytes a collection and a scavenge would
// give back: the objects allocated beyond what the last collection found
// live, and the free pages not yet returned.
func reclaimable() uint64 {
	samples := []metrics.Sample{
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/gc/heap/live:bytes"},
		{Name: "/memory/classes/heap/free:bytes"},
	}
	metrics.Read(samples)
	var v [3]uint64
	for i, s := range samples {
		if s.Value.Kind() != metrics.KindUint64 {
			return 0
		}
		v[i] = s.Value.Uint64()
	}
	objects, live, free := v[0], v[1], v[2]
	return max(objects, live) - live + free
}

// releaseMapped drops this process's resident pages of the member's db
// file, which etcd maps whole and populates (MAP_POPULATE) at every open:
// after a restart or a defragmentation the node's RSS would count the whole
// file (136 MB of 526 with 100,000 stored), whatever its reads touch. The
// pages stay in the kernel's page cache: a read that needs one maps it again
// with a minor fault, and the kernel reclaims the rest under pressure as it
// would any cached file. It returns the bytes of mapping it released.
//
// A bbolt read transaction holds the mapping in place (bbolt remaps only
// once every read transaction is done), so the range released is the db
// file's and nothing else's: the advice runs inside one.
func (e *Embedded) releaseMapped() (int64, error) {
	path, err := filepath.Abs(datadir.ToBackendFileName(e.Etcd.Config().Dir))
	if err != nil {
		return 0, fmt.Errorf("release mapped db: %w", err)
	}
	if p, err := filepath.EvalSymlinks(path); err == nil {
		path = p
	}
	tx := e.Etcd.Server.Backend().ConcurrentReadTx()
	tx.RLock()
	defer tx.RUnlock()
	n, err := releaseMappedFile(path)
	if err != nil {
		return n, fmt.Errorf("release mapped db %s: %w", path, err)
	}
	return n, nil
}
