package node_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/starbook/starbook"
	"github.com/starbook/starbook/builtins"
	"github.com/starbook/starbook/cluster"
	"github.com/starbook/starbook/node"
	sbruntime "github.com/starbook/starbook/runtime"
	"github.com/starbook/starbook/service"
	"github.com/starbook/starbook/triggers"
	"github.com/starbook/starbook/triggers/triggerstest"
)

// TestPausedCronTickIsDeadLetter: on a one-node cluster whose leader runs
// on a manual clock, a paused runbook's tick starts nothing and is kept as
// a paused dead letter with its cron event; a replay is refused while the
// pause lasts and, once resumed, starts the run as the tick would have.
func TestPausedCronTickIsDeadLetter(t *testing.T) {
	start := time.Date(2026, 1, 15, 9, 59, 30, 0, time.UTC)
	clock := triggerstest.NewClock(start)
	env := startTriggerEnv(t, t.TempDir(), true, clock)
	env.store.SetClock(clock.Now)
	env.svc.Now = clock.Now
	env.apply(t, map[string]string{"report.star": "trigger.cron(\"*/5 * * * *\")\ndef main(event):\n    return event.tick\n"})
	ctx := context.Background()
	if _, err := env.svc.Pause(ctx, "report", starbook.PauseRequest{Paused: true, Reason: "quiet", By: "alice"}); err != nil {
		t.Fatal(err)
	}
	// The cron scheduler, the queue loop and the pause loop all parked: the
	// scheduler's next wake reads the runbooks after the pause was stored.
	clock.WaitTimers(3)
	clock.Set(time.Date(2026, 1, 15, 10, 0, 0, 0, time.UTC))
	var dls []*starbook.DeadLetter
	awaitStore(t, env.store, "the paused tick's dead letter", func() bool {
		var err error
		dls, err = env.svc.DeadLetters(ctx, starbook.DeadLetterFilter{Reason: starbook.ReasonPaused})
		return err == nil && len(dls) == 1
	})
	dl := dls[0]
	if dl.Runbook != "report" || dl.Source != "cron:*/5 * * * *" || string(dl.Payload) == "" {
		t.Errorf("dead letter %+v", dl)
	}
	if n := len(countExecutions(t, env.store, "report")); n != 0 {
		t.Fatalf("a paused runbook's tick started %d runs", n)
	}
	var pe *starbook.PausedError
	if _, err := env.svc.ReplayDeadLetter(ctx, dl.ID, starbook.ReplayRequest{By: "bob"}); !errors.As(err, &pe) || pe.State.By != "alice" {
		t.Fatalf("replay while paused: %v, want a PausedError naming alice", err)
	}
	if _, err := env.svc.Pause(ctx, "report", starbook.PauseRequest{By: "alice"}); err != nil {
		t.Fatal(err)
	}
	res, err := env.svc.ReplayDeadLetter(ctx, dl.ID, starbook.ReplayRequest{By: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	e, err := env.store.AwaitEnd(ctx, res.Executions[0].ID)
	if err != nil || e.Status != sbruntime.StatusCompleted || string(e.Result) != `"2026-01-15T10:00:00Z"` ||
		e.Trigger.Type != triggers.TypeCron || e.Trigger.Attrs["tick"] != "2026-01-15T10:00:00Z" {
		t.Fatalf("replayed tick: %+v (result %s), %v", e, e.Result, err)
	}
}

// TestPauseUntilResumesThroughLeader: a pause with an until is resumed by
// the leader when the until passes, even when the leader that saw it set is
// gone and another node leads: the until lives in etcd, not in a node.
func TestPauseUntilResumesThroughLeader(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	emb, err := cluster.StartEmbedded(ctx, cluster.EmbeddedConfig{Dir: t.TempDir(), Fast: true, NoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Close()
	clock := triggerstest.NewClock(time.Date(2026, 1, 15, 10, 0, 0, 0, time.UTC))
	bi := builtins.New(builtins.Options{})
	store := cluster.NewStore(emb.Client, "/until/")
	defer store.Close()
	store.SetClock(clock.Now)
	svc := service.New(store, bi)
	svc.Now = clock.Now
	if _, err := svc.Apply(ctx, map[string]string{"report.star": "def main(event):\n    return 1\n"}); err != nil {
		t.Fatal(err)
	}
	runNode := func(id string) (*node.Node, func()) {
		nctx, stop := context.WithCancel(ctx)
		n, err := node.New(nctx, store, node.Config{ID: id, Builtins: bi, SessionTTL: 2 * time.Second, StopGrace: time.Second,
			Clock: clock, Now: clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- n.Run(nctx) }()
		return n, func() {
			stop()
			if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("node %s: %v", id, err)
			}
		}
	}
	n1, stop1 := runNode("n1")
	awaitStore(t, store, "n1 leads", func() bool { return n1.IsLeader(ctx) })
	until := clock.Now().Add(10 * time.Minute)
	if _, err := svc.Pause(ctx, "report", starbook.PauseRequest{Paused: true, Reason: "deploy", Until: until, By: "alice"}); err != nil {
		t.Fatal(err)
	}
	stop1() // the leader that saw the pause set is gone
	n2, stop2 := runNode("n2")
	defer stop2()
	awaitStore(t, store, "n2 leads", func() bool { return n2.IsLeader(ctx) })
	if p, err := svc.PauseState(ctx, "report"); err != nil || !p.Paused {
		t.Fatalf("before until: %+v, %v", p, err)
	}
	clock.Set(until.Add(time.Second))
	paused := func() bool {
		resp, err := store.Client().Get(ctx, store.Keys().Pauses(), clientv3.WithPrefix(), clientv3.WithCountOnly())
		return err != nil || resp.Count > 0
	}
	awaitStore(t, store, "the pause deleted by the leader", func() bool { return !paused() })
	recs, err := store.Audit(ctx, "", 10)
	if err != nil {
		t.Fatal(err)
	}
	last := recs[len(recs)-1]
	if last.Actor != "starbook" || last.Action != "runbook.resume" || last.Runbook != "report" {
		t.Errorf("audit of the resume: %+v", last)
	}
	if _, err := svc.Start(ctx, "report", nil, sbruntime.Trigger{Type: "manual"}); err != nil {
		t.Errorf("start once resumed: %v", err)
	}
}

// TestPauseLetsRunsInFlightGoOn: a run in flight when its runbook and the
// child it starts are paused goes on, child included (a pause stops what
// starts runs, not the runs started), while a start by hand is refused.
func TestPauseLetsRunsInFlightGoOn(t *testing.T) {
	tn := startTestNode(t, t.TempDir())
	tn.apply(t, map[string]string{
		"gated.star": "def main(event):\n    wait_for_signal(\"go\")\n    return run_runbook(\"child\", {\"x\": 2})\n",
		"child.star": childRunbooks["child.star"],
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e, err := tn.svc.Start(ctx, "gated", nil, sbruntime.Trigger{Type: "manual"})
	if err != nil {
		t.Fatal(err)
	}
	awaitStore(t, tn.svc.Store, "the parent waiting", func() bool {
		cur, _, err := tn.svc.Execution(ctx, e.ID)
		return err == nil && cur.Status == sbruntime.StatusWaiting
	})
	for _, rb := range []string{"gated", "child", starbook.AllRunbooks} {
		if _, err := tn.svc.Pause(ctx, rb, starbook.PauseRequest{Paused: true, Reason: "freeze", By: "alice"}); err != nil {
			t.Fatal(err)
		}
	}
	var pe *starbook.PausedError
	if _, err := tn.svc.Start(ctx, "child", json.RawMessage(`{"x": 1}`), sbruntime.Trigger{Type: "manual"}); !errors.As(err, &pe) {
		t.Fatalf("manual start of a paused child: %v, want a PausedError", err)
	}
	if err := tn.svc.Signal(ctx, e.ID, "go", nil, "bob"); err != nil {
		t.Fatal(err)
	}
	end, err := tn.svc.AwaitEnd(ctx, e.ID)
	if err != nil || end.Status != sbruntime.StatusCompleted || string(end.Result) != "42" {
		t.Fatalf("parent in flight: %+v, %v; want it completed with its child's 42", end, err)
	}
}
