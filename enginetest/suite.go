package enginetest

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/starbook/starbook/runtime"
)

// RunSuite runs every scenario against fresh backends from newBackend. Each
// scenario runs in parallel with the others on its own backend.
func RunSuite(t *testing.T, newBackend func(t *testing.T) Backend) {
	scenarios := []struct {
		name string
		run  func(t *testing.T, newBackend func(t *testing.T) Backend)
	}{
		{"JournalRules", testJournalRules},
		{"Sequential", testSequential},
		{"KillBeforeCheckpoint", testKillBeforeCheckpoint},
		{"KillAfterCheckpoint", testKillAfterCheckpoint},
		{"KillEveryRun", testKillEveryRun},
		{"ClaimLost", testClaimLost},
		{"Drain", testDrain},
		{"Cancel", testCancel},
		{"Determinism", testDeterminism},
		{"FanOut", testFanOut},
		{"FanOutKilled", testFanOutKilled},
		{"FanOutFailure", testFanOutFailure},
		{"FanOutCap", testFanOutCap},
		{"Compensate", testCompensate},
		{"Sleep", testSleep},
		{"WaitResolvedDuringRun", testWaitResolvedDuringRun},
		{"SleepInFanOut", testSleepInFanOut},
		{"NowAndUUID", testNowAndUUID},
		{"BadInput", testBadInput},
		{"StepError", testStepError},
		{"Secrets", testSecrets},
		{"Signals", testSignals},
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			sc.run(t, newBackend)
		})
	}
}

// testJournalRules checks the backend's fencing directly: one event per
// position, and no write through a claim that is gone.
func testJournalRules(t *testing.T, newBackend func(t *testing.T) Backend) {
	b := newBackend(t)
	f := NewFixture(t, b, Options{})
	ctx := f.Context()
	id := f.Start(f.Script("sequential"), `{"n": 2}`)
	event := func(pos string) *runtime.Event {
		return &runtime.Event{Position: pos, Kind: runtime.KindCall, Name: "effect", Result: json.RawMessage(`"r` + pos + `"`)}
	}

	a, err := b.Claim(ctx, id)
	if err != nil {
		t.Fatalf("claim A: %v", err)
	}
	if _, err := b.Claim(ctx, id); err == nil {
		t.Fatal("a second claim of an owned execution succeeded")
	}
	if err := a.Journal.Append(ctx, event("1")); err != nil {
		t.Fatalf("A appends 1: %v", err)
	}
	if err := a.Journal.Append(ctx, event("1")); !errors.Is(err, runtime.ErrPositionTaken) {
		t.Fatalf("A appends 1 again: got %v, want ErrPositionTaken", err)
	}

	if err := b.Expire(ctx, id); err != nil {
		t.Fatalf("expire A's claim: %v", err)
	}
	bb, err := b.Claim(ctx, id)
	if err != nil {
		t.Fatalf("claim B after A's claim expired: %v", err)
	}
	if ev := bb.History["1"]; ev == nil || string(ev.Result) != `"r1"` {
		t.Fatalf("B's history at 1 = %+v, want A's event", ev)
	}
	if err := a.Journal.Append(ctx, event("2")); !errors.Is(err, runtime.ErrNotOwner) {
		t.Errorf("stale A appends 2: got %v, want ErrNotOwner", err)
	}
	if _, err := a.Journal.Wait(ctx, &runtime.Wait{Execution: id, Position: "3", Kind: runtime.KindSleep}); !errors.Is(err, runtime.ErrNotOwner) {
		t.Errorf("stale A registers a wait: got %v, want ErrNotOwner", err)
	}
	if err := a.Journal.SetStatus(ctx, runtime.StatusCompensating); !errors.Is(err, runtime.ErrNotOwner) {
		t.Errorf("stale A sets a status: got %v, want ErrNotOwner", err)
	}
	if err := bb.Journal.Append(ctx, event("2")); err != nil {
		t.Fatalf("B appends 2: %v", err)
	}
	if err := bb.Journal.Append(ctx, event("1")); !errors.Is(err, runtime.ErrPositionTaken) {
		t.Errorf("B appends 1: got %v, want ErrPositionTaken", err)
	}
	if _, err := b.Finish(ctx, a, runtime.Outcome{Status: runtime.StatusFailed, Error: "stale"}); !errors.Is(err, runtime.ErrNotOwner) {
		t.Fatalf("finish stale A: got %v, want ErrNotOwner", err)
	}
	if h := f.History(id); h.Execution.Status.Terminal() || len(h.Waits) != 0 {
		t.Fatalf("stale A's finish was recorded: status %s, waits %d", h.Execution.Status, len(h.Waits))
	}
	if _, err := b.Finish(ctx, bb, runtime.Outcome{Status: runtime.StatusCompleted, Result: json.RawMessage(`1`)}); err != nil {
		t.Fatalf("finish B: %v", err)
	}
	h := f.History(id)
	if h.Execution.Status != runtime.StatusCompleted || string(h.Execution.Result) != "1" {
		t.Errorf("after B's finish: status %s result %s, want completed 1", h.Execution.Status, h.Execution.Result)
	}
	if got := h.Positions(); !slices.Equal(got, []string{"1", "2"}) {
		t.Errorf("positions %v, want [1 2]", got)
	}
	if ev := h.Event("2"); ev == nil || string(ev.Result) != `"r2"` {
		t.Errorf("event 2 = %+v, want B's", ev)
	}
	assertWrittenOnce(t, h)
	if _, err := b.Claim(ctx, id); err == nil {
		t.Error("claimed a completed execution")
	}
}

