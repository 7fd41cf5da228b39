package cluster

import (
	"fmt"
	"path/filepath"
	"runtime/debug"

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
