package snapshot

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	etcdsnap "go.etcd.io/etcd/etcdutl/v3/snapshot"
	"go.uber.org/zap"

	"github.com/starbook/starbook/cluster"
)

// ErrDataDirInUse is the error, wrapped with the dir's name, of a restore
// into a data dir that already holds something.
var ErrDataDirInUse = errors.New("data dir already holds data")

// Restore makes dataDir, which must not exist or be empty, the data dir of
// a node whose embedded etcd holds exactly what the snapshot file at path
// holds; `starbook serve --data-dir dataDir` then starts on it. It runs
// offline: no node may use dataDir meanwhile.
//
// It checks the file's sha256 first (ErrCorrupt: nothing written), refuses
// a dataDir that holds anything (ErrDataDirInUse), restores into a
// temporary dir beside dataDir with etcd's own restore (which checks the
// hash again), and renames that into place: on error, dataDir is as it was.
// The restored member keeps the snapshot's keys, revision and leases (a
// lease is granted a fresh TTL when the member starts), under a new member
// and cluster id.
func Restore(path, dataDir string) (err error) {
	if err := Verify(path); err != nil {
		return fmt.Errorf("%w; nothing restored", err)
	}
	dataDir, err = filepath.Abs(dataDir)
	if err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	exists, err := checkEmpty(dataDir)
	if err != nil {
		return err
	}
	parent := filepath.Dir(dataDir)
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return fmt.Errorf("create parent of data dir: %w", err)
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dataDir)+".restore-")
	if err != nil {
		return fmt.Errorf("create restore dir beside %s: %w", dataDir, err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	url := cluster.EmbeddedPeerURL
	if err := etcdsnap.NewV3(zap.NewNop()).Restore(etcdsnap.RestoreConfig{
		SnapshotPath:        path,
		Name:                cluster.EmbeddedMemberName,
		OutputDataDir:       cluster.EmbeddedEtcdDir(tmp),
		PeerURLs:            []string{url},
		InitialCluster:      cluster.EmbeddedMemberName + "=" + url,
		InitialClusterToken: cluster.EmbeddedClusterToken,
	}); err != nil {
		return fmt.Errorf("restore %s: %w", path, err)
	}
	if err := syncDir(tmp); err != nil {
		return err
	}
	if exists {
		// Empty (checked above): os.Rename does not replace a directory.
		if err := os.Remove(dataDir); err != nil {
			return fmt.Errorf("replace empty data dir: %w", err)
		}
	}
	if err := os.Rename(tmp, dataDir); err != nil {
		return fmt.Errorf("move restored member into %s: %w", dataDir, err)
	}
	return syncDir(parent)
}

// checkEmpty reports whether dir exists, and fails if it holds anything or
// is not a directory.
func checkEmpty(dir string) (exists bool, err error) {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("data dir: %w", err)
	case len(entries) > 0:
		return true, fmt.Errorf("%s: %w (%s, ...): restore into a new directory, or move it aside first",
			dir, ErrDataDirInUse, entries[0].Name())
	}
	return true, nil
}
