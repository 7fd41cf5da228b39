package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/starbook/starbook"
	sbruntime "github.com/starbook/starbook/runtime"
)

// TestChildRunbookAcrossKill: a parent waits on a child runbook that waits
// for an approval; the node is SIGKILLed and restarted, the child approved:
// there is exactly one child, and the parent completes with its result.
func TestChildRunbookAcrossKill(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the real binary")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dataDir := t.TempDir() + "/node"
	d := startDaemon(t, dataDir)
	if _, err := d.Client.Apply(ctx, map[string]string{
		"parent.star": `
def main(event):
    return {"child said": run_runbook("approver", {"pod": event.pod})}
`,
		"approver.star": `
def main(event):
    ok = wait_for_approval("Restart " + event.pod + "?", timeout = "1h")
    return {"approved": ok.approved, "by": ok.by, "pod": event.pod}
`}); err != nil {
		t.Fatal(err)
	}
	parent, err := d.Client.Start(ctx, "parent", json.RawMessage(`{"pod": "api-1"}`))
	if err != nil {
		t.Fatal(err)
	}
	children := func() []*sbruntime.Execution {
		t.Helper()
		list, err := d.Client.Executions(ctx, starbook.Filter{Runbook: "approver", Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		return list
	}
	var child []*sbruntime.Execution
	for len(child) == 0 {
		if ctx.Err() != nil {
			t.Fatal("no child started")
		}
		time.Sleep(20 * time.Millisecond)
		child = children()
	}
	awaitApprovals(ctx, t, d.Client, child[0].ID)
	if child[0].Trigger.Type != "runbook" || child[0].Trigger.Source != parent.ID {
		t.Errorf("the child's trigger: %+v, want runbook from %s", child[0].Trigger, parent.ID)
	}
	d.kill(t)

	d = startDaemon(t, dataDir)
	out, err := run(ctx, d.URL, "approve", child[0].ID, "--as", "alice")
	if err != nil || !strings.Contains(out, "approved by alice") {
		t.Fatalf("starbook approve: %v: %s", err, out)
	}
	end, history, err := d.Client.Wait(ctx, parent.ID, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if end.Status != sbruntime.StatusCompleted ||
		string(end.Result) != `{"child said":{"approved":true,"by":["alice"],"pod":"api-1"}}` {
		t.Fatalf("parent: %s %s %s", end.Status, end.Result, end.Error)
	}
	if n := len(children()); n != 1 {
		t.Errorf("%d children of the approver runbook, want exactly one", n)
	}
	if len(history) != 2 || history[0].Name != "run_runbook" || history[1].Name != "child."+child[0].ID {
		t.Errorf("parent history: %+v", history)
	}
	out, err = run(ctx, d.URL, "show", child[0].ID)
	if err != nil || !strings.Contains(out, "Parent:   "+parent.ID+" (its step 1)") {
		t.Errorf("starbook show of the child names no parent: %v\n%s", err, out)
	}
	out, err = run(ctx, d.URL, "show", parent.ID)
	if err != nil || !strings.Contains(out, "Children: "+child[0].ID+" (approver)") {
		t.Errorf("starbook show of the parent names no child: %v\n%s", err, out)
	}
}
