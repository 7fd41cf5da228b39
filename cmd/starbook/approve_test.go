package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/starbook/starbook"
	"github.com/starbook/starbook/api"
	"github.com/starbook/starbook/api/apitest"
	sbruntime "github.com/starbook/starbook/runtime"
)

func TestSignal(t *testing.T) {
	t.Setenv("STARBOOK_USER", "alice")
	var got struct {
		id, name, by string
		data         json.RawMessage
	}
	svc := &apitest.Service{SignalFunc: func(_ context.Context, id, name string, data json.RawMessage, by string) error {
		got.id, got.name, got.by, got.data = id, name, by, data
		return nil
	}}
	res := cli(t, svc, "", "signal", "01JEXEC", "deployed", "--data", `{"version": "1.2.3"}`)
	if res.code != 0 || res.stdout != "signal deployed delivered to 01JEXEC\n" {
		t.Fatalf("exit %d: %s %s", res.code, res.stdout, res.stderr)
	}
	if got.id != "01JEXEC" || got.name != "deployed" || got.by != "alice" || string(got.data) != `{"version":"1.2.3"}` {
		t.Fatalf("service got %+v %s", got, got.data)
	}
	res = cli(t, svc, "", "signal", "01JEXEC", "deployed", "--data", `{"version": `)
	if res.code != 1 || !strings.Contains(res.stderr, "--data is not valid JSON") || res.requests != 0 {
		t.Fatalf("bad JSON: exit %d, %d requests, %s", res.code, res.requests, res.stderr)
	}
	res = cli(t, svc, "", "signal", "01JEXEC", "deployed")
	if res.code != 0 || got.data != nil {
		t.Fatalf("no data: exit %d, data %s", res.code, got.data)
	}
}

func TestApprove(t *testing.T) {
	t.Setenv("STARBOOK_USER", "alice")
	var got []struct {
		id, pos string
		d       sbruntime.Decision
	}
	svc := &apitest.Service{DecideFunc: func(_ context.Context, id, pos string, d sbruntime.Decision) (*sbruntime.ApprovalState, error) {
		got = append(got, struct {
			id, pos string
			d       sbruntime.Decision
		}{id, pos, d})
		switch d.User {
		case "late":
			return nil, sbruntime.Conflictf("execution %s position 3 was already decided: approved by bob via slack at 2026-03-01T12:00:00Z", id)
		case "bob":
			return &sbruntime.ApprovalState{Execution: id, Position: "3", Required: 2,
				Approvals: []sbruntime.ApprovalDecision{{User: "bob"}}}, nil
		}
		res := &sbruntime.ApprovalResult{Approved: d.Approve, By: []string{d.User}}
		return &sbruntime.ApprovalState{Execution: id, Position: "3", Resolved: true, Result: res}, nil
	}}
	for _, tc := range []struct {
		args      []string
		stdout    string
		pos, user string
		approve   bool
		comment   string
	}{
		{[]string{"approve", "01JEXEC"}, "01JEXEC position 3: approved by alice\n", "", "alice", true, ""},
		{[]string{"approve", "01JEXEC", "4/0/2", "--reject", "--comment", "not now", "--as", "carol"},
			"01JEXEC position 3: rejected by carol\n", "4/0/2", "carol", false, "not now"},
		{[]string{"approve", "01JEXEC", "3", "--as", "bob"}, "01JEXEC position 3: approval by bob recorded (1 of 2 approvals)\n", "3", "bob", true, ""},
	} {
		got = nil
		res := cli(t, svc, "", tc.args...)
		if res.code != 0 || res.stdout != tc.stdout {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", tc.args, res.code, res.stdout, res.stderr)
			continue
		}
		want := sbruntime.Decision{User: tc.user, Approve: tc.approve, Comment: tc.comment, Via: sbruntime.ViaCLI}
		if len(got) != 1 || got[0].id != "01JEXEC" || got[0].pos != tc.pos || got[0].d != want {
			t.Errorf("%v: service got %+v, want %+v at %q", tc.args, got, want, tc.pos)
		}
	}
	res := cli(t, svc, "", "approve", "01JEXEC", "--as", "late")
	if res.code != 1 || !strings.Contains(res.stderr, "already decided: approved by bob via slack") {
		t.Fatalf("conflict: exit %d, %s", res.code, res.stderr)
	}
}

