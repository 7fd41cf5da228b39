package builtins_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/starbook/starbook/enginetest"
	sbruntime "github.com/starbook/starbook/runtime"
)

// runScript runs src as a runbook on the in-memory backend to its end.
func runScript(t *testing.T, src, input string, want sbruntime.Status) (*enginetest.Fixture, string, enginetest.RunResult) {
	t.Helper()
	f := enginetest.NewFixture(t, enginetest.NewMemBackend(t), enginetest.Options{})
	p := f.Source("script", src)
	id := f.Start(p, input)
	return f, id, f.RunToEnd(id, p, want)
}

// TestDurableArguments: bad arguments to the durable built-ins raise a clear
// error before anything is recorded or run.
func TestDurableArguments(t *testing.T) {
	tests := []struct {
		call string
		want string
	}{
		{`call()`, "call: missing the function to call"},
		{`call(1)`, "call: first argument must be callable, got int"},
		{`call(effect, "x", retry = 0)`, "retry=0: attempts must be between 1 and 100"},
		{`call(effect, "x", retry = "3")`, "retry= wants retry(...) or a number of attempts, got string"},
		{`call(effect, "x", timeout = "soon")`, "timeout=:"},
		{`call(effect, "x", name = 3)`, "name= wants a string, got int"},
		{`compensate()`, "compensate: missing the undo function"},
		{`compensate("undo")`, "compensate: first argument must be callable, got string"},
		{`fan_out(effect, [1], max_concurrency = 0)`, "fan_out: max_concurrency must be at least 1, got 0"},
		{`fan_out(effect, 3)`, "fan_out: for parameter items: got int, want iterable"},
		{`sleep("nope")`, `sleep: for parameter 1: invalid duration "nope"`},
		{`sleep()`, "sleep: got 0 arguments, want 1"},
		{`now(1)`, "now: got 1 arguments, want 0"},
		{`uuid(1)`, "uuid: got 1 arguments, want 0"},
		{`retry(attempts = 0)`, "retry: attempts must be between 1 and 100, got 0"},
		{`retry(multiplier = 0.5)`, "retry: multiplier must be >= 1"},
		{`retry(jitter = 2.0)`, "retry: jitter must be between 0 and 1"},
		{`retry(initial = "2s", max = "1s")`, "retry: max 1s is below initial 2s"},
		{`retry(non_retryable = [1])`, "retry: non_retryable[0] is a int, want string"},
		{`idempotency_key()`, "idempotency_key: only inside a step"},
		{`secret("MISSING_FOR_TEST_" + "X")`, `secret "MISSING_FOR_TEST_X" is not set`},
		{`time.now()`, "time.now() would make replay nondeterministic: use now()"},
		{`effect("x")`, "effect x: only inside a step"},
	}
	for _, tt := range tests {
		t.Run(tt.call, func(t *testing.T) {
			f, id, res := runScript(t, "def main(event):\n    return "+tt.call+"\n", "", sbruntime.StatusFailed)
			if !strings.Contains(res.Outcome.Error, tt.want) {
				t.Errorf("error %q does not contain %q", res.Outcome.Error, tt.want)
			}
			if h := f.History(id); len(h.Events) != 0 {
				t.Errorf("a refused call recorded %v", h.Positions())
			}
			if f.Effects.Total() != 0 {
				t.Errorf("a refused call ran %d effects", f.Effects.Total())
			}
		})
	}
}

