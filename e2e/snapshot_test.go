package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	sbruntime "github.com/starbook/starbook/runtime"
)

// TestSnapshotRestore: a node saving periodic snapshots keeps the newest
// two; `snapshot save` from it, SIGKILL, delete its data dir, `snapshot
// restore`, serve on the restored dir: every execution is intact and the
// pending approval, approved with the CLI, completes its run.
func TestSnapshotRestore(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	root := t.TempDir()
	data, snaps, file := filepath.Join(root, "data"), filepath.Join(root, "snaps"), filepath.Join(root, "backup.snapshot")
	d := startDaemon(t, data, "--snapshot-dir", snaps, "--snapshot-every", "100ms", "--snapshot-keep", "2")
	if _, err := d.Client.Apply(ctx, map[string]string{
		"steps.star": "def main(event):\n    return call(lambda: \"done\")\n",
		"gate.star":  "def main(event):\n    ok = wait_for_approval(\"go?\", approvers = [])\n    return call(lambda: \"approved\") if ok else \"no\"\n",
	}); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for range 3 {
		e, err := d.Client.Start(ctx, "steps", nil)
		if err != nil {
			t.Fatal(err)
		}
		if e, _, err = d.Client.Wait(ctx, e.ID, time.Minute); err != nil || e.Status != sbruntime.StatusCompleted {
			t.Fatalf("steps: %v %+v", err, e)
		}
		ids = append(ids, e.ID)
	}
	gate, err := d.Client.Start(ctx, "gate", nil)
	if err != nil {
		t.Fatal(err)
	}
	ids = append(ids, gate.ID)
	for approvals, _ := d.Client.Approvals(ctx); len(approvals) == 0; approvals, _ = d.Client.Approvals(ctx) {
		if ctx.Err() != nil {
			t.Fatal("no pending approval")
		}
		time.Sleep(20 * time.Millisecond)
	}
	before := map[string]string{}
	for _, id := range ids {
		before[id] = executionJSON(ctx, t, d, id)
	}
	if out, err := run(ctx, d.URL, "snapshot", "save", file); err != nil || !strings.Contains(out, "sha256 checked") {
		t.Fatalf("snapshot save: %v %s", err, out)
	}
	d.kill(t)
	// The kill may land while a snapshot is written: its .part is no
	// snapshot.
	saved, err := filepath.Glob(filepath.Join(snaps, "*.snapshot"))
	if err != nil {
		t.Fatal(err)
	}
	if len(saved) == 0 || len(saved) > 2 {
		entries, _ := os.ReadDir(snaps)
		t.Errorf("periodic snapshots: %v, want 1 or 2 (in %v)", saved, entries)
	}
	if err := os.RemoveAll(data); err != nil {
		t.Fatal(err)
	}

	if out, err := run(ctx, d.URL, "snapshot", "restore", file, "--data-dir", data); err != nil {
		t.Fatalf("snapshot restore: %v %s", err, out)
	}
	d = startDaemon(t, data)
	for _, id := range ids {
		if got := executionJSON(ctx, t, d, id); got != before[id] {
			t.Errorf("%s after restore:\n%s\nbefore:\n%s", id, got, before[id])
		}
	}
	if out, err := run(ctx, d.URL, "approve", gate.ID); err != nil {
		t.Fatalf("approve: %v %s", err, out)
	}
	e, _, err := d.Client.Wait(ctx, gate.ID, time.Minute)
	if err != nil || e.Status != sbruntime.StatusCompleted || string(e.Result) != `"approved"` {
		t.Fatalf("gate after approval: %v %+v", err, e)
	}
}

func executionJSON(ctx context.Context, t *testing.T, d *daemon, id string) string {
	t.Helper()
	e, history, err := d.Client.Execution(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(map[string]any{"execution": e, "history": history})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
