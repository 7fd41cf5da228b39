package node_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/starbook/starbook"
	"github.com/starbook/starbook/builtins"
	"github.com/starbook/starbook/cluster"
	"github.com/starbook/starbook/node"
	sbruntime "github.com/starbook/starbook/runtime"
	"github.com/starbook/starbook/service"
)

const stableSource = `
def main(event):
    return "v1"
`

// canarySource fails when asked to, waits for the signal "go" when asked
// to, and returns "v2".
const canarySource = `
def main(event):
    if event.get("fail"):
        fail("boom")
    if event.get("wait"):
        wait_for_signal("go")
    return "v2"
`

// rolloutNode is a node on a shared etcd, with its service and a stop.
type rolloutNode struct {
	svc  *service.Service
	node *node.Node
	stop func()
}

// startRolloutNode starts node id on emb's etcd, under /ro/, looking at
// rollouts every 50ms besides its wake-ups; stopped at cleanup if not before.
func startRolloutNode(t *testing.T, emb *cluster.Embedded, id string) *rolloutNode {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	bi := builtins.New(builtins.Options{})
	store := cluster.NewStore(emb.Client, "/ro/")
	n, err := node.New(ctx, store, node.Config{ID: id, Builtins: bi, SessionTTL: 2 * time.Second, StopGrace: time.Second,
		RolloutTick: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("node %s run: %v", id, err)
		}
		store.Close()
	}
	t.Cleanup(stop)
	svc := service.New(store, bi)
	svc.Node = n
	return &rolloutNode{svc: svc, node: n, stop: stop}
}