func TestApproveHTTPStatuses(t *testing.T) {
	for _, tc := range []struct {
		err    error
		status int
	}{
		{sbruntime.Conflictf("already decided"), 409},
		{sbruntime.Forbiddenf("not an approver"), 403},
		{sbruntime.Inputf("not an approval"), 400},
	} {
		svc := &apitest.Service{DecideFunc: func(context.Context, string, string, sbruntime.Decision) (*sbruntime.ApprovalState, error) {
			return nil, tc.err
		}}
		c, stop := apiClient(t, svc)
		_, err := c.Decide(context.Background(), "01JEXEC", "", api.DecisionRequest{Decision: "approve", As: "a"})
		stop()
		var ae *api.Error
		if !asAPIError(err, &ae) || ae.Status != tc.status || ae.Message != tc.err.Error() {
			t.Errorf("%v: got %v", tc.err, err)
		}
	}
}

func TestLsWaiting(t *testing.T) {
	deadline := t0.Add(30 * time.Minute)
	svc := &apitest.Service{WaitsFunc: func(context.Context, starbook.WaitFilter) ([]*starbook.PendingWait, error) {
		return []*starbook.PendingWait{
			{Execution: "01JA", Runbook: "crashloop", Position: "3", Kind: "approval", Message: "Restart web-1?\nlogs...",
				Approvers: []string{"@sre", "bob"}, Required: 2, Approvals: []sbruntime.ApprovalDecision{{User: "bob"}},
				Since: t0, Deadline: &deadline},
			{Execution: "01JB", Runbook: "deploy", Position: "2", Kind: "signal", Name: "deployed", Since: t0},
		}, nil
	}}
	res := cli(t, svc, "", "ls", "--waiting")
	if res.code != 0 {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	for _, want := range []string{"EXECUTION", "01JA", "approval", "@sre,bob", "1/2 bob", "Restart web-1?", "01JB", "signal deployed"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("ls --waiting lacks %q:\n%s", want, res.stdout)
		}
	}
	res = cli(t, svc, "", "ls", "--waiting", "--json")
	var out struct{ Waits []starbook.PendingWait }
	if err := json.Unmarshal([]byte(res.stdout), &out); err != nil || len(out.Waits) != 2 {
		t.Fatalf("--json: %v %s", err, res.stdout)
	}
}

func TestShowDecisions(t *testing.T) {
	res := &sbruntime.ApprovalResult{Approved: true, Decision: "approve", By: []string{"bob", "U0CAROL"}, At: t0, Via: "slack",
		Decisions: []sbruntime.ApprovalDecision{
			{User: "bob", Decision: "approve", Via: "cli", At: t0, Comment: "looks fine"},
			{User: "U0CAROL", Decision: "approve", Via: "slack", At: t0},
		}}
	timeout := sbruntime.ApprovalTimeout("reject", t0)
	svc := &apitest.Service{ExecutionFunc: func(context.Context, string) (*sbruntime.Execution, []*sbruntime.Event, error) {
		return &sbruntime.Execution{ID: "01JEXEC", Runbook: "r", Status: "completed", CreatedAt: t0},
			[]*sbruntime.Event{
				{Position: "1", Kind: "approval", Name: "Restart web-1?", Result: res.JSON(), StartedAt: t0, EndedAt: t0},
				{Position: "2", Kind: "approval", Name: "Again?", Result: timeout, StartedAt: t0, EndedAt: t0},
			}, nil
	}}
	out := cli(t, svc, "", "show", "01JEXEC")
	if out.code != 0 {
		t.Fatalf("exit %d: %s", out.code, out.stderr)
	}
	at := t0.Local().Format(time.RFC3339)
	for _, want := range []string{
		"Approvals:",
		"  1  approved by bob, U0CAROL via slack at " + at,
		`       approve bob via cli at ` + at + ` "looks fine"`,
		"       approve U0CAROL via slack at " + at,
		"  2  timed out at " + at + ": rejected (on_timeout)",
	} {
		if !strings.Contains(out.stdout, want) {
			t.Errorf("show lacks %q:\n%s", want, out.stdout)
		}
	}
}

func apiClient(t *testing.T, svc starbook.Service) (*api.Client, func()) {
	t.Helper()
	srv := httptest.NewServer(api.NewHandler(svc, nil))
	return &api.Client{BaseURL: srv.URL, User: "tester"}, srv.Close
}

func asAPIError(err error, target **api.Error) bool { return errors.As(err, target) }
