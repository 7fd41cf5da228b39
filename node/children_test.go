package node_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/starbook/starbook"
	"github.com/starbook/starbook/builtins"
	"github.com/starbook/starbook/cluster"
	sbruntime "github.com/starbook/starbook/runtime"
)

var childRunbooks = map[string]string{
	"parent.star": `
def main(event):
    child_input = {"x": event.x, "wait": event.get("childwait", False)}
    if event.get("nowait"):
        return run_runbook("child", child_input, wait = False)
    return {"got": run_runbook("child", child_input)}
`,
	"child.star": `
def main(event):
    if event.get("wait"):
        wait_for_signal("go")
    if event.x < 0:
        fail("negative: %d" % event.x)
    return call(lambda: event.x * 21)
`,
	"deep.star": `
def main(event):
    return run_runbook("deep", {"n": (event or {}).get("n", 0) + 1})
`,
}

// TestChildRunbook: run_runbook starts a child whose record names its
// parent and waits for it: its result comes back, its failure is raised; the
// parent's step started exactly one child.
func TestChildRunbook(t *testing.T) {
	tn := startTestNode(t, t.TempDir())
	tn.apply(t, childRunbooks)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	e, history := tn.runToEnd(t, "parent", `{"x": 2}`)
	if e.Status != sbruntime.StatusCompleted || string(e.Result) != `{"got":42}` {
		t.Fatalf("parent: %s %s %s", e.Status, e.Result, e.Error)
	}
	children, err := tn.svc.Store.Children(ctx, e.ID)
	if err != nil || len(children) != 1 {
		t.Fatalf("children %v, %v: want one", children, err)
	}
	child, _, err := tn.svc.Execution(ctx, children[0])
	if err != nil {
		t.Fatal(err)
	}
	if child.Trigger.Type != cluster.TriggerRunbook || child.Trigger.Source != e.ID || child.Trigger.Attrs["position"] != "1" ||
		child.Trigger.Attrs["depth"] != "1" || child.Status != sbruntime.StatusCompleted {
		t.Errorf("child record: %+v %s", child.Trigger, child.Status)
	}
	if len(history) != 2 || history[0].Name != "run_runbook" || history[1].Name != "child."+child.ID {
		t.Errorf("parent history: %+v", history)
	}

	failed, _ := tn.runToEnd(t, "parent", `{"x": -1}`)
	if failed.Status != sbruntime.StatusFailed || !strings.Contains(failed.Error, "ended failed") ||
		!strings.Contains(failed.Error, "negative: -1") {
		t.Errorf("parent of a failed child: %s %s", failed.Status, failed.Error)
	}
}

// TestChildRunbookNoWaitAndCancel: wait = False returns the child's id at
// once; cancelling a parent cancels its children that have not ended.
func TestChildRunbookNoWaitAndCancel(t *testing.T) {
	tn := startTestNode(t, t.TempDir())
	tn.apply(t, childRunbooks)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e, _ := tn.runToEnd(t, "parent", `{"x": 1, "nowait": true, "childwait": true}`)
	var out struct{ ID, Runbook string }
	if err := json.Unmarshal(e.Result, &out); err != nil || out.Runbook != "child" || out.ID == "" {
		t.Fatalf("wait = False: %s %s (%v)", e.Status, e.Result, err)
	}
	child, _, err := tn.svc.Execution(ctx, out.ID)
	if err != nil || child.Status.Terminal() {
		t.Fatalf("child %+v, %v: want it waiting", child, err)
	}

	// A parent waiting on a child that waits: cancel the parent.
	parent, err := tn.svc.Start(ctx, "parent", json.RawMessage(`{"x": 1, "childwait": true}`), sbruntime.Trigger{Type: "manual"})
	if err != nil {
		t.Fatal(err)
	}
	var kid *sbruntime.Execution
	for kid == nil || kid.Status != sbruntime.StatusWaiting {
		if ctx.Err() != nil {
			t.Fatalf("the child never waited: %+v", kid)
		}
		time.Sleep(10 * time.Millisecond)
		if kids, _ := tn.svc.Store.Children(ctx, parent.ID); len(kids) == 1 {
			kid, _, _ = tn.svc.Execution(ctx, kids[0])
		}
	}
	if _, err := tn.svc.Cancel(ctx, parent.ID); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{parent.ID, kid.ID} {
		end, err := tn.svc.AwaitEnd(ctx, id)
		if err != nil || end.Status != sbruntime.StatusCancelled {
			t.Errorf("%s after the parent's cancel: %+v, %v", id, end, err)
		}
	}
}

// TestChildRunbookDepth: a runbook that starts itself stops at the depth
// limit, with an error naming it.
func TestChildRunbookDepth(t *testing.T) {
	tn := startTestNode(t, t.TempDir())
	tn.apply(t, childRunbooks)
	e, _ := tn.runToEnd(t, "deep", "")
	if e.Status != sbruntime.StatusFailed || !strings.Contains(e.Error, "runbooks nest at most 8 deep") {
		t.Fatalf("deep: %s %s", e.Status, e.Error)
	}
}

