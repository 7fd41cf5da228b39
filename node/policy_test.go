package node_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/starbook/starbook/policy"
	sbruntime "github.com/starbook/starbook/runtime"
)

// methodCounter counts requests by method.
type methodCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (m *methodCounter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m.mu.Lock()
	m.n[r.Method]++
	m.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.Write([]byte(`{"ok": true}`))
}

func (m *methodCounter) count(method string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.n[method]
}

// denyDeletes denies a DELETE unless a step named "check" succeeded
// earlier in the run.
const denyDeletes = `
def on_effect(effect, history):
    if effect.method != "DELETE":
        return None
    if [s for s in history if s.name == "check" and s.status == "ok"]:
        return None
    return deny("DELETE needs a check first")
`

func applyPolicies(t *testing.T, tn *testNode, files map[string]string) {
	t.Helper()
	set, err := tn.svc.ApplyPolicies(context.Background(), files)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return tn.node.PolicyVersion() == set.Version })
}

// TestPolicyDeniesEffect: a denied effect fails its step with the policy's
// file:line, is not sent nor retried, fails the execution and is audited;
// the same effect after the step the policy asks for (recorded earlier in
// the same run) is sent.
func TestPolicyDeniesEffect(t *testing.T) {
	tn := startTestNode(t, t.TempDir())
	mc := &methodCounter{n: map[string]int{}}
	srv := httptest.NewServer(mc)
	t.Cleanup(srv.Close)
	applyPolicies(t, tn, map[string]string{"deletes.star": denyDeletes})
	tn.apply(t, map[string]string{
		"rash.star":    "def main(event):\n    call(http.delete, event.url + \"/x\", retry = 3)\n",
		"many.star":    "def main(event):\n    fan_out(lambda i: call(http.get, event.url + \"/ok\"), range(5))\n",
		"careful.star": "def main(event):\n    call(http.get, event.url + \"/ok\", name = \"check\")\n    return call(http.delete, event.url + \"/x\").status\n",
	})
	input := `{"url": "` + srv.URL + `"}`

	end, history := tn.runToEnd(t, "rash", input)
	if end.Status != sbruntime.StatusFailed || len(history) != 1 {
		t.Fatalf("rash: %s with %d events, want failed with 1", end.Status, len(history))
	}
	ev := history[0]
	if !strings.Contains(ev.Error, "policy: deletes.star:7: DELETE needs a check first") || ev.Attempts != 1 {
		t.Errorf("step error %q after %d attempts, want the policy's refusal, not retried", ev.Error, ev.Attempts)
	}
	if n := mc.count("DELETE"); n != 0 {
		t.Errorf("%d DELETEs sent, want none", n)
	}
	recs, err := tn.svc.Audit(context.Background(), "", 100)
	if err != nil {
		t.Fatal(err)
	}
	var denied int
	for _, r := range recs {
		if r.Action == "policy.deny" && r.Execution == end.ID && strings.Contains(r.Error, "deletes.star:7") {
			denied++
		}
	}
	if denied != 1 {
		t.Errorf("%d policy.deny audit records for %s, want 1: %+v", denied, end.ID, recs)
	}

	// Items of a fan_out are judged concurrently, each against the history.
	end, _ = tn.runToEnd(t, "many", input)
	if end.Status != sbruntime.StatusCompleted || mc.count("GET") != 5 {
		t.Errorf("many: %s %q with %d GETs, want completed with 5", end.Status, end.Error, mc.count("GET"))
	}

	end, _ = tn.runToEnd(t, "careful", input)
	if end.Status != sbruntime.StatusCompleted || string(end.Result) != "200" || mc.count("DELETE") != 1 {
		t.Errorf("careful: %s %s, %d DELETEs; want completed 200 and one DELETE", end.Status, end.Result, mc.count("DELETE"))
	}
}

// TestPolicyNeverReDecidesAReplay: an execution whose history holds an
// effect allowed when no policy denied it replays to its end after a
// policy that denies that effect is applied: the recorded step is not
// decided again. A new execution is refused.
func TestPolicyNeverReDecidesAReplay(t *testing.T) {
	tn := startTestNode(t, t.TempDir())
	ctx := context.Background()
	mc := &methodCounter{n: map[string]int{}}
	srv := httptest.NewServer(mc)
	t.Cleanup(srv.Close)
	tn.apply(t, map[string]string{"purge.star": `
def main(event):
    call(http.delete, event.url + "/cache")
    wait_for_signal("go")
    return "purged"
`})
	input := `{"url": "` + srv.URL + `"}`
	e, err := tn.svc.Start(ctx, "purge", []byte(input), sbruntime.Trigger{Type: "manual"})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		x, _, err := tn.svc.Execution(ctx, e.ID)
		return err == nil && x.Status == sbruntime.StatusWaiting
	})
	applyPolicies(t, tn, map[string]string{"deletes.star": denyDeletes})
	if err := tn.svc.Signal(ctx, e.ID, "go", nil, "test"); err != nil {
		t.Fatal(err)
	}
	end, err := tn.svc.AwaitEnd(ctx, e.ID)
	if err != nil || end.Status != sbruntime.StatusCompleted {
		t.Fatalf("replayed execution: %+v, %v; want completed", end, err)
	}
	if n := mc.count("DELETE"); n != 1 {
		t.Errorf("%d DELETEs sent, want the first run's one", n)
	}
	recs, err := tn.svc.Audit(ctx, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if r.Action == "policy.deny" {
			t.Errorf("a replay was decided again: %+v", r)
		}
	}
	fresh, _ := tn.runToEnd(t, "purge", input)
	if fresh.Status != sbruntime.StatusFailed || !strings.Contains(fresh.Error, "policy: deletes.star:7") {
		t.Errorf("new execution: %s %q, want failed by the policy", fresh.Status, fresh.Error)
	}
}