// TestCallRetries: retries of one step share its idempotency key and are
// recorded as its attempts; non_retryable errors are not retried.
func TestCallRetries(t *testing.T) {
	tests := []struct {
		name     string
		call     string
		attempts int
		want     []string
	}{
		{"exhausted", `call(effect, "flaky", fail = "down", retry = retry(attempts = 3, initial = "1ms", max = "1ms"))`,
			3, []string{"after 3 attempts", "down"}},
		{"non retryable", `call(effect, "flaky", fail = "fatal: no", retry = retry(attempts = 3, initial = "1ms", non_retryable = ["fatal"]))`,
			1, []string{"fatal: no"}},
		{"single", `call(effect, "flaky", fail = "down")`, 1, []string{"down"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, id, res := runScript(t, "def main(event):\n    return "+tt.call+"\n", "", sbruntime.StatusFailed)
			if got := f.Effects.Count(sbruntime.IdempotencyKey(id, "1")); got != tt.attempts {
				t.Errorf("ran %d times under the step's key, want %d", got, tt.attempts)
			}
			ev := f.History(id).Event("1")
			if ev == nil || !ev.Failed() || ev.Attempts != tt.attempts {
				t.Fatalf("event 1 = %+v, want failed after %d attempts", ev, tt.attempts)
			}
			for _, w := range tt.want {
				if !strings.Contains(ev.Error, w) || !strings.Contains(res.Outcome.Error, w) {
					t.Errorf("recorded error %q / outcome %q: want %q in both", ev.Error, res.Outcome.Error, w)
				}
			}
		})
	}
}

// TestCallTimeout: timeout= bounds one attempt, and the effect sees it.
func TestCallTimeout(t *testing.T) {
	f, id, _ := runScript(t, `def main(event):
    return call(effect, "slow", block = True, timeout = "20ms")
`, "", sbruntime.StatusFailed)
	ev := f.History(id).Event("1")
	if ev == nil || !strings.Contains(ev.Error, "step timed out after 20ms") {
		t.Fatalf("event 1 = %+v, want a recorded timeout", ev)
	}
}

// TestCallName: name= names the step in history instead of the function.
func TestCallName(t *testing.T) {
	f, id, _ := runScript(t, `def main(event):
    return call(effect, "x", name = "restart pod")
`, "", sbruntime.StatusCompleted)
	if ev := f.History(id).Event("1"); ev.Name != "restart pod" {
		t.Errorf("step recorded as %q, want %q", ev.Name, "restart pod")
	}
}

// TestIdempotencyKey: a step function sees <execution>/<position>, inside
// fan_out items too.
func TestIdempotencyKey(t *testing.T) {
	_, id, res := runScript(t, `def main(event):
    first = call(lambda: idempotency_key())
    items = fan_out(lambda i: call(lambda: idempotency_key()), [0, 1])
    return [first] + items
`, "", sbruntime.StatusCompleted)
	var got []string
	if err := json.Unmarshal(res.Outcome.Result, &got); err != nil {
		t.Fatal(err)
	}
	want := []string{id + "/1", id + "/2/0/1", id + "/2/1/1"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("keys %v, want %v", got, want)
	}
}

// TestFanOutSharesFrozenValues: items read values of the main thread; under
// -race this fails if fan_out shares them unfrozen.
func TestFanOutSharesFrozenValues(t *testing.T) {
	_, _, res := runScript(t, `def main(event):
    hosts = ["a", "b", "c", "d"]
    conf = {"port": 80}
    def check(h):
        return call(effect, "check", value = "%s:%d/%d" % (h, conf["port"], len(hosts)))
    return fan_out(check, hosts, max_concurrency = 4)
`, "", sbruntime.StatusCompleted)
	if got := string(res.Outcome.Result); got != `["a:80/4","b:80/4","c:80/4","d:80/4"]` {
		t.Errorf("result %s", got)
	}
}

// TestCompensateNotRunOnSuccess: undos run only when the execution fails.
func TestCompensateNotRunOnSuccess(t *testing.T) {
	f, _, _ := runScript(t, `def main(event):
    call(effect, "create")
    compensate(effect, "undo")
    return "ok"
`, "", sbruntime.StatusCompleted)
	for _, inv := range f.Effects.Calls() {
		if inv.Name == "undo" {
			t.Fatal("an undo ran though the execution completed")
		}
	}
}
