package snapshot_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/starbook/starbook/builtins"
	"github.com/starbook/starbook/cluster"
	"github.com/starbook/starbook/node"
	sbruntime "github.com/starbook/starbook/runtime"
	"github.com/starbook/starbook/service"
	"github.com/starbook/starbook/snapshot"
)

// testNode is a node on an embedded etcd that a test stops itself.
type testNode struct {
	emb  *cluster.Embedded
	svc  *service.Service
	stop func()
}

// startNode starts a node named id on an embedded etcd in dir, with leader
// tasks built on the member's client; stop (also run at cleanup) stops it
// and the member.
func startNode(t *testing.T, dir, id string, tasks ...func(*clientv3.Client) func(context.Context)) *testNode {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	emb, err := cluster.StartEmbedded(ctx, cluster.EmbeddedConfig{Dir: dir, Fast: true, NoFsync: true})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	bi := builtins.New(builtins.Options{})
	store := cluster.NewStore(emb.Client, "/t/")
	cfg := node.Config{ID: id, Builtins: bi, SessionTTL: 2 * time.Second, StopGrace: time.Second}
	for _, task := range tasks {
		cfg.LeaderTasks = append(cfg.LeaderTasks, task(emb.Client))
	}
	n, err := node.New(ctx, store, cfg)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("node run: %v", err)
		}
		store.Close()
		emb.Close()
	}
	t.Cleanup(stop)
	svc := service.New(store, bi)
	svc.Node = n
	return &testNode{emb: emb, svc: svc, stop: stop}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 20s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

const (
	stepsRunbook = `
def main(event):
    a = call(lambda: "one")
    b = call(lambda: a + "+two")
    return {"n": event.n, "b": b}
`
	approvalRunbook = `
def main(event):
    ok = wait_for_approval("Restart " + event.pod + "?", approvers = [])
    if not ok:
        return "left alone"
    return call(lambda: "restarted " + event.pod)
`
)

// record is an execution and its history as JSON, for comparing.
func record(t *testing.T, svc *service.Service, id string) string {
	t.Helper()
	e, history, err := svc.Execution(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(map[string]any{"execution": e, "history": history})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// populate starts three runs that complete and one that waits for an
// approval; it returns their ids, the waiting one last, once all have
// ended or parked.
func populate(t *testing.T, tn *testNode) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := tn.svc.Apply(ctx, map[string]string{"steps.star": stepsRunbook, "restart.star": approvalRunbook}); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := range 3 {
		e, err := tn.svc.Start(ctx, "steps", json.RawMessage(`{"n": `+string(rune('0'+i))+`}`), sbruntime.Trigger{Type: "manual"})
		if err != nil {
			t.Fatal(err)
		}
		if e, err = tn.svc.AwaitEnd(ctx, e.ID); err != nil || e.Status != sbruntime.StatusCompleted {
			t.Fatalf("run %d: %v %+v", i, err, e)
		}
		ids = append(ids, e.ID)
	}
	e, err := tn.svc.Start(ctx, "restart", json.RawMessage(`{"pod": "web-1"}`), sbruntime.Trigger{Type: "manual"})
	if err != nil {
		t.Fatal(err)
	}
	pendingWait(t, tn, e.ID)
	return append(ids, e.ID)
}

// pendingWait waits for execution id to park on an approval and returns
// the wait's position.
func pendingWait(t *testing.T, tn *testNode, id string) string {
	t.Helper()
	var pos string
	waitFor(t, func() bool {
		pending, err := tn.svc.Store.PendingWaits(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range pending {
			if p.Wait.Execution == id {
				pos = p.Wait.Position
				return true
			}
		}
		return false
	})
	return pos
}

// Save, destroy the data dir, restore: every execution and its history is
// intact, and the pending approval can still be approved, completing its
// run on the restored node.
func TestSaveDestroyRestore(t *testing.T) {
	root := t.TempDir()
	data := filepath.Join(root, "data")
	tn := startNode(t, data, "n1")
	ids := populate(t, tn)
	before := map[string]string{}
	for _, id := range ids {
		before[id] = record(t, tn.svc, id)
	}
	file := filepath.Join(root, "backup.snapshot")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := snapshot.Save(ctx, tn.emb.Client, file); err != nil {
		t.Fatal(err)
	}
	tn.stop()
	if err := os.RemoveAll(data); err != nil {
		t.Fatal(err)
	}

	if err := snapshot.Restore(file, data); err != nil {
		t.Fatal(err)
	}
	tn = startNode(t, data, "n2")
	for _, id := range ids {
		if got := record(t, tn.svc, id); got != before[id] {
			t.Errorf("execution %s after restore:\n%s\nbefore:\n%s", id, got, before[id])
		}
	}
	waiting := ids[len(ids)-1]
	pos := pendingWait(t, tn, waiting)
	if _, err := tn.svc.Store.Decide(ctx, waiting, pos, sbruntime.Decision{User: "alice", Approve: true, Via: sbruntime.ViaCLI}); err != nil {
		t.Fatal(err)
	}
	e, err := tn.svc.AwaitEnd(ctx, waiting)
	if err != nil {
		t.Fatal(err)
	}
	if e.Status != sbruntime.StatusCompleted || string(e.Result) != `"restarted web-1"` {
		t.Fatalf("approved run after restore: %s %s %s", e.Status, e.Result, e.Error)
	}
}

// saved returns a snapshot file of a member holding a few executions.
func saved(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	tn := startNode(t, filepath.Join(root, "data"), "n1")
	populate(t, tn)
	file := filepath.Join(root, "backup.snapshot")
	if _, err := snapshot.Save(context.Background(), tn.emb.Client, file); err != nil {
		t.Fatal(err)
	}
	tn.stop()
	return file
}

// A corrupt or truncated file is refused with an integrity error naming it,
// by Restore (no data dir, no temporary dir left) and by WriteFile (no file).
func TestCorruptSnapshotRefused(t *testing.T) {
	good, err := os.ReadFile(saved(t))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		edit func([]byte) []byte
	}{
		{"byte flipped in the database", func(b []byte) []byte { b[len(b)/2] ^= 0x40; return b }},
		{"byte flipped in the trailer", func(b []byte) []byte { b[len(b)-1] ^= 0x01; return b }},
		{"truncated", func(b []byte) []byte { return b[:len(b)-4096] }},
		{"empty", func([]byte) []byte { return nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			file := filepath.Join(root, "bad.snapshot")
			bad := tt.edit(bytes.Clone(good))
			if err := os.WriteFile(file, bad, 0o600); err != nil {
				t.Fatal(err)
			}
			data := filepath.Join(root, "data")
			err := snapshot.Restore(file, data)
			if !errors.Is(err, snapshot.ErrCorrupt) || !strings.Contains(err.Error(), file) || !strings.Contains(err.Error(), "integrity") {
				t.Fatalf("Restore: %v, want an integrity error naming %s", err, file)
			}
			entries, _ := os.ReadDir(root)
			if len(entries) != 1 {
				t.Errorf("restore left %v beside the file", entries)
			}

			out := filepath.Join(root, "copy.snapshot")
			if _, err := snapshot.WriteFile(out, bytes.NewReader(bad)); !errors.Is(err, snapshot.ErrCorrupt) {
				t.Fatalf("WriteFile: %v, want ErrCorrupt", err)
			}
			if entries, _ := os.ReadDir(root); len(entries) != 1 {
				t.Errorf("WriteFile left %v", entries)
			}
		})
	}
}

// A data dir that holds anything is refused and left as it was; an empty
// one is restored into.
func TestRestoreDataDir(t *testing.T) {
	file := saved(t)
	tests := []struct {
		name    string
		prepare func(dir string) error
		wantErr error
	}{
		{"missing", func(string) error { return nil }, nil},
		{"empty", func(dir string) error { return os.Mkdir(dir, 0o700) }, nil},
		{"holds a node id", func(dir string) error {
			if err := os.Mkdir(dir, 0o700); err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(dir, "node-id"), []byte("n1\n"), 0o600)
		}, snapshot.ErrDataDirInUse},
		{"holds an etcd member", func(dir string) error { return os.MkdirAll(filepath.Join(dir, "etcd", "member"), 0o700) },
			snapshot.ErrDataDirInUse},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			dir := filepath.Join(root, "data")
			if err := tt.prepare(dir); err != nil {
				t.Fatal(err)
			}
			before := tree(t, root)
			err := snapshot.Restore(file, dir)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Restore: %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr != nil {
				if after := tree(t, root); after != before {
					t.Errorf("refused restore changed %s:\n%s\nwas:\n%s", root, after, before)
				}
				return
			}
			if _, err := os.Stat(filepath.Join(dir, "etcd", "member", "snap", "db")); err != nil {
				t.Errorf("restored member: %v", err)
			}
			if entries, _ := os.ReadDir(root); len(entries) != 1 {
				t.Errorf("restore left %v beside the data dir", entries)
			}
		})
	}
}

