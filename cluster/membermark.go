package cluster

import (
	"encoding/json"
	"slices"
	"strings"

	"errors"
	"fmt"
	"go.etcd.io/etcd/server/v3/embed"
	"io/fs"
	"os"
	"path/filepath"
)

// A data dir that holds a member of a cluster of embedded members names it
// in a file beside etcd's dir: etcd itself starts such a dir as the member
// it holds whatever name it is given, so a node started on it with another
// --node-id would serve under a wrong name, and one started without
// --initial-cluster would wait for a quorum on a peer URL nobody dials.
// StartEmbedded refuses both with the flags to use.

// memberFile is the file naming the member a data dir holds.
func memberFile(dataDir string) string { return filepath.Join(dataDir, "member.json") }

// memberMark is memberFile's content.
type memberMark struct {
	Name string `json:"name"`
}

// WriteMemberMark records in dataDir that it holds member name, durably
// (written beside, fsynced, renamed into place).
func WriteMemberMark(dataDir, name string) error {
	data, err := json.Marshal(memberMark{Name: name})
	if err != nil {
		return err
	}
	tmp := memberFile(dataDir) + ".part"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("record member %s in %s: %w", name, dataDir, err)
	}
	_, werr := f.Write(append(data, '\n'))
	if serr := f.Sync(); werr == nil {
		werr = serr
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp, memberFile(dataDir))
	}
	if werr != nil {
		os.Remove(tmp)
		return fmt.Errorf("record member %s in %s: %w", name, dataDir, werr)
	}
	return nil
}

// readMemberMark returns the member dataDir holds, "" when it names none.
func readMemberMark(dataDir string) (string, error) {
	data, err := os.ReadFile(memberFile(dataDir))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read %s: %w", memberFile(dataDir), err)
	}
	var m memberMark
	if err := json.Unmarshal(data, &m); err != nil || m.Name == "" {
		return "", fmt.Errorf("%s does not name a member (%q): remove it only if this data dir holds no member of a cluster", memberFile(dataDir), data)
	}
	return m.Name, nil
}

// checkMemberMark refuses to start the member the data dir is marked as
// holding (held, "" for none) under another name (member: the MemberConfig
// started with, nil for a single node).
func checkMemberMark(dataDir, held string, member *MemberConfig) error {
	switch {
	case held == "":
		return nil
	case member == nil:
		return fmt.Errorf("data dir %s holds member %s of a cluster of embedded members: start it with --node-id %s --initial-cluster ... --peer-listen ...", dataDir, held, held)
	case member.Name != held:
		return fmt.Errorf("data dir %s holds member %s, not %s: start it with --node-id %s", dataDir, held, member.Name, held)
	}
	return nil
}

// checkStoredMember checks, once etcd is ready, that the member a data dir
// held before it had a member.json (or a single node's dir) is the one it
// was started as: etcd starts a dir with data as the member in it, whatever
// it is told. A single node's dir is the only member, at EmbeddedPeerURL; a
// member's peer URL is the one --initial-cluster gives it (etcd keeps the
// stored one, so a changed URL would be ignored silently).
func checkStoredMember(e *embed.Etcd, dataDir string, member *MemberConfig) error {
	members := e.Server.Cluster().Members()
	own := e.Server.Cluster().Member(e.Server.MemberID())
	if own == nil {
		return fmt.Errorf("data dir %s: etcd does not list its own member", dataDir)
	}
	// Peer URLs, not names: etcd has published the name it was started
	// with by now (the right start publishes the right one again).
	var urls []string
	for _, m := range members {
		urls = append(urls, m.PeerURLs...)
	}
	slices.Sort(urls)
	stored := "one member at " + strings.Join(urls, ",")
	if len(members) > 1 {
		stored = fmt.Sprintf("%d members at %s", len(members), strings.Join(urls, ","))
	}
	if member == nil {
		if len(members) != 1 || !slices.Equal(own.PeerURLs, []string{EmbeddedPeerURL}) {
			return fmt.Errorf("data dir %s holds a member of a cluster of embedded members (%s): start it with its --node-id, --initial-cluster and --peer-listen", dataDir, stored)
		}
		return nil
	}
	want := member.own()
	if slices.Equal(own.PeerURLs, []string{EmbeddedPeerURL}) {
		return fmt.Errorf("data dir %s holds a single node's store, not member %s: to make a cluster of it, save a snapshot and restore it once per member (starbook snapshot restore FILE --data-dir DIR --name NAME --initial-cluster ...)", dataDir, member.Name)
	}
	if want != nil && !slices.Contains(own.PeerURLs, want.PeerURL) {
		return fmt.Errorf("data dir %s holds a member whose peer URL is %s, not %s as --initial-cluster says (etcd keeps a member's stored peer URL; the cluster is %s)", dataDir, strings.Join(own.PeerURLs, ","), want.PeerURL, stored)
	}
	return nil
}