// startOn starts a run of rb with input on rn and returns it as created.
func (rn *rolloutNode) startOn(t *testing.T, input string) *sbruntime.Execution {
	t.Helper()
	e, err := rn.svc.Start(context.Background(), "rb", json.RawMessage(input), sbruntime.Trigger{Type: "manual"})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func (rn *rolloutNode) rollout(t *testing.T) *starbook.Rollout {
	t.Helper()
	r, err := rn.svc.Rollout(context.Background(), "rb")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// setUpCanary applies the stable runbook and then the canary with spec.
func setUpCanary(t *testing.T, rn *rolloutNode, spec starbook.CanarySpec) (stable, canary string) {
	t.Helper()
	ctx := context.Background()
	v1, err := rn.svc.Apply(ctx, map[string]string{"rb.star": stableSource})
	if err != nil {
		t.Fatal(err)
	}
	v2, err := rn.svc.ApplyCanary(ctx, map[string]string{"rb.star": canarySource}, spec, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if v2[0].Rollout == nil || v2[0].Rollout.Stable != v1[0].Version {
		t.Fatalf("apply --canary: %+v", v2[0])
	}
	return v1[0].Version, v2[0].Version
}

func awaitEnd(t *testing.T, rn *rolloutNode, id string) *sbruntime.Execution {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e, err := rn.svc.AwaitEnd(ctx, id)
	if err != nil || !e.Status.Terminal() {
		t.Fatalf("await %s: %v, %v", id, e, err)
	}
	return e
}

func TestRolloutPromotesAfterGoodCanaryRuns(t *testing.T) {
	rn := startRolloutNode(t, startEtcd(t), "n1")
	_, canary := setUpCanary(t, rn, starbook.CanarySpec{Percent: 50, Runs: 3, MaxFailureRate: 0})
	for i := 0; rn.rollout(t).Active(); i++ {
		if i == 200 {
			t.Fatalf("still active after 200 runs: %+v", rn.rollout(t).Counts)
		}
		awaitEnd(t, rn, rn.startOn(t, `{}`).ID)
	}
	r := rn.rollout(t)
	if r.State != starbook.RolloutPromoted || r.EndedBy != "leader" || r.Counts.Ended < 3 || r.Counts.Failed != 0 {
		t.Fatalf("rollout %+v counts %+v, want promoted by the leader after 3 good runs", r, r.Counts)
	}
	if cur, _ := rn.svc.Store.CurrentVersion(context.Background(), "rb"); cur != canary {
		t.Fatalf("current %s, want the canary %s", cur, canary)
	}
	for range 5 {
		if e := awaitEnd(t, rn, rn.startOn(t, `{}`).ID); e.Version != canary || string(e.Result) != `"v2"` {
			t.Fatalf("after promotion a run got %s on %s", e.Result, e.Version)
		}
	}
	assertAudited(t, rn, "rollout.started", "rollout.promoted")
}

func TestRolloutRollsBackAndInFlightCanaryRunsFinish(t *testing.T) {
	rn := startRolloutNode(t, startEtcd(t), "n1")
	ctx := context.Background()
	stable, canary := setUpCanary(t, rn, starbook.CanarySpec{Percent: 50, Runs: 10, MaxFailureRate: 0.1})
	// A canary run in flight, waiting for a signal.
	var waiting *sbruntime.Execution
	for waiting == nil {
		e := rn.startOn(t, `{"wait": true}`)
		if e.Version == canary {
			waiting = e
		}
	}
	// Failures: the bound allows one of ten; the second rolls it back.
	failed := 0
	for rn.rollout(t).Active() {
		e := awaitEnd(t, rn, rn.startOn(t, `{"fail": true}`).ID)
		if e.Version == canary {
			failed++
		}
		if failed >= 2 {
			waitFor(t, func() bool { return !rn.rollout(t).Active() })
		}
	}
	r := rn.rollout(t)
	if r.State != starbook.RolloutRolledBack || failed != 2 || r.Counts.Failed != 2 {
		t.Fatalf("rollout %+v counts %+v after %d canary failures, want rolled back at the second", r, r.Counts, failed)
	}
	if cur, _ := rn.svc.Store.CurrentVersion(ctx, "rb"); cur != stable {
		t.Fatalf("current %s, want the stable %s", cur, stable)
	}
	for range 20 {
		if e := rn.startOn(t, `{}`); e.Version != stable {
			t.Fatalf("after rollback a run started on %s", e.Version)
		}
	}
	if err := rn.svc.Signal(ctx, waiting.ID, "go", nil, "test"); err != nil {
		t.Fatal(err)
	}
	if e := awaitEnd(t, rn, waiting.ID); e.Status != sbruntime.StatusCompleted || string(e.Result) != `"v2"` || e.Version != canary {
		t.Fatalf("in-flight canary run ended %s with %s on %s, want completed v2 on its pinned canary", e.Status, e.Result, e.Version)
	}
	assertAudited(t, rn, "rollout.started", "rollout.rolled_back")
}

// TestRolloutSurvivesLeaderFailover ends half the canary runs under one
// leader and half under the next: the next leader counts them all.
func TestRolloutSurvivesLeaderFailover(t *testing.T) {
	emb := startEtcd(t)
	ctx := context.Background()
	n1 := startRolloutNode(t, emb, "n1")
	waitFor(t, func() bool { return n1.node.IsLeader(ctx) })
	n2 := startRolloutNode(t, emb, "n2")
	_, canary := setUpCanary(t, n1, starbook.CanarySpec{Percent: 50, Runs: 4, MaxFailureRate: 0})
	var canaries []string
	for len(canaries) < 4 {
		if e := n1.startOn(t, `{"wait": true}`); e.Version == canary {
			canaries = append(canaries, e.ID)
		}
	}
	for _, id := range canaries[:2] {
		if err := n1.svc.Signal(ctx, id, "go", nil, "test"); err != nil {
			t.Fatal(err)
		}
		awaitEnd(t, n1, id)
	}
	if r := n1.rollout(t); !r.Active() || r.Counts.Ended != 2 {
		t.Fatalf("before fail-over: %+v counts %+v, want active with 2 ended", r, r.Counts)
	}
	n1.stop()
	waitFor(t, func() bool { return n2.node.IsLeader(ctx) })
	for _, id := range canaries[2:] {
		if err := n2.svc.Signal(ctx, id, "go", nil, "test"); err != nil {
			t.Fatal(err)
		}
		awaitEnd(t, n2, id)
	}
	waitFor(t, func() bool { return !n2.rollout(t).Active() })
	r := n2.rollout(t)
	if r.State != starbook.RolloutPromoted || r.Counts.Ended != 4 {
		t.Fatalf("after fail-over: %+v counts %+v, want promoted after 4 runs", r, r.Counts)
	}
	if cur, _ := n2.svc.Store.CurrentVersion(ctx, "rb"); cur != canary {
		t.Fatalf("current %s, want the canary %s", cur, canary)
	}
}

func assertAudited(t *testing.T, rn *rolloutNode, actions ...string) {
	t.Helper()
	recs, err := rn.svc.Store.Audit(context.Background(), "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, rec := range recs {
		if rec.Runbook == "rb" {
			seen[rec.Action] = true
		}
	}
	for _, a := range actions {
		if !seen[a] {
			t.Errorf("no audit record %s in %v", a, seen)
		}
	}
}