// tree lists every path under root.
func tree(t *testing.T, root string) string {
	t.Helper()
	var paths []string
	err := filepath.WalkDir(root, func(path string, _ os.DirEntry, err error) error {
		paths = append(paths, path)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(paths, "\n")
}

// The leader saves a snapshot every interval, names files by time, keeps
// the newest Keep and leaves other files in the dir alone; each kept file
// restores.
func TestPeriodic(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "snapshots")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, other := range []string{"notes.txt", "starbook-unfinished.snapshot.part"} {
		if err := os.WriteFile(filepath.Join(dir, other), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	saves := make(chan string, 100)
	p := snapshot.Periodic{Dir: dir, Every: 20 * time.Millisecond, Keep: 2,
		OnSaved:  func(path string, _ int64, _ time.Time) { saves <- path },
		OnFailed: func(err error) { t.Errorf("periodic snapshot: %v", err) }}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	tn := startNode(t, filepath.Join(root, "data"), "n1", p.Task)
	var got []string
	for len(got) < 5 {
		select {
		case path := <-saves:
			got = append(got, path)
		case <-time.After(20 * time.Second):
			t.Fatalf("%d snapshots saved in 20s: %v", len(got), got)
		}
	}
	tn.stop()
	for len(saves) > 0 {
		got = append(got, <-saves)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	want := []string{"notes.txt", filepath.Base(got[len(got)-2]), filepath.Base(got[len(got)-1]), "starbook-unfinished.snapshot.part"}
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Fatalf("snapshot dir holds %v, want %v", names, want)
	}
	for _, path := range got[len(got)-2:] {
		if err := snapshot.Verify(path); err != nil {
			t.Error(err)
		}
	}
}

func TestPeriodicValidate(t *testing.T) {
	tests := []struct {
		name string
		p    snapshot.Periodic
		want string
	}{
		{"ok", snapshot.Periodic{Dir: "d", Every: time.Hour, Keep: 24}, ""},
		{"no dir", snapshot.Periodic{Every: time.Hour, Keep: 24}, "dir"},
		{"no interval", snapshot.Periodic{Dir: "d", Keep: 24}, "interval"},
		{"keeps none", snapshot.Periodic{Dir: "d", Every: time.Hour}, "keep"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.p.Validate()
			if (err == nil) != (tt.want == "") || (err != nil && !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("Validate: %v, want %q", err, tt.want)
			}
		})
	}
}