// testSequential: calls get positions 1..n, each effect runs once.
func testSequential(t *testing.T, newBackend func(t *testing.T) Backend) {
	f := NewFixture(t, newBackend(t), Options{})
	p := f.Script("sequential")
	id := f.Start(p, `{"n": 5}`)
	res := f.RunToEnd(id, p, runtime.StatusCompleted)
	if string(res.Outcome.Result) != "[0,1,2,3,4]" {
		t.Errorf("result %s, want [0,1,2,3,4]", res.Outcome.Result)
	}
	if res.Execution.Status != runtime.StatusCompleted || string(res.Execution.Result) != "[0,1,2,3,4]" {
		t.Errorf("stored execution: %s %s", res.Execution.Status, res.Execution.Result)
	}
	h := f.History(id)
	if got, want := h.Positions(), positions(1, 5); !slices.Equal(got, want) {
		t.Fatalf("positions %v, want %v", got, want)
	}
	for i, ev := range h.Events {
		if ev.Kind != runtime.KindCall || ev.Name != "effect" || ev.Failed() || string(ev.Result) != strconv.Itoa(i) {
			t.Errorf("event %s: %s %s result %s error %q", ev.Position, ev.Kind, ev.Name, ev.Result, ev.Error)
		}
	}
	assertWrittenOnce(t, h)
	assertCounts(t, f, id, 5, nil)
}

// testKillBeforeCheckpoint kills the run inside each effect in turn: only
// that effect runs again, under the same idempotency key.
func testKillBeforeCheckpoint(t *testing.T, newBackend func(t *testing.T) Backend) {
	const n = 5
	f := NewFixture(t, newBackend(t), Options{})
	p := f.Script("sequential")
	for k := 1; k <= n; k++ {
		t.Run(fmt.Sprintf("effect%d", k), func(t *testing.T) {
			id := f.Start(p, `{"n": 5}`)
			res := f.Run(id, p, Faults{KillAtEffect: k})
			assertKilled(t, res)
			if got, want := f.History(id).Positions(), positions(1, k-1); !slices.Equal(got, want) {
				t.Fatalf("after the kill: positions %v, want %v", got, want)
			}
			f.RunToEnd(id, p, runtime.StatusCompleted)
			h := f.History(id)
			if got, want := h.Positions(), positions(1, n); !slices.Equal(got, want) {
				t.Fatalf("positions %v, want %v", got, want)
			}
			assertWrittenOnce(t, h)
			assertCounts(t, f, id, n, map[string]int{strconv.Itoa(k): 2})
		})
	}
}

// testKillAfterCheckpoint kills the run after each append in turn: no effect
// runs twice.
func testKillAfterCheckpoint(t *testing.T, newBackend func(t *testing.T) Backend) {
	const n = 5
	f := NewFixture(t, newBackend(t), Options{})
	p := f.Script("sequential")
	for k := 1; k <= n; k++ {
		t.Run(fmt.Sprintf("append%d", k), func(t *testing.T) {
			id := f.Start(p, `{"n": 5}`)
			res := f.Run(id, p, Faults{KillAfterAppend: k})
			assertKilled(t, res)
			if got, want := f.History(id).Positions(), positions(1, k); !slices.Equal(got, want) {
				t.Fatalf("after the kill: positions %v, want %v", got, want)
			}
			res = f.RunToEnd(id, p, runtime.StatusCompleted)
			if res.Appends != n-k {
				t.Errorf("resumed run appended %d events, want %d", res.Appends, n-k)
			}
			h := f.History(id)
			assertWrittenOnce(t, h)
			assertCounts(t, f, id, n, nil)
		})
	}
}

// testKillEveryRun kills every run right after its first checkpoint: the
// execution still gets through, one step per run, each effect once.
func testKillEveryRun(t *testing.T, newBackend func(t *testing.T) Backend) {
	const n = 5
	f := NewFixture(t, newBackend(t), Options{})
	p := f.Script("sequential")
	id := f.Start(p, `{"n": 5}`)
	runs := 0
	for {
		runs++
		if runs > n+1 {
			t.Fatalf("not done after %d runs", runs-1)
		}
		res := f.Run(id, p, Faults{KillAfterAppend: 1})
		if res.Outcome.Status == runtime.StatusCompleted {
			break
		}
		assertKilled(t, res)
	}
	if runs != n+1 {
		t.Errorf("took %d runs, want %d (one per step, then a replay)", runs, n+1)
	}
	assertWrittenOnce(t, f.History(id))
	assertCounts(t, f, id, n, nil)
}

// testClaimLost expires the claim mid-run: the run's next write is refused,
// it aborts without an outcome, and the next claim finishes the execution.
func testClaimLost(t *testing.T, newBackend func(t *testing.T) Backend) {
	const n = 5
	f := NewFixture(t, newBackend(t), Options{})
	p := f.Script("sequential")
	id := f.Start(p, `{"n": 5}`)
	res := f.Run(id, p, Faults{ExpireAfterAppend: 2})
	if res.Outcome.Status != "" || !errors.Is(res.Outcome.Err, runtime.ErrNotOwner) {
		t.Fatalf("run after losing its claim: status %q err %v, want an abort with ErrNotOwner", res.Outcome.Status, res.Outcome.Err)
	}
	if got, want := f.History(id).Positions(), positions(1, 2); !slices.Equal(got, want) {
		t.Fatalf("positions after the lost claim %v, want %v", got, want)
	}
	f.RunToEnd(id, p, runtime.StatusCompleted)
	assertWrittenOnce(t, f.History(id))
	// The effect whose checkpoint was refused ran again under the same key.
	assertCounts(t, f, id, n, map[string]int{"3": 2})
}

