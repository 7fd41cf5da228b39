package node_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/starbook/starbook"
	"github.com/starbook/starbook/api"
	"github.com/starbook/starbook/cluster"
	"github.com/starbook/starbook/runbooktest"
	sbruntime "github.com/starbook/starbook/runtime"
)

// flakyServer answers /ok with 200 and /flaky with 400 the first time each
// idempotency key asks, 200 after; it counts every request.
type flakyServer struct {
	mu       sync.Mutex
	seen     map[string]int
	requests int
}

func (f *flakyServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.requests++
	key := r.Header.Get("Idempotency-Key")
	f.seen[key]++
	n := f.seen[key]
	f.mu.Unlock()
	if r.URL.Path == "/flaky" && n == 1 {
		http.Error(w, "not yet", http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprint(w, `{"ok": true}`)
}

func (f *flakyServer) total() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests
}

func startFlaky(t *testing.T) (*flakyServer, string) {
	t.Helper()
	f := &flakyServer{seen: map[string]int{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv.URL
}

// TestApplyRefusesAnInvalidBudget: apply refuses a bad budget() with its
// file:line, and stores nothing of the request (the valid runbook beside it
// neither).
func TestApplyRefusesAnInvalidBudget(t *testing.T) {
	tn := startTestNode(t, t.TempDir())
	ctx := context.Background()
	_, err := tn.svc.Apply(ctx, map[string]string{
		"good.star": "budget(runs_per_day = 10)\ndef main(event):\n    pass\n",
		"bad.star":  "def helper():\n    pass\n\nbudget(steps_per_day = -1)\ndef main(event):\n    pass\n",
	})
	var ie *sbruntime.InputError
	if !errors.As(err, &ie) || !strings.Contains(err.Error(), "bad.star:4:7: budget: steps_per_day=-1: want a positive integer") {
		t.Fatalf("apply: %v, want an input error at bad.star:4:7", err)
	}
	if rbs, err := tn.svc.Runbooks(ctx); err != nil || len(rbs) != 0 {
		t.Fatalf("runbooks after a refused apply: %v, %v", rbs, err)
	}
	resp, err := tn.svc.Store.Client().Get(ctx, tn.svc.Store.Keys().Prefix(), clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range resp.Kvs {
		if k := string(kv.Key); strings.Contains(k, "/runbooks/") || strings.Contains(k, "/budgets/") {
			t.Errorf("a refused apply stored %s", k)
		}
	}
}

// TestRunsPerDayRefusesWith429AndRecordsACancelledRun: the start over the
// budget answers 429 naming it, and is recorded as a cancelled execution
// whose error is exactly the budget's message (a dead letter).
func TestRunsPerDayRefusesWith429AndRecordsACancelledRun(t *testing.T) {
	tn := startTestNode(t, t.TempDir())
	tn.apply(t, map[string]string{"twice.star": "budget(runs_per_day = 2)\ndef main(event):\n    return 1\n"})
	srv := httptest.NewServer(api.NewHandler(tn.svc, nil))
	defer srv.Close()
	c := &api.Client{BaseURL: srv.URL}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range 2 {
		if _, err := c.Start(ctx, "twice", nil); err != nil {
			t.Fatalf("start %d: %v", i+1, err)
		}
	}
	_, err := c.Start(ctx, "twice", nil)
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Status != http.StatusTooManyRequests || !strings.Contains(ae.Message, "budget: runs_per_day 2 reached") ||
		!strings.Contains(ae.Message, "(limit runs_per_day)") {
		t.Fatalf("third start: %v, want 429 naming runs_per_day", err)
	}
	list, err := tn.svc.Executions(ctx, starbook.Filter{Runbook: "twice", Status: sbruntime.StatusCancelled, Limit: 10})
	if err != nil || len(list) != 1 {
		t.Fatalf("cancelled executions %v, %v: want the refused one", list, err)
	}
	if e := list[0]; e.Error != "budget: runs_per_day 2 reached" || e.EndedAt == nil || e.Trigger.Type != "manual" ||
		!strings.Contains(ae.Message, e.ID) {
		t.Errorf("refused run recorded as %+v (answer %q)", e, ae.Message)
	}
	if all, _ := tn.svc.Executions(ctx, starbook.Filter{Runbook: "twice", Limit: 10}); len(all) != 3 {
		t.Errorf("%d executions, want the 2 started and the refused one", len(all))
	}
	// Its end is in the SLO rollups, as cancelled.
	buckets, err := tn.svc.Store.SLOBuckets(ctx, "twice", time.Now().Add(-time.Hour))
	var cancelled int64
	for _, b := range buckets {
		cancelled += b.Cancelled
	}
	if err != nil || cancelled != 1 {
		t.Errorf("SLO rollups count %d cancelled (%v), want the refused run", cancelled, err)
	}
}

// TestStepsPerDayExhaustedMidRun: a run that reaches steps_per_day fails at
// its next step with the budget's error, without doing that step's work or
// retrying it; a replay of its history is compatible; new runs are refused
// with the same budget named.
func TestStepsPerDayExhaustedMidRun(t *testing.T) {
	tn := startTestNode(t, t.TempDir())
	flaky, url := startFlaky(t)
	src := `budget(steps_per_day = 3)

def main(event):
    for i in range(5):
        call(http.get, event.url + "/ok", retry = retry(attempts = 3, initial = "1ms"))
`
	tn.apply(t, map[string]string{"capped.star": src})
	e, history := tn.runToEnd(t, "capped", fmt.Sprintf(`{"url": %q}`, url))
	if e.Status != sbruntime.StatusFailed || !strings.Contains(e.Error, "budget: steps_per_day 3 reached") {
		t.Fatalf("execution %s %q, want failed on steps_per_day", e.Status, e.Error)
	}
	if got := positions(history); strings.Join(got, " ") != "1 2 3 4" {
		t.Fatalf("positions %v, want 3 steps and the refused 4th", got)
	}
	if ev := history[3]; ev.Error != "budget: steps_per_day 3 reached" || ev.Attempts != 0 {
		t.Errorf("4th step recorded as %+v", ev)
	}
	if n := flaky.total(); n != 3 {
		t.Errorf("%d HTTP requests, want 3: the refused step did nothing and was not retried", n)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, _, err := tn.svc.Store.Bundle(ctx, "capped", e.Version)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := runbooktest.Replay(ctx, b, e, history, nil, sbruntime.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Compatible || rep.Outcome.Status != sbruntime.StatusFailed || rep.Outcome.Error != e.Error {
		t.Errorf("replay: compatible %v (%s), ended %s %q; want compatible, failing as the run did",
			rep.Compatible, rep.Reason, rep.Outcome.Status, rep.Outcome.Error)
	}

	_, err = tn.svc.Start(ctx, "capped", nil, sbruntime.Trigger{Type: "manual"})
	var le *sbruntime.LimitError
	if !errors.As(err, &le) || le.Limit != "steps_per_day" || !strings.Contains(err.Error(), "budget: steps_per_day 3 reached") {
		t.Fatalf("start after the budget is spent: %v, want refused naming steps_per_day", err)
	}
}

// TestStepsPerRun: each execution may make steps_per_run steps; the next
// is refused, and another execution has its own count.
func TestStepsPerRun(t *testing.T) {
	tn := startTestNode(t, t.TempDir())
	tn.apply(t, map[string]string{"short.star": `budget(steps_per_run = 2)

def main(event):
    a = now()
    if event.get("more"):
        b = uuid()
        c = uuid()
    return "done"
`})
	for _, input := range []string{`{}`, `{}`} {
		if e, h := tn.runToEnd(t, "short", input); e.Status != sbruntime.StatusCompleted || len(h) != 1 {
			t.Fatalf("short run: %s %q with %d steps", e.Status, e.Error, len(h))
		}
	}
	e, h := tn.runToEnd(t, "short", `{"more": true}`)
	if e.Status != sbruntime.StatusFailed || !strings.Contains(e.Error, "budget: steps_per_run 2 reached") || len(h) != 3 ||
		h[2].Error != "budget: steps_per_run 2 reached" {
		t.Fatalf("long run: %s %q, history %v", e.Status, e.Error, positions(h))
	}
}

// TestUsageIsExact: known runs give exact usage per execution (the API's
// execution JSON) and per runbook per day (GET /api/v1/usage): steps,
// retries, HTTP requests, fan_out items and wall time.
func TestUsageIsExact(t *testing.T) {
	tn := startTestNode(t, t.TempDir())
	_, url := startFlaky(t)
	tn.apply(t, map[string]string{"used.star": `
def main(event):
    fan_out(lambda i: call(http.get, event.url + "/ok"), range(3))
    call(http.get, event.url + "/flaky", retry = retry(attempts = 3, initial = "1ms", max = "1ms"))
    now()
    return "ok"
`})
	srv := httptest.NewServer(api.NewHandler(tn.svc, nil))
	defer srv.Close()
	c := &api.Client{BaseURL: srv.URL}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wall int64
	for range 2 {
		e, _ := tn.runToEnd(t, "used", fmt.Sprintf(`{"url": %q}`, url))
		if e.Status != sbruntime.StatusCompleted {
			t.Fatalf("run %s %q", e.Status, e.Error)
		}
		ms := e.EndedAt.Sub(e.CreatedAt).Milliseconds()
		wall += ms
		d, err := c.ExecutionDetail(ctx, e.ID)
		if err != nil {
			t.Fatal(err)
		}
		want := sbruntime.Usage{Steps: 6, Retries: 1, HTTPCalls: 5, FanOutItems: 3, WallTimeMS: ms}
		if d.Usage == nil || *d.Usage != want {
			t.Errorf("execution %s usage %+v, want %+v", e.ID, d.Usage, want)
		}
	}
	days, err := c.Usage(ctx, "used", 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(days) != 1 {
		t.Fatalf("usage %+v: want one day", days)
	}
	want := starbook.DayUsage{Runbook: "used", Day: cluster.Day(time.Now()), Executions: 2,
		Usage: sbruntime.Usage{Steps: 12, Retries: 2, HTTPCalls: 10, FanOutItems: 6, WallTimeMS: wall}}
	if got := *days[0]; got.Runbook != want.Runbook || got.Day != want.Day || got.Executions != 2 || got.Usage != want.Usage || len(got.Budgets) != 0 {
		t.Errorf("usage %+v, want %+v", got, want)
	}
	if all, err := c.Usage(ctx, "", 1); err != nil || len(all) != 1 || all[0].Usage != want.Usage {
		t.Errorf("usage of every runbook: %+v, %v", all, err)
	}
}

// TestHTTPCallsPerDay: HTTP requests are checked before each step and
// counted after it: the step that crosses the budget finishes, the next
// one is refused, and the counter holds exactly the requests sent.
func TestHTTPCallsPerDay(t *testing.T) {
	tn := startTestNode(t, t.TempDir())
	flaky, url := startFlaky(t)
	tn.apply(t, map[string]string{"calls.star": `budget(http_calls_per_day = 4)

def main(event):
    fan_out(lambda i: call(http.get, event.url + "/ok"), range(3))
    call(http.get, event.url + "/flaky", retry = retry(attempts = 3, initial = "1ms", max = "1ms"))
    return now()
`})
	e, h := tn.runToEnd(t, "calls", fmt.Sprintf(`{"url": %q}`, url))
	if e.Status != sbruntime.StatusFailed || !strings.Contains(e.Error, "budget: http_calls_per_day 4 reached") {
		t.Fatalf("run %s %q, want failed on http_calls_per_day", e.Status, e.Error)
	}
	if last := h[len(h)-1]; last.Position != "3" || last.Kind != sbruntime.KindNow || last.Error != "budget: http_calls_per_day 4 reached" {
		t.Errorf("last event %+v, want now() refused", last)
	}
	uses, err := tn.svc.Store.BudgetUses(context.Background(), "")
	if err != nil || len(uses) != 1 || uses[0].Used != 5 || uses[0].Limit != 4 || flaky.total() != 5 {
		t.Errorf("budgets %+v (%v) after %d requests, want http_calls_per_day 5 of 4", uses, err, flaky.total())
	}
}

// TestCancelledWhileParkedWritesUsage: a parked execution has no owner to
// write its outcome; the cancellation writes its usage, with its steps and
// its wall time on the day it ended.
func TestCancelledWhileParkedWritesUsage(t *testing.T) {
	tn := startTestNode(t, t.TempDir())
	tn.apply(t, map[string]string{"parked.star": `
def main(event):
    now()
    now()
    wait_for_signal("go")
`})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e, err := tn.svc.Start(ctx, "parked", nil, sbruntime.Trigger{Type: "manual"})
	if err != nil {
		t.Fatal(err)
	}
	awaitStored(t, tn.svc.Store, e.ID, sbruntime.StatusWaiting)
	cli := tn.svc.Store.Client()
	for { // parked: its claim let go
		resp, err := cli.Get(ctx, key(tn.svc.Store, "owners", e.ID), clientv3.WithCountOnly())
		if err != nil {
			t.Fatal(err)
		}
		if resp.Count == 0 {
			break
		}
		w := cli.Watch(ctx, key(tn.svc.Store, "owners", e.ID), clientv3.WithRev(resp.Header.Revision+1))
		<-w
	}
	end, err := tn.svc.Cancel(ctx, e.ID)
	if err != nil || end.Status != sbruntime.StatusCancelled {
		t.Fatalf("cancel: %+v, %v", end, err)
	}
	days, err := tn.svc.Usage(ctx, "parked", 1)
	if err != nil {
		t.Fatal(err)
	}
	wall := end.EndedAt.Sub(end.CreatedAt).Milliseconds()
	if len(days) != 1 || days[0].Executions != 1 || days[0].Steps < 2 || days[0].WallTimeMS != wall {
		t.Errorf("usage %+v, want 1 execution, its 2 steps and %d ms", days, wall)
	}
}
