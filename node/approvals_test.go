package node_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/starbook/starbook"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/starbook/starbook/cluster"
	sbruntime "github.com/starbook/starbook/runtime"
)

// approvalRunbook reports everything the approval value says, so a test
// sees what the script saw after the replay that resumed it.
const approvalRunbook = `
def main(event):
    ok = wait_for_approval("Restart " + event.pod + "?", %s)
    return {"truth": bool(ok), "approved": ok.approved, "decision": ok.decision, "by": ok.by,
            "via": ok.via, "comment": ok.comment, "at": str(ok.at), "decisions": len(ok.decisions),
            "same": ok == ok, "value": ok}
`

// startApproval applies a runbook whose wait_for_approval takes kwargs,
// starts it as a manual run by requester and returns its pending wait.
func startApproval(t *testing.T, tn *testNode, kwargs, requester string) *sbruntime.Wait {
	t.Helper()
	name := fmt.Sprintf("approve%d", time.Now().UnixNano())
	tn.apply(t, map[string]string{name + ".star": fmt.Sprintf(approvalRunbook, kwargs)})
	e, err := tn.svc.Start(context.Background(), name, json.RawMessage(`{"pod": "web-1"}`),
		sbruntime.Trigger{Type: "manual", Source: requester})
	if err != nil {
		t.Fatal(err)
	}
	return awaitPendingWait(t, tn.svc.Store, e.ID)
}

func awaitPendingWait(t *testing.T, s *cluster.Store, id string) *sbruntime.Wait {
	t.Helper()
	var found *sbruntime.Wait
	waitFor(t, func() bool {
		pending, err := s.PendingWaits(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range pending {
			if p.Wait.Execution == id {
				found = p.Wait
				return true
			}
		}
		return false
	})
	return found
}

func endOf(t *testing.T, tn *testNode, id string) (*sbruntime.Execution, []*sbruntime.Event) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := tn.svc.AwaitEnd(ctx, id); err != nil {
		t.Fatal(err)
	}
	e, history, err := tn.svc.Execution(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return e, history
}

func resultOf(t *testing.T, e *sbruntime.Execution) map[string]any {
	t.Helper()
	if e.Status != sbruntime.StatusCompleted {
		t.Fatalf("execution %s: %s %s", e.ID, e.Status, e.Error)
	}
	var m map[string]any
	if err := json.Unmarshal(e.Result, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func approvalEvents(history []*sbruntime.Event) []*sbruntime.Event {
	var out []*sbruntime.Event
	for _, ev := range history {
		if ev.Kind == sbruntime.KindApproval {
			out = append(out, ev)
		}
	}
	return out
}

func decide(s *cluster.Store, w *sbruntime.Wait, user string, approve bool) (*sbruntime.ApprovalState, error) {
	return s.Decide(context.Background(), w.Execution, w.Position,
		sbruntime.Decision{User: user, Approve: approve, Comment: "by " + user, Via: sbruntime.ViaCLI})
}

// Twenty concurrent approve and reject requests for one wait record exactly
// one decision; every loser is told who decided.
func TestDecideConcurrentFirstWins(t *testing.T) {
	tn := startTestNode(t, t.TempDir())
	w := startApproval(t, tn, `approvers = []`, "")
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		winners   []string
		conflicts int
	)
	start := make(chan struct{})
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			user := fmt.Sprintf("user%02d", i)
			st, err := decide(tn.svc.Store, w, user, i%2 == 0)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil && st.Resolved:
				winners = append(winners, user)
			case errors.Is(err, sbruntime.ErrConflict) && strings.Contains(err.Error(), "already decided"):
				conflicts++
			default:
				t.Errorf("%s: %+v, %v", user, st, err)
			}
		}()
	}
	close(start)
	wg.Wait()
	if len(winners) != 1 || conflicts != 19 {
		t.Fatalf("winners %v, conflicts %d; want one winner and 19 conflicts", winners, conflicts)
	}
	e, history := endOf(t, tn, w.Execution)
	res := resultOf(t, e)
	evs := approvalEvents(history)
	if len(evs) != 1 {
		t.Fatalf("%d approval events, want 1", len(evs))
	}
	var recorded sbruntime.ApprovalResult
	if err := json.Unmarshal(evs[0].Result, &recorded); err != nil {
		t.Fatal(err)
	}
	if len(recorded.Decisions) != 1 || recorded.Decisions[0].User != winners[0] || recorded.By[0] != winners[0] {
		t.Fatalf("recorded %+v, winner %s", recorded, winners[0])
	}
	if res["by"].([]any)[0] != winners[0] || res["truth"] != res["approved"] || res["same"] != true || res["via"] != "cli" {
		t.Fatalf("script saw %v", res)
	}
	if got := evs[0].Name; got != "Restart web-1?" {
		t.Fatalf("event name %q", got)
	}
	// A late click is refused and changes nothing.
	if _, err := decide(tn.svc.Store, w, "late", true); !errors.Is(err, sbruntime.ErrConflict) ||
		!strings.Contains(err.Error(), "by "+winners[0]) {
		t.Fatalf("late decision: %v", err)
	}
}