// testDrain: a node stopping gracefully lets the step in flight finish and
// starts no other; the next run repeats nothing.
func testDrain(t *testing.T, newBackend func(t *testing.T) Backend) {
	const n = 5
	f := NewFixture(t, newBackend(t), Options{})
	p := f.Script("sequential")
	id := f.Start(p, `{"n": 5}`)
	res := f.Run(id, p, Faults{DrainAfterAppend: 2})
	if res.Outcome.Status != "" || !errors.Is(res.Outcome.Err, runtime.ErrStopping) {
		t.Fatalf("drained run: status %q err %v, want an abort with ErrStopping", res.Outcome.Status, res.Outcome.Err)
	}
	if got := f.Effects.Total(); got != 2 {
		t.Errorf("%d effects ran before the drain stopped the run, want 2", got)
	}
	f.RunToEnd(id, p, runtime.StatusCompleted)
	assertWrittenOnce(t, f.History(id))
	assertCounts(t, f, id, n, nil)
}

// testCancel: a run cancelled by a user ends cancelled, recording nothing more.
func testCancel(t *testing.T, newBackend func(t *testing.T) Backend) {
	f := NewFixture(t, newBackend(t), Options{})
	p := f.Script("sequential")
	id := f.Start(p, `{"n": 5}`)
	res := f.Run(id, p, Faults{KillAtEffect: 2, Cause: runtime.ErrCancelled})
	if res.Outcome.Status != runtime.StatusCancelled || res.Execution.Status != runtime.StatusCancelled {
		t.Fatalf("outcome %q, stored %q, want cancelled", res.Outcome.Status, res.Execution.Status)
	}
	if got := f.History(id).Positions(); !slices.Equal(got, []string{"1"}) {
		t.Errorf("positions %v, want [1]", got)
	}
}

// testDeterminism resumes a recorded execution with a script that calls
// something else at a recorded position: the execution is stuck, with a coded
// message naming the call's file:line, and nothing runs.
func testDeterminism(t *testing.T, newBackend func(t *testing.T) Backend) {
	tests := []struct {
		script string
		actual string // how the error names what the script called
	}{
		{"diverge_name", "script called call other (args "},
		{"diverge_args", "script called call effect (args "},
		{"diverge_kind", "script called now (args "},
	}
	for _, tt := range tests {
		t.Run(tt.script, func(t *testing.T) {
			f := NewFixture(t, newBackend(t), Options{})
			base := f.Script("diverge")
			id := f.Start(base, "")
			assertKilled(t, f.Run(id, base, Faults{KillAfterAppend: 2}))
			before := f.Effects.Total()
			recorded := f.History(id).Event("2")

			changed := f.Script(tt.script)
			res := f.Run(id, changed, Faults{})
			if res.Outcome.Status != runtime.StatusStuck || res.Execution.Status != runtime.StatusStuck {
				t.Fatalf("outcome %q (%s), stored %q, want stuck", res.Outcome.Status, res.Outcome.Error, res.Execution.Status)
			}
			msg := res.Outcome.Error
			where := markerLine(t, changed, "# diverges")
			for _, want := range []string{
				"[" + runtime.CodeMismatch + "]",
				"position 2",
				"history has call effect (args " + recorded.ArgsHash + ")",
				tt.actual,
				where,
				"Traceback (most recent call last):\n  " + where, // the stack of the diverging call
			} {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q does not contain %q", msg, want)
				}
			}
			if res.Execution.Error != msg {
				t.Errorf("stored error %q, want %q", res.Execution.Error, msg)
			}
			if got := f.Effects.Total(); got != before {
				t.Errorf("the diverging replay ran %d effects", got-before)
			}
			h := f.History(id)
			if got := h.Positions(); !slices.Equal(got, []string{"1", "2"}) {
				t.Errorf("positions %v, want [1 2]", got)
			}
			assertWrittenOnce(t, h)
		})
	}
}

// testFanOut: 1,000 items, at most 50 at once, results in item order, one
// event per item at n/i/k.
func testFanOut(t *testing.T, newBackend func(t *testing.T) Backend) {
	const n, c = 1000, 50
	f := NewFixture(t, newBackend(t), Options{})
	p := f.Script("fan_out")
	id := f.Start(p, fmt.Sprintf(`{"n": %d, "c": %d}`, n, c))
	res := f.RunToEnd(id, p, runtime.StatusCompleted)
	var got []int
	if err := json.Unmarshal(res.Outcome.Result, &got); err != nil {
		t.Fatalf("result %s: %v", res.Outcome.Result, err)
	}
	if len(got) != n {
		t.Fatalf("%d results, want %d", len(got), n)
	}
	for i, v := range got {
		if v != i {
			t.Fatalf("result[%d] = %d: results are not in item order", i, v)
		}
	}
	if peak := f.Effects.Peak(); peak > c {
		t.Errorf("%d items ran at once, max_concurrency is %d", peak, c)
	}
	h := f.History(id)
	want := []string{"1"}
	for i := range n {
		want = append(want, fmt.Sprintf("1/%d/1", i))
	}
	if got := h.Positions(); !slices.Equal(got, want) {
		t.Fatalf("positions %v..., want 1, 1/0/1 .. 1/%d/1", got[:min(len(got), 5)], n-1)
	}
	if ev := h.Event("1"); ev.Kind != runtime.KindFanOut || ev.Name != "lambda" {
		t.Errorf("event 1 is %s %s, want fan_out lambda", ev.Kind, ev.Name)
	}
	if ev := h.Event("1/637/1"); ev.Kind != runtime.KindCall || string(ev.Result) != "637" {
		t.Errorf("event 1/637/1 is %s result %s, want call 637", ev.Kind, ev.Result)
	}
	assertWrittenOnce(t, h)
	counts := f.Effects.Counts()
	for i := range n {
		if k := runtime.IdempotencyKey(id, fmt.Sprintf("1/%d/1", i)); counts[k] != 1 {
			t.Fatalf("item %d ran %d times", i, counts[k])
		}
	}
}