// TestApplyDeniedByPolicy: a runbook an on_apply denies is refused with the
// policy's file:line and the runbook's, and nothing of the request is
// stored; a policy set that does not load or whose tests fail is refused
// with its file:line and stores nothing.
func TestApplyDeniedByPolicy(t *testing.T) {
	tn := startTestNode(t, t.TempDir())
	ctx := context.Background()
	files, err := policy.ReadFiles("../policies/examples")
	if err != nil {
		t.Fatal(err)
	}
	applyPolicies(t, tn, files)
	_, err = tn.svc.Apply(ctx, map[string]string{
		"fine.star": "def main(event):\n    call(slack.post, \"#ops\", text = \"hi\")\n",
		"leaky.star": "# owner: team-x\ndef main(event):\n    call(http.get, \"http://x/\")\n" +
			"    call(slack.post, \"#general\", text = \"hi\")\n",
	})
	var ie *sbruntime.InputError
	if !errors.As(err, &ie) || !strings.Contains(err.Error(), "policy: slack_channels.star:") ||
		!strings.Contains(err.Error(), ": leaky.star:4: leaky posts to #general") {
		t.Fatalf("apply: %v, want refused naming slack_channels.star and leaky.star:4", err)
	}
	resp, err := tn.svc.Store.Client().Get(ctx, tn.svc.Store.Keys().Runbooks(), clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || resp.Count != 0 {
		t.Fatalf("%d runbook keys after a refused apply (%v), want none", resp.Count, err)
	}
	// An alert trigger without slo() nor a limit: two denials, at the
	// trigger's line.
	_, err = tn.svc.Apply(ctx, map[string]string{
		"crash.star": "# owner: sre\n\ntrigger.alert(alertname = \"X\")\ndef main(event):\n    pass\n",
	})
	for _, want := range []string{"policy: alert_slo.star:15: crash.star:3: runbook crash has an alert trigger but no slo()",
		"policy: alert_slo.star:17: crash.star:3: alert trigger of crash needs max_concurrent= or rate="} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("apply crash: %v, want %q", err, want)
		}
	}
	if _, err := tn.svc.Apply(ctx, map[string]string{
		"crash.star": "slo(success = 0.99, window = \"28d\")\ntrigger.alert(alertname = \"X\", max_concurrent = 2)\ndef main(event):\n    pass\n",
	}); err != nil {
		t.Errorf("apply crash with slo and a limit: %v", err)
	}
	// With its test beside it, the runbook passes the example policy.
	if _, err := tn.svc.Apply(ctx, map[string]string{
		"leaky.star":      "def main(event):\n    call(slack.post, \"#general\", text = \"hi\")\n",
		"leaky_test.star": "def test_x():\n    pass\n",
	}); err != nil {
		t.Fatalf("apply with tests: %v", err)
	}

	before, err := tn.svc.Policies(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for name, bad := range map[string]map[string]string{
		"does not parse": {"a.star": "def on_apply(r):\n    return (\n"},
		"raises":         {"a.star": "def on_apply(r):\n    return None\n", "a_test.star": "load('a.star', 'on_apply')\ndef test_x():\n    fail('boom')\n"},
		"test fails":     {"a.star": "def on_apply(r):\n    return deny('no')\n", "a_test.star": "load('a.star', 'on_apply')\n\ndef test_x():\n    assert.allowed(on_apply(runbook()))\n"},
	} {
		_, err := tn.svc.ApplyPolicies(ctx, bad)
		if !errors.As(err, &ie) || !strings.Contains(err.Error(), "a") || !strings.Contains(err.Error(), ".star:") {
			t.Errorf("%s: %v, want an input error with a file:line", name, err)
		}
		t.Logf("%s: %v", name, err)
		after, err := tn.svc.Policies(ctx)
		if err != nil || after.Version != before.Version {
			t.Errorf("%s: policy set %v after a refused apply (%v), want %s kept", name, after, err, before.Version)
		}
	}
}

// TestApplyWithARaisingPolicy: an on_apply that raises refuses the apply
// with the policy's file:line; nothing is stored.
func TestApplyWithARaisingPolicy(t *testing.T) {
	tn := startTestNode(t, t.TempDir())
	ctx := context.Background()
	applyPolicies(t, tn, map[string]string{"owners.star": "def on_apply(runbook):\n    return {\"a\": None}[runbook.owner]\n"})
	_, err := tn.svc.Apply(ctx, map[string]string{"x.star": "def main(event):\n    pass\n"})
	var ie *sbruntime.InputError
	if !errors.As(err, &ie) || !strings.HasPrefix(err.Error(), "owners.star:2: on_apply failed: key \"\" not in dict") {
		t.Fatalf("apply: %v, want an input error at owners.star:2", err)
	}
	resp, err := tn.svc.Store.Client().Get(ctx, tn.svc.Store.Keys().Runbooks(), clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || resp.Count != 0 {
		t.Fatalf("%d runbook keys after a refused apply (%v), want none", resp.Count, err)
	}
	if _, err := tn.svc.Apply(ctx, map[string]string{"x.star": "# owner: a\ndef main(event):\n    pass\n"}); err != nil {
		t.Fatalf("apply with an owner: %v", err)
	}
}
