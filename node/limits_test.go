package node_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/starbook/starbook/builtins"
	"github.com/starbook/starbook/cluster"
	"github.com/starbook/starbook/node"
	sbruntime "github.com/starbook/starbook/runtime"
	"github.com/starbook/starbook/service"
	"github.com/starbook/starbook/triggers"
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
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
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

// TestLimitErrorsNameTheirLimit runs a node with small limits and a runbook
// that runs into each: every failure names the limit it hit.
func TestLimitErrorsNameTheirLimit(t *testing.T) {
	tn := startNodeWith(t, t.TempDir(), "/limits/", nil, func(_ *cluster.Store, cfg *node.Config) {
		cfg.Limits = sbruntime.Limits{MaxSteps: 20_000, MaxResultBytes: 1000, MaxHistory: 5, MaxFanOutItems: 10, MaxFanOutConcurrency: 4}
	})
	tn.apply(t, map[string]string{"limits.star": `
def main(event):
    if event.case == "steps":
        for i in range(1000000):
            pass
    if event.case == "history":
        for i in range(10):
            call(lambda: i)
    if event.case == "result":
        call(lambda: "x" * 5000)
    if event.case == "items":
        fan_out(lambda x: x, list(range(11)))
    if event.case == "concurrency":
        fan_out(lambda x: x, [1, 2], max_concurrency = 5)
`})
	for _, tc := range []struct{ name, want string }{
		{"steps", "(limit max_starlark_steps)"},
		{"history", "history is full: 5 events (limit max_history)"},
		{"result", "step result is 5002 bytes, over the 1000-byte limit (limit max_result_bytes)"},
		{"items", "fan_out: more than 10 items; split the work or raise the limit (limit max_fan_out_items)"},
		{"concurrency", "fan_out: max_concurrency 5 is over the cap of 4 (limit max_fan_out_concurrency)"},
	} {
		e, _ := tn.runToEnd(t, "limits", `{"case": "`+tc.name+`"}`)
		if e.Status != sbruntime.StatusFailed || !strings.Contains(e.Error, tc.want) {
			t.Errorf("%s: %s %q, want an error with %q", tc.name, e.Status, e.Error, tc.want)
		}
	}
}

// TestDefaultTriggerRate: a runbook whose triggers declare no policy gets
// the node's default rate: runs over it are queued, and the reason names
// the rate; a runbook that declares its own keeps it.
func TestDefaultTriggerRate(t *testing.T) {
	emb := startEtcd(t)
	store := cluster.NewStore(emb.Client, "/rate/")
	defer store.Close()
	ctx := context.Background()
	svc := service.New(store, builtins.New(builtins.Options{}))
	if _, err := svc.Apply(ctx, map[string]string{
		"plain.star": "trigger.alert(alertname = \"StormAlert\")\ndef main(event):\n    pass\n",
		"own.star":   "trigger.alert(alertname = \"StormAlert\", rate = \"100/m\")\ndef main(event):\n    pass\n",
	}); err != nil {
		t.Fatal(err)
	}
	tr := cluster.NewTriggers(store, nil, nil)
	rate, err := triggers.ParseRate("2/m")
	if err != nil {
		t.Fatal(err)
	}
	d := &triggers.Dispatcher{Index: tr.Index(), Starter: tr, DefaultPolicy: triggers.Policy{Rate: rate}}
	res, err := d.Alertmanager(ctx, stormNotification(4))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for _, s := range res.Executions {
		got[s.Runbook] = append(got[s.Runbook], s.Status+" "+s.Reason)
	}
	want := map[string][]string{
		"plain": {"started ", "started ", "queued rate 2/m reached", "queued rate 2/m reached"},
		"own":   {"started ", "started ", "started ", "started "},
	}
	for rb, w := range want {
		if strings.Join(got[rb], "|") != strings.Join(w, "|") {
			t.Errorf("%s: %q, want %q", rb, got[rb], w)
		}
	}
	// The queued runs are what starbook_trigger_queued reports.
	snap, err := store.Snapshot(ctx)
	if err != nil || snap.Queued["plain"] != 2 || snap.Queued["own"] != 0 {
		t.Errorf("snapshot queued = %v, %v; want plain: 2", snap.Queued, err)
	}
}

// TestActiveIndexOnlyWithALimit: the active index is written only while an
// active limit is set, so executions created without one are not counted
// once a limit is set.