// testFanOutKilled kills a fan_out midway, or after its last item but before
// its own checkpoint: the resumed run finishes it, repeating only items that
// were in flight, each under its own key.
func testFanOutKilled(t *testing.T, newBackend func(t *testing.T) Backend) {
	const n, c = 200, 20
	tests := []struct {
		name        string
		faults      Faults
		minRepeated int
		maxRepeated int
	}{
		{"midway", Faults{KillAtEffect: n / 2}, 1, c},
		{"before its checkpoint", Faults{KillAfterAppend: n}, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := NewFixture(t, newBackend(t), Options{})
			p := f.Script("fan_out")
			id := f.Start(p, fmt.Sprintf(`{"n": %d, "c": %d}`, n, c))
			assertKilled(t, f.Run(id, p, tt.faults))
			if f.History(id).Event("1") != nil {
				t.Fatal("the killed fan_out recorded its result")
			}
			res := f.RunToEnd(id, p, runtime.StatusCompleted)
			var got []int
			if err := json.Unmarshal(res.Outcome.Result, &got); err != nil || len(got) != n {
				t.Fatalf("result %s (%v), want %d items", res.Outcome.Result, err, n)
			}
			for i, v := range got {
				if v != i {
					t.Fatalf("result[%d] = %d: results are not in item order", i, v)
				}
			}
			h := f.History(id)
			if len(h.Events) != n+1 {
				t.Errorf("%d events, want %d", len(h.Events), n+1)
			}
			assertWrittenOnce(t, h)
			repeated := 0
			for key, count := range f.Effects.Counts() {
				switch {
				case count > 2:
					t.Errorf("%s ran %d times", key, count)
				case count == 2:
					repeated++
				}
			}
			if repeated < tt.minRepeated || repeated > tt.maxRepeated {
				t.Errorf("%d items ran twice, want %d to %d", repeated, tt.minRepeated, tt.maxRepeated)
			}
		})
	}
}

// testFanOutFailure: with fail_fast one failing item fails the fan_out and no
// new item starts; without it every item runs and the failures are counted.
func testFanOutFailure(t *testing.T, newBackend func(t *testing.T) Backend) {
	t.Run("fail_fast", func(t *testing.T) {
		const n, c, failing = 100, 5, 3
		f := NewFixture(t, newBackend(t), Options{})
		p := f.Script("fan_out_fail")
		id := f.Start(p, fmt.Sprintf(`{"n": %d, "c": %d, "fail": %d, "block": true, "fail_fast": true}`, n, c, failing))
		res := f.RunToEnd(id, p, runtime.StatusFailed)
		if want := fmt.Sprintf("fan_out item %d", failing); !strings.Contains(res.Outcome.Error, want) ||
			!strings.Contains(res.Outcome.Error, "item 3 broke") {
			t.Errorf("error %q does not name %q and its error", res.Outcome.Error, want)
		}
		calls := f.Effects.Calls()
		failedAt := -1
		for _, inv := range calls {
			if inv.Value == strconv.Itoa(failing) {
				failedAt = inv.Seq
			}
		}
		if failedAt < 0 {
			t.Fatal("the failing item never ran")
		}
		after := 0
		for _, inv := range calls {
			if inv.Seq > failedAt {
				after++
			}
		}
		if after > c {
			t.Errorf("%d items started after the failure, max_concurrency is %d", after, c)
		}
		if len(calls) > c {
			t.Errorf("%d of %d items ran; fail_fast should stop at the %d in flight", len(calls), n, c)
		}
		h := f.History(id)
		if got, want := h.Positions(), []string{"1", "1/3/1"}; !slices.Equal(got, want) {
			t.Errorf("positions %v, want %v (stopped items record nothing)", got, want)
		}
		if ev := h.Event("1"); ev == nil || !ev.Failed() || !strings.Contains(ev.Error, "fan_out item 3") {
			t.Errorf("fan_out event %+v, want failed naming item 3", ev)
		}
	})
	t.Run("collect", func(t *testing.T) {
		const n, c, failing = 20, 5, 7
		f := NewFixture(t, newBackend(t), Options{})
		p := f.Script("fan_out_fail")
		id := f.Start(p, fmt.Sprintf(`{"n": %d, "c": %d, "fail": %d, "block": false, "fail_fast": false}`, n, c, failing))
		res := f.RunToEnd(id, p, runtime.StatusFailed)
		if want := "1 of 20 items failed, first: fan_out item 7"; !strings.Contains(res.Outcome.Error, want) {
			t.Errorf("error %q does not contain %q", res.Outcome.Error, want)
		}
		if got := f.Effects.Total(); got != n {
			t.Errorf("%d items ran, want all %d", got, n)
		}
		h := f.History(id)
		if len(h.Events) != n+1 {
			t.Errorf("%d events, want %d", len(h.Events), n+1)
		}
		assertWrittenOnce(t, h)
	})
}