// TestStartChildOnce: a step that starts its child again (its node died
// before the step's event was recorded) gets the same child.
func TestStartChildOnce(t *testing.T) {
	tn := startTestNode(t, t.TempDir())
	tn.apply(t, childRunbooks)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req := builtins.ChildRequest{Runbook: "child", Input: json.RawMessage(`{"x": 1, "wait": true}`), Parent: "01PARENT", Position: "3", Attempt: 1, Depth: 1}
	first, err := tn.svc.StartChild(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	again, err := tn.svc.StartChild(ctx, req)
	if err != nil || again != first {
		t.Fatalf("started %s, then %s (%v): want the same child", first, again, err)
	}
	req.Attempt = 2 // a redriven parent starts a new one
	if redriven, err := tn.svc.StartChild(ctx, req); err != nil || redriven == first {
		t.Fatalf("attempt 2 got %s (%v), want a new child", redriven, err)
	}
	if err := tn.svc.Signal(ctx, first, "child."+first, nil, "someone"); err == nil || !strings.Contains(err.Error(), "sent by starbook alone") {
		t.Errorf("a child. signal from outside: %v", err)
	}
}

// TestChildRunbookRedrive: a parent whose child failed, redriven from the
// failed step, waits for a new child of its new attempt (the failed wait runs
// again; the start step is kept) and completes with its result; redriven
// from the start, a new parent starts a new child.
func TestChildRunbookRedrive(t *testing.T) {
	tn := startTestNode(t, t.TempDir())
	var calls atomic.Int32
	flaky := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			http.Error(w, "not yet", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"ok": true}`)
	}))
	defer flaky.Close()
	tn.apply(t, map[string]string{
		"redrive_parent.star": "def main(event):\n    return run_runbook(\"flaky\", {\"url\": event.url})\n",
		"flaky.star":          "def main(event):\n    return call(http.get, event.url, retries = 0).json\n",
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	failed, _ := tn.runToEnd(t, "redrive_parent", `{"url": "`+flaky.URL+`"}`)
	if failed.Status != sbruntime.StatusFailed || !strings.Contains(failed.Error, "(flaky) ended failed") {
		t.Fatalf("parent: %s %s", failed.Status, failed.Error)
	}
	res, _, err := tn.svc.Redrive(ctx, failed.ID, starbook.RedriveRequest{From: starbook.RedriveFromFailed})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rerun) != 1 || res.Rerun[0] != "2" {
		t.Errorf("redrive reruns %v, want the wait at 2", res.Rerun)
	}
	again, err := tn.svc.AwaitEnd(ctx, failed.ID)
	if err != nil || again.Status != sbruntime.StatusCompleted || string(again.Result) != `{"ok":true}` {
		t.Fatalf("redriven from the failed step: %+v, %v", again, err)
	}
	kids, err := tn.svc.Store.Children(ctx, failed.ID)
	if err != nil || len(kids) != 2 || kids[0] == kids[1] {
		t.Fatalf("children %v, %v: want the first attempt's and a new one", kids, err)
	}

	tn.apply(t, childRunbooks)
	negative, _ := tn.runToEnd(t, "parent", `{"x": -1}`)
	res, _, err = tn.svc.Redrive(ctx, negative.ID, starbook.RedriveRequest{From: starbook.RedriveFromStart})
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := tn.svc.AwaitEnd(ctx, res.New)
	if err != nil || fresh.Status != sbruntime.StatusFailed {
		t.Fatalf("redriven from the start: %+v, %v", fresh, err)
	}
	old, _ := tn.svc.Store.Children(ctx, negative.ID)
	kids, _ = tn.svc.Store.Children(ctx, res.New)
	if len(kids) != 1 || len(old) != 1 || kids[0] == old[0] {
		t.Errorf("the new parent's children %v, the old one's %v: want one new child each", kids, old)
	}
}

// TestChildRunbookUnknown: a child runbook that does not exist fails the
// parent's step with an error naming it, and stores no child.
func TestChildRunbookUnknown(t *testing.T) {
	tn := startTestNode(t, t.TempDir())
	tn.apply(t, map[string]string{"orphan.star": "def main(event):\n    return run_runbook(\"nope\", {\"a\": 1})\n"})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e, history := tn.runToEnd(t, "orphan", "")
	if e.Status != sbruntime.StatusFailed || !strings.Contains(e.Error, "run_runbook nope") || !strings.Contains(e.Error, "not found") {
		t.Errorf("orphan: %s %s", e.Status, e.Error)
	}
	if kids, err := tn.svc.Store.Children(ctx, e.ID); err != nil || len(kids) != 0 || len(history) != 1 || !history[0].Failed() {
		t.Errorf("children %v (%v), history %+v: want none and one failed step", kids, err, history)
	}
}
