package builtins_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/starbook/starbook/enginetest"
	sbruntime "github.com/starbook/starbook/runtime"
)

// stepGate admits limit steps, then refuses with steps_per_day; undos
// (Force) always pass. It records what it was asked and told.
type stepGate struct {
	mu       sync.Mutex
	limit    int
	admitted int
	asked    []string // positions, as asked
	forced   []string
	spent    []*sbruntime.Event
	fail     error // returned by Admit when set
}

func (g *stepGate) Admit(_ context.Context, a sbruntime.Admission) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.asked = append(g.asked, a.Position)
	if g.fail != nil {
		return g.fail
	}
	if a.Force {
		g.forced = append(g.forced, a.Position)
		return nil
	}
	if g.admitted >= g.limit {
		return &sbruntime.BudgetError{Budget: "steps_per_day", Limit: int64(g.limit)}
	}
	g.admitted++
	return nil
}

func (g *stepGate) Spent(ev *sbruntime.Event) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.spent = append(g.spent, ev)
}

// frozenJournal refuses every write: a replay that writes fails the test.
type frozenJournal struct{ t *testing.T }

func (j frozenJournal) Append(_ context.Context, ev *sbruntime.Event) error {
	j.t.Errorf("replay appended %s", ev.Position)
	return errors.New("frozen")
}
func (j frozenJournal) Wait(_ context.Context, w *sbruntime.Wait) (*sbruntime.Event, error) {
	j.t.Errorf("replay waited at %s", w.Position)
	return nil, errors.New("frozen")
}
func (j frozenJournal) SetStatus(context.Context, sbruntime.Status) error { return nil }

// TestGateRefusalIsRecordedNotRetriedAndReplays: a step the gate refuses
// does no work (not even once, though it may retry), is recorded as its
// error event with the budget's message, and fails the run; the undo
// registered before still runs (undos are never refused). A replay of that
// history asks the gate nothing and ends the same way.
func TestGateRefusalIsRecordedNotRetriedAndReplays(t *testing.T) {
	f := enginetest.NewFixture(t, enginetest.NewMemBackend(t), enginetest.Options{})
	gate := &stepGate{limit: 3}
	f.Gate = gate
	p := f.Source("budgeted", `
def main(event):
    compensate(effect, "undo")
    for i in range(5):
        call(effect, "step", retry = retry(attempts = 3, initial = "1ms"))
`)
	id := f.Start(p, "")
	res := f.RunToEnd(id, p, sbruntime.StatusFailed)
	if !strings.Contains(res.Outcome.Error, "budget: steps_per_day 3 reached") {
		t.Errorf("error %q does not name the budget", res.Outcome.Error)
	}
	h := f.History(id)
	if got := strings.Join(h.Positions(), " "); got != "1 2 3 4 5" {
		t.Fatalf("positions %s, want 1 2 3 4 5 (compensate, 2 calls, the refusal, the undo)", got)
	}
	refused := h.Event("4")
	if refused.Error != "budget: steps_per_day 3 reached" || refused.Attempts != 0 || refused.Kind != sbruntime.KindCall {
		t.Errorf("refused step recorded as %+v", refused)
	}
	if !sbruntime.BudgetRefused(refused) || sbruntime.BudgetRefused(h.Event("3")) {
		t.Error("BudgetRefused does not tell the refusal from a step")
	}
	if n := f.Effects.Count(id + "/4"); n != 0 {
		t.Errorf("the refused step ran its work %d times", n)
	}
	if f.Effects.Count(id+"/2") != 1 || f.Effects.Count(id+"/3") != 1 || f.Effects.Count(id+"/5") != 1 {
		t.Errorf("effects %v: want one per admitted step and the undo", f.Effects.Counts())
	}
	if strings.Join(gate.forced, " ") != "5" {
		t.Errorf("forced admissions %v, want the undo at 5", gate.forced)
	}
	if len(gate.spent) != 4 { // compensate, 2 calls, the undo: not the refusal
		t.Errorf("Spent told of %d events, want 4", len(gate.spent))
	}
	var u sbruntime.Usage
	for _, ev := range h.Events {
		u.Count(ev)
	}
	if u.Steps != 4 {
		t.Errorf("usage counts %d steps, want 4 (the refusal did nothing)", u.Steps)
	}

	// Replay the recorded history: the gate is asked nothing, nothing is
	// written and the run ends as it did.
	replayGate := &stepGate{limit: 0}
	history := map[string]*sbruntime.Event{}
	for _, ev := range h.Events {
		history[ev.Position] = ev
	}
	exec := *h.Execution
	out := f.Engine.Execute(f.Context(), p, &sbruntime.Run{Execution: &exec, History: history, Journal: frozenJournal{t}, Gate: replayGate})
	if out.Status != sbruntime.StatusFailed || out.Error != res.Outcome.Error {
		t.Errorf("replay ended %s %q, want failed %q", out.Status, out.Error, res.Outcome.Error)
	}
	if len(replayGate.asked) != 0 {
		t.Errorf("replay asked the gate for %v", replayGate.asked)
	}
	if f.Effects.Total() != 3 {
		t.Errorf("replay ran effects: %d in all", f.Effects.Total())
	}
}