// testFanOutCap: a fan_out over the configured caps is refused before any
// item runs or any event is written.
func testFanOutCap(t *testing.T, newBackend func(t *testing.T) Backend) {
	limits := runtime.Limits{MaxFanOutItems: 100, MaxFanOutConcurrency: 20}
	tests := []struct {
		n, c  int
		limit string // "" when the fan_out may run
	}{
		{101, 10, "max_fan_out_items"},
		{100_000, 10, "max_fan_out_items"},
		{100, 21, "max_fan_out_concurrency"},
		{100, 20, ""},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("n%d_c%d", tt.n, tt.c), func(t *testing.T) {
			f := NewFixture(t, newBackend(t), Options{Limits: limits})
			p := f.Script("fan_out")
			id := f.Start(p, fmt.Sprintf(`{"n": %d, "c": %d}`, tt.n, tt.c))
			if tt.limit == "" {
				f.RunToEnd(id, p, runtime.StatusCompleted)
				if got := f.Effects.Total(); got != tt.n {
					t.Errorf("%d items ran, want %d", got, tt.n)
				}
				return
			}
			res := f.RunToEnd(id, p, runtime.StatusFailed)
			if !strings.Contains(res.Outcome.Error, tt.limit) {
				t.Errorf("error %q does not name %s", res.Outcome.Error, tt.limit)
			}
			if got := f.Effects.Total(); got != 0 {
				t.Errorf("%d items ran before the refusal", got)
			}
			if h := f.History(id); len(h.Events) != 0 {
				t.Errorf("refused fan_out wrote events %v", h.Positions())
			}
		})
	}
}

// testCompensate: undos run last-in first-out as durable steps after a
// failure, resume after a crash without repeating, and a failing one leaves
// the execution failed with compensation_failed.
func testCompensate(t *testing.T, newBackend func(t *testing.T) Backend) {
	tests := []struct {
		name     string
		input    string
		faults   Faults
		counts   map[string]int // effect runs by position, beyond once each
		undoFail bool
	}{
		{name: "lifo", input: `{}`},
		{name: "killed in an undo", input: `{}`, faults: Faults{KillAtEffect: 5}, counts: map[string]int{"7": 2}},
		{name: "killed after an undo", input: `{}`, faults: Faults{KillAfterAppend: 6}},
		{name: "killed after setting compensating", input: `{}`, faults: Faults{KillAtEffect: 4}, counts: map[string]int{"6": 2}},
		{name: "undo fails", input: `{"undo_fail": "undo broke"}`, counts: map[string]int{"7": 3}, undoFail: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := NewFixture(t, newBackend(t), Options{})
			p := f.Script("compensate")
			id := f.Start(p, tt.input)
			var statuses []runtime.Status
			if tt.faults != (Faults{}) {
				res := f.Run(id, p, tt.faults)
				assertKilled(t, res)
				statuses = append(statuses, res.Statuses...)
			}
			res := f.RunToEnd(id, p, runtime.StatusFailed)
			statuses = append(statuses, res.Statuses...)
			if !slices.Contains(statuses, runtime.StatusCompensating) {
				t.Errorf("status changes %v, want compensating", statuses)
			}
			msg := res.Outcome.Error
			if tt.undoFail {
				if !strings.HasPrefix(msg, "compensation_failed") || !strings.Contains(msg, "undo broke") ||
					!strings.Contains(msg, "deploy broke") {
					t.Errorf("error %q, want compensation_failed with the undo's error and the original one", msg)
				}
			} else if strings.Contains(msg, "compensation_failed") || !strings.Contains(msg, "deploy broke") {
				t.Errorf("error %q, want the deploy's", msg)
			}
			if res.Execution.Status != runtime.StatusFailed || res.Execution.Error != msg {
				t.Errorf("stored %s %q, want failed %q", res.Execution.Status, res.Execution.Error, msg)
			}

			h := f.History(id)
			if got, want := h.Positions(), positions(1, 7); !slices.Equal(got, want) {
				t.Fatalf("positions %v, want %v", got, want)
			}
			kinds := []string{"call", "compensate", "call", "compensate", "call", "undo", "undo"}
			for i, ev := range h.Events {
				if ev.Kind != kinds[i] {
					t.Errorf("event %s is a %s, want %s", ev.Position, ev.Kind, kinds[i])
				}
			}
			if undoA := h.Event("7"); tt.undoFail != undoA.Failed() {
				t.Errorf("undo_a event failed=%v (%q), want %v", undoA.Failed(), undoA.Error, tt.undoFail)
			} else if tt.undoFail && undoA.Attempts != 3 {
				t.Errorf("failing undo recorded %d attempts, want 3", undoA.Attempts)
			}
			assertWrittenOnce(t, h)
			assertCounts(t, f, id, 0, tt.counts)
			var names []string
			for _, inv := range f.Effects.Calls() {
				if len(names) == 0 || names[len(names)-1] != inv.Name {
					names = append(names, inv.Name)
				}
			}
			if want := []string{"create_a", "create_b", "deploy", "undo_b", "undo_a"}; !slices.Equal(names, want) {
				t.Errorf("effects ran in order %v, want %v", names, want)
			}
		})
	}
}

