package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/starbook/starbook/builtins"
	"github.com/starbook/starbook/cluster"
	"github.com/starbook/starbook/service"
)

// TestSnapshotArgErrors: bad arguments to snapshot and serve's snapshot
// flags exit 1 with a message saying what is wrong, send no request and
// create no data dir (a member restore included: no --initial-cluster, no
// --name, an unknown one, a malformed list, --name and --node-id at odds).
func TestSnapshotArgErrors(t *testing.T) {
	dir := t.TempDir()
	existing := filepath.Join(dir, "existing.snapshot")
	if err := os.WriteFile(existing, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"save without FILE", []string{"snapshot", "save"}, "want FILE, got 0 arguments"},
		{"save with two files", []string{"snapshot", "save", "a", "b"}, "want FILE, got 2 arguments"},
		{"save over a file", []string{"snapshot", "save", existing}, "exists: choose another name, or --force"},
		{"save from several members", []string{"snapshot", "save", filepath.Join(dir, "new"), "--etcd-endpoint", "http://a:2379,http://b:2379"}, "name one member"},
		{"restore without FILE", []string{"snapshot", "restore", "--data-dir", dir}, "want FILE, got 0 arguments"},
		{"restore without --data-dir", []string{"snapshot", "restore", existing}, "--data-dir is required"},
		{"restore a file that is no snapshot", []string{"snapshot", "restore", existing, "--data-dir", filepath.Join(dir, "d")}, "integrity check failed"},
		{"restore a missing file", []string{"snapshot", "restore", filepath.Join(dir, "nope"), "--data-dir", filepath.Join(dir, "d")}, "no such file"},
		{"restore a member without --initial-cluster", []string{"snapshot", "restore", existing, "--data-dir", filepath.Join(dir, "d"), "--name", "m1"}, "--name m1 needs --initial-cluster"},
		{"restore a member without --name", []string{"snapshot", "restore", existing, "--data-dir", filepath.Join(dir, "d"), "--initial-cluster", "m1=http://127.0.0.1:2380"}, "--initial-cluster needs --name"},
		{"restore an unknown member", []string{"snapshot", "restore", existing, "--data-dir", filepath.Join(dir, "d"), "--node-id", "m4", "--initial-cluster", "m1=http://127.0.0.1:2380,m2=http://127.0.0.1:2381"}, `no member named "m4" (--name); members: m1, m2`},
		{"restore a member of a malformed cluster", []string{"snapshot", "restore", existing, "--data-dir", filepath.Join(dir, "d"), "--name", "m1", "--initial-cluster", "m1"}, `--initial-cluster: "m1" is not name=peerURL`},
		{"restore with --name and another --node-id", []string{"snapshot", "restore", existing, "--data-dir", filepath.Join(dir, "d"), "--name", "m1", "--node-id", "m2", "--initial-cluster", "m1=http://127.0.0.1:2380,m2=http://127.0.0.1:2381"}, "--name m1 and --node-id m2 differ"},
		{"verify without FILE", []string{"snapshot", "verify"}, "want FILE"},
		{"serve keeping no snapshot", []string{"serve", "--snapshot-dir", dir, "--snapshot-keep", "0"}, "--snapshot-dir: snapshots to keep 0"},
		{"serve snapshotting constantly", []string{"serve", "--snapshot-dir", dir, "--snapshot-every", "0s"}, "--snapshot-dir: snapshot interval 0s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := cli(t, nil, "", tc.args...)
			if res.code != 1 || !strings.Contains(res.stderr, tc.want) {
				t.Fatalf("exit %d, stderr %q; want 1 and %q", res.code, res.stderr, tc.want)
			}
			if res.requests != 0 {
				t.Errorf("%d requests sent", res.requests)
			}
			if _, err := os.Stat(filepath.Join(dir, "d")); err == nil {
				t.Errorf("a data dir was created")
			}
		})
	}
}

// save from a node over the API, verify, restore into a new data dir; a
// second restore into it is refused; restored as member m2 of a new cluster
// (--node-id, the alias of --name), it prints how to start that member.
func TestSnapshotSaveRestore(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	emb, err := cluster.StartEmbedded(ctx, cluster.EmbeddedConfig{Dir: t.TempDir(), Fast: true, NoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Close()
	store := cluster.NewStore(emb.Client, "/cli/")
	defer store.Close()
	svc := service.New(store, builtins.New(builtins.Options{}))
	if _, err := svc.Apply(ctx, map[string]string{"hello.star": "def main(event):\n    return 1\n"}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	file, data, member := filepath.Join(dir, "backup.snapshot"), filepath.Join(dir, "data"), filepath.Join(dir, "m2")
	const initial = "m1=http://127.0.0.1:2380,m2=http://127.0.0.1:2381"
	steps := []struct {
		args     []string
		code     int
		out, err string
	}{
		{[]string{"snapshot", "save", file}, 0, "saved " + file, ""},
		{[]string{"snapshot", "verify", file}, 0, "sha256 ok", ""},
		{[]string{"snapshot", "restore", file, "--data-dir", data}, 0, "starbook serve --data-dir " + data, ""},
		{[]string{"snapshot", "restore", file, "--data-dir", data}, 1, "", "data dir already holds data"},
		{[]string{"snapshot", "save", file, "--force"}, 0, "saved " + file, ""},
		{[]string{"snapshot", "restore", file, "--data-dir", member, "--node-id", "m2", "--initial-cluster", initial}, 0,
			"starbook serve --data-dir " + member + " --node-id m2 --initial-cluster " + initial + " --peer-listen", ""},
	}
	for _, s := range steps {
		res := cli(t, svc, "", s.args...)
		if res.code != s.code || !strings.Contains(res.stdout, s.out) || !strings.Contains(res.stderr, s.err) {
			t.Fatalf("%v: exit %d, stdout %q, stderr %q", s.args, res.code, res.stdout, res.stderr)
		}
	}
	for _, d := range []string{data, member} {
		if _, err := os.Stat(filepath.Join(cluster.EmbeddedEtcdDir(d), "member", "wal")); err != nil {
			t.Fatalf("restored data dir: %v", err)
		}
	}
}