// TestGateFailureAbortsTheRun: a gate that cannot answer (its store is
// down) stops the run without an outcome and records nothing; the next run
// goes on.
func TestGateFailureAbortsTheRun(t *testing.T) {
	f := enginetest.NewFixture(t, enginetest.NewMemBackend(t), enginetest.Options{})
	gate := &stepGate{limit: 10, fail: errors.New("etcd unavailable")}
	f.Gate = gate
	p := f.Source("budgeted", "def main(event):\n    return call(effect, \"one\")\n")
	id := f.Start(p, "")
	res := f.Run(id, p, enginetest.Faults{})
	if res.Outcome.Status != "" || !errors.Is(res.Outcome.Err, sbruntime.ErrStore) {
		t.Fatalf("outcome %+v, want an abort on a store error", res.Outcome)
	}
	if h := f.History(id); len(h.Events) != 0 || f.Effects.Total() != 0 {
		t.Fatalf("an aborted admission recorded %v and ran %d effects", h.Positions(), f.Effects.Total())
	}
	gate.fail = nil
	f.RunToEnd(id, p, sbruntime.StatusCompleted)
}

// TestFanOutItemsAndUsage: a fan_out's event records its items, and
// steps_per_run-style counting sees every event.
func TestFanOutItemsAndUsage(t *testing.T) {
	f := enginetest.NewFixture(t, enginetest.NewMemBackend(t), enginetest.Options{})
	p := f.Source("fan", `
def main(event):
    fan_out(lambda i: call(effect, "item"), range(4))
    call(effect, "flaky", fail = "down", retry = retry(attempts = 2, initial = "1ms"))
`)
	id := f.Start(p, "")
	f.RunToEnd(id, p, sbruntime.StatusFailed)
	h := f.History(id)
	if ev := h.Event("1"); ev.Items != 4 {
		t.Errorf("fan_out recorded %d items, want 4", ev.Items)
	}
	u := sbruntime.UsageOf(h.Execution, h.Events)
	want := sbruntime.Usage{Steps: 6, Retries: 1, FanOutItems: 4, WallTimeMS: u.WallTimeMS}
	if u != want {
		t.Errorf("usage %+v, want %+v", u, want)
	}
}

// TestGateRefusesANewWait: a wait is a step too: refused, it raises the
// budget's error at once instead of parking, and nothing waits.
func TestGateRefusesANewWait(t *testing.T) {
	f := enginetest.NewFixture(t, enginetest.NewMemBackend(t), enginetest.Options{})
	f.Gate = &stepGate{limit: 1}
	p := f.Source("waits", `
def main(event):
    now()
    return wait_for_signal("go")
`)
	id := f.Start(p, "")
	res := f.RunToEnd(id, p, sbruntime.StatusFailed)
	if !strings.Contains(res.Outcome.Error, "budget: steps_per_day 1 reached") {
		t.Errorf("error %q does not name the budget", res.Outcome.Error)
	}
	h := f.History(id)
	if ev := h.Event("2"); ev == nil || ev.Kind != sbruntime.KindSignal || ev.Error != "budget: steps_per_day 1 reached" {
		t.Errorf("wait recorded as %+v", ev)
	}
	if len(h.Waits) != 0 {
		t.Errorf("a refused wait is pending: %+v", h.Waits)
	}
}