// testSleep: sleep parks the execution on a timer; once it fires the next run
// completes, and log() lines are written once, not again on replay.
func testSleep(t *testing.T, newBackend func(t *testing.T) Backend) {
	f := NewFixture(t, newBackend(t), Options{})
	p := f.Script("sleep")
	id := f.Start(p, "")
	res := f.RunToEnd(id, p, runtime.StatusWaiting)
	if res.Execution.Status != runtime.StatusWaiting {
		t.Errorf("stored status %s, want waiting", res.Execution.Status)
	}
	h := f.History(id)
	if len(h.Waits) != 1 {
		t.Fatalf("%d waits, want 1", len(h.Waits))
	}
	w := h.Waits[0]
	if w.Position != "2" || w.Kind != runtime.KindSleep || w.Deadline == nil || !w.Deadline.Equal(w.Since.Add(3600e9)) {
		t.Errorf("wait %+v, want a sleep at 2 with a deadline an hour after it began", w)
	}
	if got := h.Positions(); !slices.Equal(got, []string{"1"}) {
		t.Errorf("positions while waiting %v, want [1]", got)
	}
	if _, err := f.Backend.Claim(f.Context(), id); err == nil {
		t.Fatal("a parked execution was claimable before its timer fired")
	}

	fired, err := f.Backend.FireWaits(f.Context(), id)
	if err != nil || fired != 1 {
		t.Fatalf("fire waits: %d, %v; want 1", fired, err)
	}
	res = f.RunToEnd(id, p, runtime.StatusCompleted)
	if string(res.Outcome.Result) != `"finish"` {
		t.Errorf("result %s", res.Outcome.Result)
	}
	h = f.History(id)
	if got := h.Positions(); !slices.Equal(got, positions(1, 3)) {
		t.Errorf("positions %v, want [1 2 3]", got)
	}
	if ev := h.Event("2"); ev.Kind != runtime.KindSleep || ev.Failed() {
		t.Errorf("event 2 %+v, want the fired sleep", ev)
	}
	if len(h.Waits) != 0 {
		t.Errorf("%d waits left after completion", len(h.Waits))
	}
	assertWrittenOnce(t, h)
	assertCounts(t, f, id, 0, nil)
	logs := f.Logs()
	for _, line := range []string{"before sleep", "prepared", "after sleep"} {
		if got := countLines(logs, line); got != 1 {
			t.Errorf("log %q written %d times, want once:\n%s", line, got, logs)
		}
	}
}

// testWaitResolvedDuringRun: a timer that fires before the run that set it
// has finished must not leave the execution parked.
func testWaitResolvedDuringRun(t *testing.T, newBackend func(t *testing.T) Backend) {
	f := NewFixture(t, newBackend(t), Options{})
	p := f.Script("sleep")
	id := f.Start(p, "")
	res := f.Run(id, p, Faults{FireWaits: true})
	if res.Outcome.Status != runtime.StatusWaiting {
		t.Fatalf("outcome %q (%v %s), want waiting", res.Outcome.Status, res.Outcome.Err, res.Outcome.Error)
	}
	if h := f.History(id); h.Execution.Status != runtime.StatusPending || len(h.Waits) != 0 || h.Event("2") == nil {
		t.Fatalf("after a wait resolved mid-run: status %s, %d waits, event 2 %v; want pending, none, recorded",
			h.Execution.Status, len(h.Waits), h.Event("2"))
	}
	f.RunToEnd(id, p, runtime.StatusCompleted)
	assertWrittenOnce(t, f.History(id))
	assertCounts(t, f, id, 0, nil)
}

// testSleepInFanOut: waits inside fan_out items park the execution at the
// items' positions; once fired the fan_out completes in item order.
func testSleepInFanOut(t *testing.T, newBackend func(t *testing.T) Backend) {
	f := NewFixture(t, newBackend(t), Options{})
	p := f.Script("fan_out_sleep")
	id := f.Start(p, "")
	f.RunToEnd(id, p, runtime.StatusWaiting)
	h := f.History(id)
	var waits []string
	for _, w := range h.Waits {
		waits = append(waits, w.Position)
	}
	if want := []string{"1/0/1", "1/1/1", "1/2/1"}; !slices.Equal(waits, want) {
		t.Fatalf("waits at %v, want %v", waits, want)
	}
	if len(h.Events) != 0 || f.Effects.Total() != 0 {
		t.Fatalf("while parked: events %v, %d effects", h.Positions(), f.Effects.Total())
	}
	if n, err := f.Backend.FireWaits(f.Context(), id); err != nil || n != 3 {
		t.Fatalf("fire waits: %d, %v; want 3", n, err)
	}
	res := f.RunToEnd(id, p, runtime.StatusCompleted)
	if string(res.Outcome.Result) != "[0,1,2]" {
		t.Errorf("result %s, want [0,1,2]", res.Outcome.Result)
	}
	h = f.History(id)
	want := []string{"1", "1/0/1", "1/0/2", "1/1/1", "1/1/2", "1/2/1", "1/2/2"}
	if got := h.Positions(); !slices.Equal(got, want) {
		t.Errorf("positions %v, want %v", got, want)
	}
	assertWrittenOnce(t, h)
	assertCounts(t, f, id, 0, nil)
	logs := f.Logs()
	for i := range 3 {
		for _, line := range []string{fmt.Sprintf("item %d sleeps", i), fmt.Sprintf("item %d woke", i)} {
			if got := countLines(logs, line); got != 1 {
				t.Errorf("log %q written %d times, want once", line, got)
			}
		}
	}
}

