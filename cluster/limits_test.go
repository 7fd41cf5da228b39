package cluster

import (
	"context"
	"errors"
	"strings"
	"testing"

	sbruntime "github.com/starbook/starbook/runtime"
)

// TestActiveLimit: a runbook at its cap of active executions refuses manual
// starts with a LimitError naming the limit; an ended one makes room.
func TestActiveLimit(t *testing.T) {
	tn := startTestNode(t, t.TempDir())
	tn.svc.Store.SetActiveLimit(2)
	tn.apply(t, map[string]string{"park.star": `
def main(event):
    return wait_for_signal("go")
`, "other.star": `
def main(event):
    return wait_for_signal("go")
`})
	ctx := context.Background()
	var ids []string
	for range 2 {
		e, err := tn.svc.Start(ctx, "park", nil, sbruntime.Trigger{Type: "manual"})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, e.ID)
	}
	_, err := tn.svc.Start(ctx, "park", nil, sbruntime.Trigger{Type: "api"})
	var le *sbruntime.LimitError
	if !errors.As(err, &le) || le.Limit != "max_active_executions" ||
		!strings.Contains(err.Error(), "runbook park has 2 active executions") || !strings.Contains(err.Error(), "--max-active-executions 2") {
		t.Fatalf("third start: %v", err)
	}
	if _, err := tn.svc.Start(ctx, "other", nil, sbruntime.Trigger{Type: "manual"}); err != nil {
		t.Fatalf("another runbook is not limited: %v", err)
	}
	if _, err := tn.svc.Cancel(ctx, ids[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := tn.svc.AwaitEnd(ctx, ids[0]); err != nil {
		t.Fatal(err)
	}
	if n, err := tn.svc.Store.ActiveExecutions(ctx, "park"); err != nil || n != 1 {
		t.Fatalf("active after a cancel: %d, %v", n, err)
	}
	if _, err := tn.svc.Start(ctx, "park", nil, sbruntime.Trigger{Type: "manual"}); err != nil {
		t.Fatalf("start after one ended: %v", err)
	}
	// A completed execution stops counting too.
	if err := tn.svc.Signal(ctx, ids[1], "go", nil, "t"); err != nil {
		t.Fatal(err)
	}
	if e, err := tn.svc.AwaitEnd(ctx, ids[1]); err != nil || e.Status != sbruntime.StatusCompleted {
		t.Fatalf("signalled run: %+v, %v", e, err)
	}
	if n, _ := tn.svc.Store.ActiveExecutions(ctx, "park"); n != 1 {
		t.Fatalf("active after a completion: %d", n)
	}
}
