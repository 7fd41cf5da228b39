package snapshot_test

import (
	"go.etcd.io/etcd/client/pkg/v3/types"
	"go.etcd.io/etcd/server/v3/etcdserver/api/membership"
	"go.uber.org/zap"

	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/starbook/starbook/builtins"
	"github.com/starbook/starbook/cluster"
	"github.com/starbook/starbook/service"
	"github.com/starbook/starbook/snapshot"
)

// TestRestoreMemberRefused: a member restore whose --name and
// --initial-cluster do not name one member, or whose file or data dir is
// unfit, is refused with an error saying what is wrong, and the directory
// around the data dir is left exactly as it was (no data dir, no temporary
// dir beside it).
func TestRestoreMemberRefused(t *testing.T) {
	file := saved(t)
	bad := filepath.Join(t.TempDir(), "bad.snapshot")
	if err := os.WriteFile(bad, make([]byte, 4096), 0o600); err != nil {
		t.Fatal(err)
	}
	const three = "m1=http://127.0.0.1:12380,m2=http://127.0.0.1:22380,m3=http://127.0.0.1:32380"
	tests := []struct {
		name    string
		file    string
		member  snapshot.Member
		prepare func(dir string) error
		want    string
		wantErr error
	}{
		{name: "nothing named", member: snapshot.Member{}, want: "needs --name and --initial-cluster"},
		{name: "name without initial cluster", member: snapshot.Member{Name: "m1"},
			want: "--name m1 needs --initial-cluster"},
		{name: "initial cluster without name", member: snapshot.Member{InitialCluster: three},
			want: "--initial-cluster needs --name"},
		{name: "unknown name", member: snapshot.Member{Name: "m4", InitialCluster: three},
			want: `no member named "m4" (--name); members: m1, m2, m3`},
		{name: "entry without URL", member: snapshot.Member{Name: "m1", InitialCluster: "m1=http://127.0.0.1:1,m2"},
			want: `--initial-cluster: "m2" is not name=peerURL`},
		{name: "bad scheme", member: snapshot.Member{Name: "m1", InitialCluster: "m1=ftp://127.0.0.1:1"},
			want: "scheme must be http or https"},
		{name: "no port", member: snapshot.Member{Name: "m1", InitialCluster: "m1=http://127.0.0.1"},
			want: "want scheme://host:port"},
		{name: "duplicate name", member: snapshot.Member{Name: "m1", InitialCluster: "m1=http://127.0.0.1:1,m1=http://127.0.0.1:2"},
			want: `member "m1" appears twice`},
		{name: "duplicate URL", member: snapshot.Member{Name: "m1", InitialCluster: "m1=http://127.0.0.1:1,m2=http://127.0.0.1:1"},
			want: "peer URL http://127.0.0.1:1 appears twice"},
		{name: "bad member name", member: snapshot.Member{Name: "m/1", InitialCluster: "m/1=http://127.0.0.1:1"},
			want: "only letters, digits"},
		{name: "corrupt file", file: bad, member: snapshot.Member{Name: "m1", InitialCluster: three},
			want: "integrity check failed", wantErr: snapshot.ErrCorrupt},
		{name: "data dir holds a member", member: snapshot.Member{Name: "m1", InitialCluster: three},
			prepare: func(dir string) error { return os.MkdirAll(filepath.Join(dir, "etcd", "member"), 0o700) },
			want:    "data dir already holds data", wantErr: snapshot.ErrDataDirInUse},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			dir := filepath.Join(root, "data")
			if tt.prepare != nil {
				if err := tt.prepare(dir); err != nil {
					t.Fatal(err)
				}
			}
			if tt.file == "" {
				tt.file = file
			}
			before := tree(t, root)
			err := snapshot.RestoreMember(tt.file, dir, tt.member)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("RestoreMember(%+v): %v, want an error containing %q", tt.member, err, tt.want)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("RestoreMember: %v, want %v", err, tt.wantErr)
			}
			if after := tree(t, root); after != before {
				t.Errorf("refused restore changed %s:\n%s\nwas:\n%s", root, after, before)
			}
		})
	}
}