// testNowAndUUID: now() and uuid() give a replay the first run's values.
func testNowAndUUID(t *testing.T, newBackend func(t *testing.T) Backend) {
	f := NewFixture(t, newBackend(t), Options{})
	p := f.Script("now_uuid")
	id := f.Start(p, "")
	assertKilled(t, f.Run(id, p, Faults{KillAtEffect: 1}))
	res := f.RunToEnd(id, p, runtime.StatusCompleted)
	calls := f.Effects.Calls()
	if len(calls) != 2 || calls[0].Key != calls[1].Key {
		t.Fatalf("effect calls %+v, want the same step twice", calls)
	}
	if calls[0].Value != calls[1].Value {
		t.Errorf("first run saw %s, replay saw %s", calls[0].Value, calls[1].Value)
	}
	var got []string
	if err := json.Unmarshal(res.Outcome.Result, &got); err != nil || len(got) != 3 {
		t.Fatalf("result %s: %v", res.Outcome.Result, err)
	}
	if first := fmt.Sprintf("[%q, %q]", got[0], got[1]); first != calls[0].Value {
		t.Errorf("the replay returned %s, the first run saw %s", first, calls[0].Value)
	}
	if got[2] == got[0] {
		t.Errorf("a later now() returned the same time %s", got[2])
	}
	if !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`).MatchString(got[1]) {
		t.Errorf("uuid() = %q", got[1])
	}
	h := f.History(id)
	if ev := h.Event("2"); ev.Kind != runtime.KindUUID || string(ev.Result) != strconv.Quote(got[1]) {
		t.Errorf("event 2 = %s %s, want uuid %q", ev.Kind, ev.Result, got[1])
	}
	assertWrittenOnce(t, h)
}

// testBadInput: runaway loops, oversized results, effects outside steps and
// nested steps fail the execution with a clear error.
func testBadInput(t *testing.T, newBackend func(t *testing.T) Backend) {
	tests := []struct {
		script  string
		input   string
		limits  runtime.Limits
		want    []string // in the execution's error
		events  int      // events recorded
		failed  string   // the position recording the error, if any
		effects int      // effects run
	}{
		{script: "endless", limits: runtime.Limits{MaxSteps: 10_000},
			want: []string{"step budget", "max_starlark_steps", "endless.star:"}},
		{script: "big_result", input: `{"size": 2000}`, limits: runtime.Limits{MaxResultBytes: 1000},
			want: []string{"max_result_bytes", "2002 bytes"}, events: 1, failed: "1", effects: 1},
		{script: "big_result", input: `{"size": 900}`, limits: runtime.Limits{MaxResultBytes: 1000},
			events: 1, effects: 1},
		{script: "effect_outside",
			want: []string{"http.get is an effect", "call(http.get", "effect_outside.star:3"}},
		{script: "sequential", input: `{"n": 5}`, limits: runtime.Limits{MaxHistory: 3},
			want: []string{"max_history", "history is full: 3 events"}, events: 3, effects: 3},
		{script: "nested",
			want: []string{"steps do not nest", "nested.star:3"}, events: 1, failed: "1"},
	}
	for _, tt := range tests {
		t.Run(tt.script+tt.input, func(t *testing.T) {
			f := NewFixture(t, newBackend(t), Options{Limits: tt.limits})
			p := f.Script(tt.script)
			id := f.Start(p, tt.input)
			want := runtime.StatusFailed
			if tt.want == nil {
				want = runtime.StatusCompleted
			}
			res := f.RunToEnd(id, p, want)
			for _, w := range tt.want {
				if !strings.Contains(res.Outcome.Error, w) {
					t.Errorf("error %q does not contain %q", res.Outcome.Error, w)
				}
			}
			h := f.History(id)
			if len(h.Events) != tt.events {
				t.Errorf("%d events %v, want %d", len(h.Events), h.Positions(), tt.events)
			}
			for _, ev := range h.Events {
				if ev.Failed() != (ev.Position == tt.failed) {
					t.Errorf("event %s error %q, want only %q failed", ev.Position, ev.Error, tt.failed)
				} else if ev.Failed() && !strings.Contains(ev.Error, tt.want[0]) {
					t.Errorf("event %s error %q, want it to contain %q", ev.Position, ev.Error, tt.want[0])
				}
			}
			if got := f.Effects.Total(); got != tt.effects {
				t.Errorf("%d effects ran, want %d", got, tt.effects)
			}
		})
	}
}

// testStepError: a step that raises is recorded failed and a replay raises
// the same error without running it again.
func testStepError(t *testing.T, newBackend func(t *testing.T) Backend) {
	tests := []struct {
		name, input string
		want        []string
	}{
		{"effect", `{"go": true}`, []string{"call effect at position 1 failed", "kaput"}},
		{"starlark", `{"go": false}`, []string{"call broken at position 1 failed", "bad thing", "step_error.star:3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := NewFixture(t, newBackend(t), Options{})
			p := f.Script("step_error")
			straight := f.Start(p, tt.input)
			first := f.RunToEnd(straight, p, runtime.StatusFailed)

			id := f.Start(p, tt.input)
			assertKilled(t, f.Run(id, p, Faults{KillAfterAppend: 1}))
			replayed := f.RunToEnd(id, p, runtime.StatusFailed)
			if replayed.Outcome.Error != first.Outcome.Error {
				t.Errorf("replayed error\n%s\ndiffers from the first run's\n%s", replayed.Outcome.Error, first.Outcome.Error)
			}
			for _, w := range tt.want {
				if !strings.Contains(replayed.Outcome.Error, w) {
					t.Errorf("error %q does not contain %q", replayed.Outcome.Error, w)
				}
			}
			if replayed.Appends != 0 {
				t.Errorf("the replay appended %d events", replayed.Appends)
			}
			h := f.History(id)
			if ev := h.Event("1"); ev == nil || !ev.Failed() || !strings.Contains(ev.Error, tt.want[1]) {
				t.Errorf("event 1 = %+v, want a recorded failure", ev)
			}
			assertWrittenOnce(t, h)
			if tt.name == "effect" {
				if got := f.Effects.Count(runtime.IdempotencyKey(id, "1")); got != 1 {
					t.Errorf("the failing step ran %d times, want once", got)
				}
			}
		})
	}
}

// testSecrets: a secret's value reaches effects but never history, results,
// errors or logs.
func testSecrets(t *testing.T, newBackend func(t *testing.T) Backend) {
	const value = "s3cr3t-v4lue"
	f := NewFixture(t, newBackend(t), Options{Secrets: map[string]string{"TOKEN": value}})
	p := f.Script("secrets")
	id := f.Start(p, "")
	res := f.RunToEnd(id, p, runtime.StatusFailed)
	h := f.History(id)
	stored, _ := json.Marshal(h)
	for what, text := range map[string]string{"history": string(stored), "outcome": res.Outcome.Error, "logs": f.Logs()} {
		if strings.Contains(text, value) {
			t.Errorf("the secret's value is in the %s: %s", what, text)
		}
	}
	for _, pos := range []string{"1", "2"} {
		var got string
		if ev := h.Event(pos); ev == nil || json.Unmarshal(ev.Result, &got) != nil || got != "<secret TOKEN>" {
			t.Errorf("event %s = %+v, want the placeholder as its result", pos, ev)
		}
	}
	if ev := h.Event("3"); ev == nil || !strings.Contains(ev.Error, "denied for <secret TOKEN>") {
		t.Errorf("event 3 = %+v, want the error with the placeholder", ev)
	}
}

func positions(from, to int) []string {
	out := []string{}
	for i := from; i <= to; i++ {
		out = append(out, strconv.Itoa(i))
	}
	return out
}

func assertKilled(t *testing.T, res RunResult) {
	t.Helper()
	if res.Outcome.Status != "" || !errors.Is(res.Outcome.Err, ErrKilled) {
		t.Fatalf("killed run: status %q err %v error %q, want an abort by ErrKilled",
			res.Outcome.Status, res.Outcome.Err, res.Outcome.Error)
	}
	if res.Execution.Status.Terminal() {
		t.Fatalf("killed run stored status %s", res.Execution.Status)
	}
}

// assertWrittenOnce fails unless every recorded position was written once.
func assertWrittenOnce(t *testing.T, h *History) {
	t.Helper()
	for _, ev := range h.Events {
		if n := h.Writes[ev.Position]; n != 1 {
			t.Errorf("position %s written %d times", ev.Position, n)
		}
	}
	if len(h.Writes) != len(h.Events) {
		t.Errorf("%d positions written, %d events", len(h.Writes), len(h.Events))
	}
}

// assertCounts checks that the effect at every position of id ran once,
// except those in more; with n > 0, that positions 1..n all ran.
func assertCounts(t *testing.T, f *Fixture, id string, n int, more map[string]int) {
	t.Helper()
	prefix := id + "/"
	got := map[string]int{}
	for key, c := range f.Effects.Counts() {
		if pos, ok := strings.CutPrefix(key, prefix); ok {
			got[pos] = c
		}
	}
	for i := 1; i <= n; i++ {
		if _, ok := got[strconv.Itoa(i)]; !ok {
			t.Errorf("the effect at position %d never ran", i)
		}
	}
	for pos, c := range got {
		want := 1
		if m, ok := more[pos]; ok {
			want = m
		}
		if c != want {
			t.Errorf("the effect at position %s ran %d times, want %d (key %s)", pos, c, want, prefix+pos)
		}
	}
}

// markerLine returns "<file>:<line>:" of the line in p's main file holding marker.
func markerLine(t *testing.T, p *runtime.Program, marker string) string {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(p.Bundle.Files[p.Bundle.Main]))
	for line := 1; sc.Scan(); line++ {
		if strings.Contains(sc.Text(), marker) {
			return fmt.Sprintf("%s:%d:", p.Bundle.Main, line)
		}
	}
	t.Fatalf("%s has no line with %q", p.Bundle.Main, marker)
	return ""
}

// testSignals: a signal sent before the script waits for it is kept and
// consumed at once, in order; one sent to a parked wait resolves it; a
// timeout returns timed_out.
func testSignals(t *testing.T, newBackend func(t *testing.T) Backend) {
	f := NewFixture(t, newBackend(t), Options{})
	p := f.Script("signal")
	id := f.Start(p, "")
	ctx := f.Context()
	// Two signals before the first run: both kept, consumed by the two waits.
	for _, data := range []string{`{"n": 1}`, `{"n": 2}`} {
		if err := f.Backend.Signal(ctx, id, "go", json.RawMessage(data)); err != nil {
			t.Fatal(err)
		}
	}
	f.RunToEnd(id, p, runtime.StatusWaiting)
	h := f.History(id)
	if got := h.Positions(); !slices.Equal(got, positions(1, 2)) {
		t.Fatalf("positions %v, want the two kept signals consumed at [1 2]", got)
	}
	if len(h.Waits) != 1 || h.Waits[0].Kind != runtime.KindSignal || h.Waits[0].Name != "extra" || h.Waits[0].Deadline == nil {
		t.Fatalf("waits %+v, want one signal wait for extra with a deadline", h.Waits)
	}
	if n, err := f.Backend.FireWaits(ctx, id); err != nil || n != 1 {
		t.Fatalf("fire waits: %d, %v", n, err)
	}
	res := f.RunToEnd(id, p, runtime.StatusCompleted)
	if want := `{"by":"test","first":{"n":1},"late":true,"second":{"n":2}}`; string(res.Outcome.Result) != want {
		t.Errorf("result %s, want %s", res.Outcome.Result, want)
	}
	assertWrittenOnce(t, f.History(id))

	// A signal sent to a parked wait resolves it.
	id2 := f.Start(p, "")
	f.RunToEnd(id2, p, runtime.StatusWaiting)
	if h := f.History(id2); len(h.Waits) != 1 || h.Waits[0].Position != "1" {
		t.Fatalf("waits %+v, want the first wait parked at 1", h.Waits)
	}
	if err := f.Backend.Signal(ctx, id2, "go", json.RawMessage(`"x"`)); err != nil {
		t.Fatal(err)
	}
	f.RunToEnd(id2, p, runtime.StatusWaiting)
	if h := f.History(id2); len(h.Waits) != 1 || h.Waits[0].Position != "2" || h.Event("1") == nil {
		t.Fatalf("after the signal: events %v, waits %+v; want 1 recorded and a wait at 2", h.Positions(), h.Waits)
	}
}
