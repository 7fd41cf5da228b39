package snapshot

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	etcdsnap "go.etcd.io/etcd/etcdutl/v3/snapshot"
	"go.uber.org/zap"

	"github.com/starbook/starbook/cluster"
)

// ErrDataDirInUse is the error, wrapped with the dir's name, of a restore
// into a data dir that already holds something.
var ErrDataDirInUse = errors.New("data dir already holds data")

// Restore makes dataDir, which must not exist or be empty, the data dir of
// a single node whose embedded etcd holds exactly what the snapshot file at
// path holds; `starbook serve --data-dir dataDir` then starts on it (for
// the members of a cluster of embedded members, see RestoreMember). It
// runs offline: no node may use dataDir meanwhile.
//
// It checks the file's sha256 first (ErrCorrupt: nothing written), refuses
// a dataDir that holds anything (ErrDataDirInUse), restores into a
// temporary dir beside dataDir with etcd's own restore (which checks the
// hash again), and renames that into place: on error, dataDir is as it was.
// The restored member keeps the snapshot's keys, revision and leases (a
// lease is granted a fresh TTL when the member starts), under a new member
// and cluster id.
func Restore(path, dataDir string) error {
	url := cluster.EmbeddedPeerURL
	return restore(path, dataDir, etcdsnap.RestoreConfig{
		Name:                cluster.EmbeddedMemberName,
		PeerURLs:            []string{url},
		InitialCluster:      cluster.EmbeddedMemberName + "=" + url,
		InitialClusterToken: cluster.EmbeddedClusterToken,
	}, "")
}

// Member names the member RestoreMember builds: member Name of a new
// cluster of embedded members, each a `starbook serve --initial-cluster`
// process.
type Member struct {
	// Name is the member's name, serve's --node-id: one of InitialCluster's.
	Name string
	// InitialCluster is serve's --initial-cluster, "name=peerURL,...": every
	// member of the new cluster, which may have new peer URLs.
	InitialCluster string
}

// RestoreMember makes dataDir the data dir of member m.Name of a new cluster
// of the members m.InitialCluster lists, holding exactly what the snapshot
// file at path holds, as `etcdutl snapshot restore --name
// --initial-cluster --initial-advertise-peer-urls --initial-cluster-token`
// does: the member advertises its URL from m.InitialCluster, and the token
// is serve's suffixed with the file's hash (restoreToken). Restore every member of the list
// from the same file, each into its own data dir, then start each with
// `starbook serve --data-dir DIR --node-id NAME --initial-cluster ...
// --peer-listen ...`: a member with data ignores --initial-cluster and
// --initial-cluster-state, and the new cluster forms once a quorum runs.
//
// An m that does not name a member (no name, no or a malformed
// InitialCluster, a name not in it) is refused before anything is read or
// written; otherwise it behaves as Restore: sha256 checked first, dataDir
// must not exist or be empty, built beside it and renamed into place.
func RestoreMember(path, dataDir string, m Member) error {
	own, members, err := m.resolve()
	if err != nil {
		return fmt.Errorf("%w; nothing restored", err)
	}
	token, err := restoreToken(path)
	if err != nil {
		return fmt.Errorf("%w; nothing restored", err)
	}
	return restore(path, dataDir, etcdsnap.RestoreConfig{
		Name:                own.Name,
		PeerURLs:            []string{own.PeerURL},
		InitialCluster:      cluster.FormatInitialCluster(members),
		InitialClusterToken: token,
	}, own.Name)
}

// restoreToken is the cluster token of the members restored from the
// snapshot at path: serve's, suffixed with the start of the file's sha256
// (its trailer). Every member restored from one file shares it, so they
// form one cluster; etcd derives member and cluster ids from the token and
// the peer URLs, so a restored cluster on the old peer URLs gets new ids,
// and a member of the old cluster started on its old data is refused by
// the restored ones instead of taken for one of them. serve reads the
// token only to bootstrap an empty data dir, never for a restored one.
func restoreToken(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("open snapshot: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("snapshot %s: %w", path, err)
	}
	if info.Size() < trailer {
		return "", fmt.Errorf("snapshot %s: %w: %d bytes", path, ErrCorrupt, info.Size())
	}
	sum := make([]byte, trailer)
	if _, err := f.ReadAt(sum, info.Size()-trailer); err != nil {
		return "", fmt.Errorf("read snapshot %s: %w", path, err)
	}
	return fmt.Sprintf("%s-restored-%x", cluster.EmbeddedClusterToken, sum[:8]), nil
}

// resolve parses m.InitialCluster (as serve does) and finds m.Name in it.
func (m Member) resolve() (own cluster.Member, members []cluster.Member, err error) {
	switch {
	case m.Name == "" && m.InitialCluster == "":
		return own, nil, errors.New("restore of a cluster member needs --name and --initial-cluster")
	case m.InitialCluster == "":
		return own, nil, fmt.Errorf("--name %s needs --initial-cluster: every member of the new cluster, name=peerURL,...", m.Name)
	case m.Name == "":
		return own, nil, errors.New("--initial-cluster needs --name: the member this data dir becomes")
	}
	members, err = cluster.ParseInitialCluster(m.InitialCluster)
	if err != nil {
		return own, nil, err
	}
	names := make([]string, len(members))
	for i, c := range members {
		if c.Name == m.Name {
			return c, members, nil
		}
		names[i] = c.Name
	}
	return own, nil, fmt.Errorf("--initial-cluster has no member named %q (--name); members: %s",
		m.Name, strings.Join(names, ", "))
}

// restore restores the snapshot at path into dataDir as the member cfg
// describes (its SnapshotPath and OutputDataDir are filled in here), and
// marks it as holding member (cluster.WriteMemberMark) unless "" (a single
// node's): see Restore.
func restore(path, dataDir string, cfg etcdsnap.RestoreConfig, member string) (err error) {
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
	cfg.SnapshotPath, cfg.OutputDataDir = path, cluster.EmbeddedEtcdDir(tmp)
	if err := etcdsnap.NewV3(zap.NewNop()).Restore(cfg); err != nil {
		return fmt.Errorf("restore %s as member %s: %w", path, cfg.Name, err)
	}
	if member != "" {
		if err := cluster.WriteMemberMark(tmp, member); err != nil {
			return err
		}
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