// TestRestoreMembers: one snapshot of a single node, restored once per
// member (m1, m2, m3 of one --initial-cluster) into three new data dirs,
// makes three members that start together as one new cluster of three
// holding the saved executions, histories and pending wait; nothing is left
// beside the data dirs.
func TestRestoreMembers(t *testing.T) {
	root := t.TempDir()
	tn := startNode(t, filepath.Join(root, "data"), "n1")
	ids := populate(t, tn)
	before := map[string]string{}
	for _, id := range ids {
		before[id] = record(t, tn.svc, id)
	}
	file := filepath.Join(root, "backup.snapshot")
	if _, err := snapshot.Save(context.Background(), tn.emb.Client, file); err != nil {
		t.Fatal(err)
	}
	tn.stop()

	var members []cluster.Member
	for i := range 3 {
		members = append(members, cluster.Member{Name: fmt.Sprintf("m%d", i+1), PeerURL: "http://" + freeAddr(t)})
	}
	initial := cluster.FormatInitialCluster(members)
	restored := filepath.Join(root, "restored")
	for _, m := range members {
		dir := filepath.Join(restored, m.Name)
		if err := snapshot.RestoreMember(file, dir, snapshot.Member{Name: m.Name, InitialCluster: initial}); err != nil {
			t.Fatalf("restore %s: %v", m.Name, err)
		}
		if _, err := os.Stat(filepath.Join(cluster.EmbeddedEtcdDir(dir), "member", "snap", "db")); err != nil {
			t.Fatalf("restored member %s: %v", m.Name, err)
		}
		if mark, err := os.ReadFile(filepath.Join(dir, "member.json")); err != nil || !strings.Contains(string(mark), `"name":"`+m.Name+`"`) {
			t.Errorf("restored member %s is marked %q (%v), want its name", m.Name, mark, err)
		}
	}
	if entries, _ := os.ReadDir(restored); len(entries) != 3 {
		t.Errorf("restores left %v, want the three data dirs only", entries)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	embs := make([]*cluster.Embedded, len(members))
	errs := make([]error, len(members))
	var wg sync.WaitGroup
	for i, m := range members { // no member is ready before a quorum runs
		wg.Go(func() {
			_, port, _ := strings.Cut(strings.TrimPrefix(m.PeerURL, "http://"), ":")
			embs[i], errs[i] = cluster.StartEmbedded(ctx, cluster.EmbeddedConfig{Dir: filepath.Join(restored, m.Name), NoFsync: true,
				Member: &cluster.MemberConfig{Name: m.Name, InitialCluster: members, PeerListen: "127.0.0.1:" + port, ReadyTimeout: 20 * time.Second}})
		})
	}
	wg.Wait()
	for i, e := range embs {
		if e != nil {
			t.Cleanup(e.Close)
		}
		if errs[i] != nil {
			t.Fatalf("start %s: %v", members[i].Name, errs[i])
		}
	}
	list, err := embs[0].Client.MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range list.Members {
		got = append(got, m.Name+"="+strings.Join(m.PeerURLs, "+"))
	}
	if !sameSet(got, strings.Split(initial, ",")) {
		t.Errorf("restored cluster's members: %v, want %s", got, initial)
	}
	// The restored cluster's id is not the one serve's token gives these
	// peer URLs: an old member on them would be refused, not taken for one.
	if old := clusterID(t, cluster.EmbeddedClusterToken, initial); uint64(old) == list.Header.ClusterId {
		t.Errorf("restored cluster has id %s, the one a cluster bootstrapped by serve on the same peer URLs has", old)
	}
	for i, e := range embs {
		store := cluster.NewStore(e.Client, "/t/")
		svc := service.New(store, builtins.New(builtins.Options{}))
		for _, id := range ids {
			if got := record(t, svc, id); got != before[id] {
				t.Errorf("execution %s on %s after restore:\n%s\nbefore:\n%s", id, members[i].Name, got, before[id])
			}
		}
		pending, err := store.PendingWaits(ctx)
		if err != nil || len(pending) != 1 || pending[0].Wait.Execution != ids[len(ids)-1] {
			t.Errorf("pending waits on %s: %v %+v, want the approval of %s", members[i].Name, err, pending, ids[len(ids)-1])
		}
		store.Close()
	}
}

// clusterID is the id etcd gives a cluster bootstrapped with token and the
// members of initial (name=peerURL,...).
func clusterID(t *testing.T, token, initial string) types.ID {
	t.Helper()
	urls, err := types.NewURLsMap(initial)
	if err != nil {
		t.Fatal(err)
	}
	c, err := membership.NewClusterFromURLsMap(zap.NewNop(), token, urls)
	if err != nil {
		t.Fatal(err)
	}
	return c.ID()
}

// freeAddr returns 127.0.0.1:port with a port free now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// sameSet reports whether a and b hold the same strings, in any order.
func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	seen := map[string]int{}
	for _, s := range a {
		seen[s]++
	}
	for _, s := range b {
		if seen[s]--; seen[s] < 0 {
			return false
		}
	}
	return true
}