// required=2 needs two distinct authorised approvers, and the person who
// started the run does not count.
func TestDecideTwoPersonRule(t *testing.T) {
	tn := startTestNode(t, t.TempDir())
	w := startApproval(t, tn, `approvers = ["alice", "bob", "carol@example.com"], required = 2`, "alice")
	s := tn.svc.Store

	if _, err := decide(s, w, "alice", true); !errors.Is(err, sbruntime.ErrForbidden) || !strings.Contains(err.Error(), "two-person rule") {
		t.Fatalf("requester approving her own run: %v", err)
	}
	if _, err := decide(s, w, "mallory", true); !errors.Is(err, sbruntime.ErrForbidden) || !strings.Contains(err.Error(), "not an approver") {
		t.Fatalf("unlisted user: %v", err)
	}
	st, err := decide(s, w, "bob", true)
	if err != nil || st.Resolved || len(st.Approvals) != 1 || st.Required != 2 {
		t.Fatalf("first approval: %+v, %v", st, err)
	}
	if st, err := decide(s, w, "BOB", true); err != nil || !st.Duplicate || st.Resolved {
		t.Fatalf("double click: %+v, %v", st, err)
	}
	pending, err := s.PendingWaits(context.Background())
	if err != nil || len(pending) != 1 || len(pending[0].Approvals) != 1 || pending[0].Request.Requester != "alice" {
		t.Fatalf("pending: %+v, %v", pending, err)
	}
	st, err = decide(s, w, "Carol@Example.com", true)
	if err != nil || !st.Resolved || !st.Result.Approved {
		t.Fatalf("second approval: %+v, %v", st, err)
	}
	e, history := endOf(t, tn, w.Execution)
	res := resultOf(t, e)
	by := res["by"].([]any)
	if len(by) != 2 || by[0] != "bob" || by[1] != "Carol@Example.com" || res["decisions"] != float64(2) || res["truth"] != true {
		t.Fatalf("result %v", res)
	}
	if evs := approvalEvents(history); len(evs) != 1 {
		t.Fatalf("approval events %d", len(evs))
	}
	// The approvals of a resolved wait are cleaned up with it.
	resp, err := s.Client().Get(context.Background(), key(s, "approvals/"), clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || resp.Count != 0 {
		t.Fatalf("approval keys left: %v, %v", resp.Count, err)
	}
}

func TestDecideRejectAndErrors(t *testing.T) {
	tn := startTestNode(t, t.TempDir())
	w := startApproval(t, tn, `approvers = ["alice", "bob"], required = 2`, "")
	s := tn.svc.Store
	ctx := context.Background()
	if _, err := s.Decide(ctx, "nope", "", sbruntime.Decision{User: "bob", Via: "cli"}); !errors.Is(err, sbruntime.ErrNotFound) {
		t.Fatalf("unknown execution: %v", err)
	}
	if _, err := s.Decide(ctx, w.Execution, "7", sbruntime.Decision{User: "bob", Via: "cli"}); !errors.Is(err, sbruntime.ErrNotFound) {
		t.Fatalf("no wait at 7: %v", err)
	}
	if _, err := s.Decide(ctx, w.Execution, "", sbruntime.Decision{User: "bob", Via: "fax"}); err == nil {
		t.Fatal("via fax accepted")
	}
	if _, err := decide(s, w, "alice", true); err != nil {
		t.Fatal(err)
	}
	// One reject by an authorised user resolves at once, keeping alice's
	// approval in the record. Position "" finds the only pending approval.
	st, err := s.Decide(ctx, w.Execution, "", sbruntime.Decision{User: "bob", Comment: "not now", Via: sbruntime.ViaAPI})
	if err != nil || !st.Resolved || st.Result.Approved || st.Result.Decision != "reject" {
		t.Fatalf("reject: %+v, %v", st, err)
	}
	e, _ := endOf(t, tn, w.Execution)
	res := resultOf(t, e)
	if res["truth"] != false || res["decision"] != "reject" || res["comment"] != "not now" || res["decisions"] != float64(2) {
		t.Fatalf("result %v", res)
	}
	if _, err := s.Decide(ctx, w.Execution, "", sbruntime.Decision{User: "bob", Via: "cli"}); !errors.Is(err, sbruntime.ErrConflict) ||
		!strings.Contains(err.Error(), "already decided: rejected by bob via api") {
		t.Fatalf("after the end: %v", err)
	}
}

// fireDue fires the timer of wait w as the leader does when it is due.
func fireDue(t *testing.T, s *cluster.Store, w *sbruntime.Wait) string {
	t.Helper()
	if w.Deadline == nil {
		t.Fatal("wait has no deadline")
	}
	key := timerKey(s, *w.Deadline, w.Execution, w.Position)
	if err := s.FireTimer(context.Background(), key); err != nil {
		t.Fatal(err)
	}
	return key
}

func currentWait(t *testing.T, s *cluster.Store, w *sbruntime.Wait) (*sbruntime.Wait, *sbruntime.ApprovalRequest) {
	t.Helper()
	resp, err := s.Client().Get(context.Background(), key(s, "waits", w.Execution, w.Position))
	if err != nil || len(resp.Kvs) == 0 {
		t.Fatalf("wait gone: %v", err)
	}
	// What escalation rewrote leaves out what the key holds, too.
	if v := resp.Kvs[0].Value; bytes.Contains(v, []byte(`"execution"`)) || bytes.Contains(v, []byte(`"position"`)) {
		t.Errorf("stored wait %s repeats its key", v)
	}
	waits, err := s.ExecutionWaits(context.Background(), w.Execution)
	if err != nil {
		t.Fatal(err)
	}
	var x *sbruntime.Wait
	for _, cur := range waits {
		if cur.Position == w.Position {
			x = cur
		}
	}
	if x == nil {
		t.Fatalf("wait %s/%s not listed", w.Execution, w.Position)
	}
	req, err := sbruntime.ParseApprovalRequest(x)
	if err != nil {
		t.Fatal(err)
	}
	return x, req
}

// The first deadline of an escalating approval re-asks it of other people
// in another channel with a second deadline; the second applies then=.
func TestApprovalEscalation(t *testing.T) {
	tn := startTestNode(t, t.TempDir())
	s := tn.svc.Store
	w := startApproval(t, tn, `approvers = ["alice"], channel = "#oncall", timeout = "1h",
        on_timeout = escalate(channel = "#managers", approvers = ["boss"], timeout = "2h", then = "approve")`, "")
	if _, err := decide(s, w, "alice", true); err != nil {
		// alice may approve in the first round; undo by using another run
		t.Fatal(err)
	}
	e, _ := endOf(t, tn, w.Execution)
	if resultOf(t, e)["approved"] != true {
		t.Fatal("first-round approval not applied")
	}

	w = startApproval(t, tn, `approvers = ["alice"], channel = "#oncall", timeout = "1h",
        on_timeout = escalate(channel = "#managers", approvers = ["boss"], timeout = "2h", then = "approve")`, "")
	first := fireDue(t, s, w)
	esc, req := currentWait(t, s, w)
	if req.Round != 1 || req.Channel != "#managers" || len(req.Approvers) != 1 || req.Approvers[0] != "boss" ||
		req.OnTimeout != "approve" || req.Notified != nil || !esc.Deadline.After(*w.Deadline) {
		t.Fatalf("escalated wait %+v request %+v", esc, req)
	}
	ctx := context.Background()
	for _, key := range []string{first, timerKey(s, *esc.Deadline, w.Execution, w.Position)} {
		resp, err := s.Client().Get(ctx, key, clientv3.WithCountOnly())
		if err != nil {
			t.Fatal(err)
		}
		if want := int64(0); key != first {
			want = 1
			if resp.Count != want {
				t.Fatalf("new timer %s: count %d", key, resp.Count)
			}
		} else if resp.Count != want {
			t.Fatalf("old timer %s still there", key)
		}
	}
	if _, err := decide(s, w, "alice", true); !errors.Is(err, sbruntime.ErrForbidden) {
		t.Fatalf("first-round approver after escalation: %v", err)
	}
	// The old timer firing again (a leader that crashed mid-fire) is a no-op.
	if err := s.FireTimer(ctx, first); err != nil {
		t.Fatal(err)
	}
	if _, again := currentWait(t, s, w); again.Round != 1 {
		t.Fatalf("escalated twice: %+v", again)
	}
	fireDue(t, s, esc)
	e, history := endOf(t, tn, w.Execution)
	res := resultOf(t, e)
	if res["approved"] != true || res["decision"] != "timeout" || res["via"] != "timeout" {
		t.Fatalf("result %v", res)
	}
	if evs := approvalEvents(history); len(evs) != 1 {
		t.Fatalf("approval events: %d", len(evs))
	}
}

func TestApprovalTimeoutOutcomes(t *testing.T) {
	tn := startTestNode(t, t.TempDir())
	s := tn.svc.Store
	for _, tc := range []struct {
		onTimeout string
		approved  bool
		fails     bool
	}{{"reject", false, false}, {"approve", true, false}, {"fail", false, true}} {
		t.Run(tc.onTimeout, func(t *testing.T) {
			w := startApproval(t, tn, `approvers = ["a", "b"], required = 2, timeout = "1h", on_timeout = "`+tc.onTimeout+`"`, "")
			if _, err := decide(s, w, "a", true); err != nil {
				t.Fatal(err)
			}
			fireDue(t, s, w)
			fireDue(t, s, w) // at most once
			e, history := endOf(t, tn, w.Execution)
			evs := approvalEvents(history)
			if len(evs) != 1 {
				t.Fatalf("approval events: %d", len(evs))
			}
			var rec sbruntime.ApprovalResult
			if err := json.Unmarshal(evs[0].Result, &rec); err != nil || len(rec.Decisions) != 1 || rec.Decisions[0].User != "a" {
				t.Fatalf("recorded %s: %v (the partial approval must be kept)", evs[0].Result, err)
			}
			if tc.fails {
				if e.Status != sbruntime.StatusFailed || !strings.Contains(e.Error, "approval timed out after 1h0m0s") {
					t.Fatalf("status %s error %q", e.Status, e.Error)
				}
				return
			}
			res := resultOf(t, e)
			if res["approved"] != tc.approved || res["truth"] != tc.approved || res["decision"] != "timeout" {
				t.Fatalf("result %v", res)
			}
		})
	}
}

// fakeDirectory is a Directory from maps.
type fakeDirectory struct {
	groups map[string][]string
	people map[string]starbook.ChatUser
}

func (d *fakeDirectory) GroupMembers(_ context.Context, group string) ([]string, error) {
	m, ok := d.groups[group]
	if !ok {
		return nil, fmt.Errorf("no group %s", group)
	}
	return m, nil
}

func (d *fakeDirectory) User(_ context.Context, id string) (starbook.ChatUser, error) {
	p, ok := d.people[id]
	if !ok {
		return starbook.ChatUser{}, fmt.Errorf("no user %s", id)
	}
	return p, nil
}

func TestDecideResolvesSlackApprovers(t *testing.T) {
	tn := startTestNode(t, t.TempDir())
	s := tn.svc.Store
	s.SetDirectory(&fakeDirectory{
		groups: map[string][]string{"@sre": {"U0SRE1", "U0SRE2"}},
		people: map[string]starbook.ChatUser{
			"U0SRE1": {ID: "U0SRE1", Name: "sam", Email: "sam@example.com"},
			"U0SRE2": {ID: "U0SRE2", Name: "kim", Email: "kim@example.com"},
			"U0BOSS": {ID: "U0BOSS", Name: "boss", Email: "boss@example.com"},
			"U0EVE1": {ID: "U0EVE1", Name: "eve", Email: "eve@example.com"},
		},
	})
	for _, tc := range []struct {
		approvers, user string
		ok              bool
	}{
		{`["@sre"]`, "U0SRE2", true},              // a group member clicking in Slack
		{`["@sre"]`, "kim@example.com", true},     // the same person on the CLI, by email
		{`["@sre"]`, "sam", true},                 // by name
		{`["@sre"]`, "U0EVE1", false},             // not in the group
		{`["@sre"]`, "eve", false},                //
		{`["U0BOSS"]`, "boss@example.com", true},  // a Slack id, matched by email
		{`["boss@example.com"]`, "U0BOSS", true},  // an email, matched by the Slack user's email
		{`["boss@example.com"]`, "U0EVE1", false}, //
	} {
		w := startApproval(t, tn, "approvers = "+tc.approvers, "")
		_, err := decide(s, w, tc.user, true)
		if tc.ok != (err == nil) {
			t.Errorf("approvers %s, user %s: %v", tc.approvers, tc.user, err)
		}
		if err != nil {
			if !errors.Is(err, sbruntime.ErrForbidden) {
				t.Errorf("approvers %s, user %s: want forbidden, got %v", tc.approvers, tc.user, err)
			}
			if _, err := tn.svc.Cancel(context.Background(), w.Execution); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestCancelDropsPartialApprovals(t *testing.T) {
	tn := startTestNode(t, t.TempDir())
	s := tn.svc.Store
	w := startApproval(t, tn, `approvers = ["a", "b"], required = 2`, "")
	if _, err := decide(s, w, "a", true); err != nil {
		t.Fatal(err)
	}
	if _, err := tn.svc.Cancel(context.Background(), w.Execution); err != nil {
		t.Fatal(err)
	}
	if e, _ := endOf(t, tn, w.Execution); e.Status != sbruntime.StatusCancelled {
		t.Fatalf("status %s", e.Status)
	}
	resp, err := s.Client().Get(context.Background(), key(s, "approvals", w.Execution)+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || resp.Count != 0 {
		t.Fatalf("approvals left after cancel: %d, %v", resp.Count, err)
	}
	if _, err := decide(s, w, "b", true); !errors.Is(err, sbruntime.ErrNotFound) {
		t.Fatalf("decision after cancel: %v", err)
	}
}

// TestRedrivenApprovalAsksAgain: an approval that failed (timed out with
// on_timeout "fail") is asked again by a redrive from the failed step; the
// new attempt's decision resumes the run, and a late decision is told of
// the new attempt's outcome, not the first one's.
func TestRedrivenApprovalAsksAgain(t *testing.T) {
	tn := startTestNode(t, t.TempDir())
	s := tn.svc.Store
	w := startApproval(t, tn, `approvers = ["a"], timeout = "1h", on_timeout = "fail"`, "")
	fireDue(t, s, w)
	if e, _ := endOf(t, tn, w.Execution); e.Status != sbruntime.StatusFailed {
		t.Fatalf("status %s, want failed on the timeout", e.Status)
	}
	if _, _, err := tn.svc.Redrive(context.Background(), w.Execution, starbook.RedriveRequest{By: "test"}); err != nil {
		t.Fatal(err)
	}
	again := awaitPendingWait(t, s, w.Execution)
	if again.Position != w.Position || again.Attempt != 2 {
		t.Fatalf("wait after redrive %+v, want position %s attempt 2", again, w.Position)
	}
	if st, err := decide(s, again, "a", true); err != nil || !st.Resolved {
		t.Fatalf("decide the second attempt: %+v, %v", st, err)
	}
	e, _ := endOf(t, tn, w.Execution)
	if res := resultOf(t, e); e.Status != sbruntime.StatusCompleted || res["approved"] != true {
		t.Fatalf("status %s result %v, want completed and approved", e.Status, res)
	}
	for _, pos := range []string{w.Position, ""} { // named, and the only one
		_, err := s.Decide(context.Background(), w.Execution, pos, sbruntime.Decision{User: "a", Approve: false, Via: sbruntime.ViaCLI})
		if err == nil || !strings.Contains(err.Error(), "already decided: approved by a") {
			t.Errorf("late decision at %q: %v, want the second attempt's approval", pos, err)
		}
	}
}
