package builtins

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"go.starlark.net/starlark"

	sbruntime "github.com/starbook/starbook/runtime"
)

// runApproval runs main() calling src under a fresh execution with a
// journal that records the wait; it returns the outcome and the wait.
func runApproval(t *testing.T, src string) (sbruntime.Outcome, *sbruntime.Wait) {
	t.Helper()
	bi := New(Options{})
	prog, err := sbruntime.Compile(&sbruntime.Bundle{Name: "t", Main: "t.star",
		Files: map[string]string{"t.star": "def main(event):\n    " + src + "\n"}}, bi)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	j := &memJournal{events: map[string]*sbruntime.Event{}, waits: map[string]*sbruntime.Wait{}}
	out := (&sbruntime.Engine{Builtins: bi}).Execute(context.Background(), prog, &sbruntime.Run{
		Execution: &sbruntime.Execution{ID: "x1", Runbook: "t", Trigger: sbruntime.Trigger{Type: "manual", Source: "alice"}},
		Journal:   j,
	})
	return out, j.waits["1"]
}

func TestWaitForApprovalArguments(t *testing.T) {
	for _, tc := range []struct {
		call, err string
	}{
		{`wait_for_approval("")`, "message must not be empty"},
		{`wait_for_approval("ok?", approvers = ["a", 3])`, "approvers[1]: want a non-empty string"},
		{`wait_for_approval("ok?", approvers = ["a"], required = 2)`, "required=2 but only 1 approvers"},
		{`wait_for_approval("ok?", required = 0)`, "required must be between 1 and 100"},
		{`wait_for_approval("ok?", on_timeout = "maybe")`, `on_timeout must be "reject", "approve", "fail" or escalate(...)`},
		{`wait_for_approval("ok?", on_timeout = escalate(channel = "#x", timeout = "1h"))`, "needs a timeout="},
		{`wait_for_approval("ok?", timeout = "0s")`, "timeout must be positive"},
		{`escalate(timeout = "1h")`, "name a channel= or approvers="},
		{`escalate(channel = "#x", timeout = "1h", then = "shrug")`, `then must be "reject", "approve" or "fail"`},
		{`escalate(channel = "#x")`, "timeout= is required"},
	} {
		out, w := runApproval(t, tc.call)
		if out.Status != sbruntime.StatusFailed || !strings.Contains(out.Error, tc.err) || w != nil {
			t.Errorf("%s: %s %q (wait %v), want an error containing %q", tc.call, out.Status, out.Error, w, tc.err)
		}
	}
}

func TestWaitForApprovalRegistersItsRequest(t *testing.T) {
	out, w := runApproval(t, `wait_for_approval("Restart web-1?\nlogs", approvers = ["@sre", "bob"], channel = "#oncall",
        timeout = "30m", on_timeout = escalate(approvers = ["boss"], timeout = "1h", then = "fail"), required = 2)`)
	if out.Status != sbruntime.StatusWaiting || w == nil {
		t.Fatalf("outcome %+v, wait %+v", out, w)
	}
	req, err := sbruntime.ParseApprovalRequest(w)
	if err != nil {
		t.Fatal(err)
	}
	if w.Kind != sbruntime.KindApproval || w.Name != "Restart web-1?" || w.Deadline == nil || w.Deadline.Sub(w.Since) != 30*time.Minute {
		t.Errorf("wait %+v", w)
	}
	if req.Message != "Restart web-1?\nlogs" || strings.Join(req.Approvers, ",") != "@sre,bob" || req.Channel != "#oncall" ||
		req.Required != 2 || req.Runbook != "t" || req.Requester != "alice" || req.OnTimeout != "escalate" ||
		req.Escalation == nil || req.Escalation.Then != "fail" || req.Escalation.Timeout != time.Hour || req.Escalation.Approvers[0] != "boss" {
		t.Errorf("request %+v escalation %+v", req, req.Escalation)
	}
	// The escalation's then applies at the second deadline; the first one
	// records nothing itself (the timer escalates).
	if w.TimeoutError == "" || len(w.OnTimeout) != 0 {
		t.Errorf("timeout outcome %s / %q", w.OnTimeout, w.TimeoutError)
	}
}

// TestWaitKeepsTimeoutOutcomeOnlyWithDeadline: only a wait with a deadline
// stores what its deadline records; nothing reads it on one without.
func TestWaitKeepsTimeoutOutcomeOnlyWithDeadline(t *testing.T) {
	tests := []struct {
		call                     string
		deadline, result, errMsg bool
	}{
		{`wait_for_signal("go")`, false, false, false},
		{`wait_for_signal("go", timeout = "1h")`, true, true, false},
		{`wait_for_approval("ok?")`, false, false, false},
		{`wait_for_approval("ok?", timeout = "1h")`, true, true, false},
		{`wait_for_approval("ok?", timeout = "1h", on_timeout = "fail")`, true, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.call, func(t *testing.T) {
			out, w := runApproval(t, tt.call)
			if out.Status != sbruntime.StatusWaiting || w == nil {
				t.Fatalf("outcome %+v, wait %+v", out, w)
			}
			if got := w.Deadline != nil; got != tt.deadline {
				t.Errorf("deadline %v, want set %v", w.Deadline, tt.deadline)
			}
			if got := len(w.OnTimeout) > 0; got != tt.result {
				t.Errorf("on_timeout %s, want set %v", w.OnTimeout, tt.result)
			}
			if got := w.TimeoutError != ""; got != tt.errMsg {
				t.Errorf("timeout_error %q, want set %v", w.TimeoutError, tt.errMsg)
			}
		})
	}
}

func TestApprovalValue(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, approved := range []bool{true, false} {
		r := &sbruntime.ApprovalResult{Approved: approved, Decision: "approve", By: []string{"bob", "U0CAROL"}, At: at,
			Comment: "fine", Via: "slack", Decisions: []sbruntime.ApprovalDecision{{User: "bob", Decision: "approve", Via: "cli", At: at}}}
		if !approved {
			r.Decision = "reject"
		}
		a, err := NewApproval(r.JSON())
		if err != nil {
			t.Fatal(err)
		}
		globals, err := starlark.ExecFile(&starlark.Thread{}, "t.star", `
truth = bool(a)
fields = [a.approved, a.decision, a.by, a.comment, a.via, a.at.year, len(a.decisions), a.decisions[0].user]
names = dir(a)
same = a == a
`, starlark.StringDict{"a": a})
		if err != nil {
			t.Fatal(err)
		}
		if globals["truth"] != starlark.Bool(approved) || globals["same"] != starlark.True {
			t.Errorf("approved %v: truth %v", approved, globals["truth"])
		}
		want := `[` + starlark.Bool(approved).String() + `, "` + r.Decision + `", ["bob", "U0CAROL"], "fine", "slack", 2026, 1, "bob"]`
		if got := globals["fields"].String(); got != want {
			t.Errorf("fields %s, want %s", got, want)
		}
		if got := globals["names"].String(); got != `["approved", "at", "by", "comment", "decision", "decisions", "via"]` {
			t.Errorf("dir %s", got)
		}
		// It crosses a checkpoint as the recorded JSON.
		enc, err := sbruntime.Encode(a)
		if err != nil || string(enc) != string(r.JSON()) {
			t.Errorf("encode %s, %v", enc, err)
		}
		var back sbruntime.ApprovalResult
		if err := json.Unmarshal(enc, &back); err != nil || back.Approved != approved {
			t.Errorf("round trip %+v, %v", back, err)
		}
	}
}
