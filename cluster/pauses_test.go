package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/starbook/starbook"
	sbruntime "github.com/starbook/starbook/runtime"
	"github.com/starbook/starbook/triggers"
)

func pauseAudit(by, action string) *starbook.AuditRecord {
	return &starbook.AuditRecord{Actor: by, Action: action, Outcome: starbook.AuditOK}
}

func countPrefix(t *testing.T, s *Store, prefix string) int64 {
	t.Helper()
	resp, err := s.cli.Get(context.Background(), prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	return resp.Count
}

// TestPauseStore: a pause and its audit record are stored together, or,
// for an unknown runbook, neither; the pause of every runbook applies to
// each (All set) under a runbook's own; one past its until stops nothing,
// and ResumeDue deletes it with an audit record but leaves one set again.
func TestPauseStore(t *testing.T) {
	f := newDLFixture(t, "/pauses/")
	s, ctx := f.s, f.ctx
	if _, err := s.cli.Put(ctx, s.k.runbookCurrent("crash"), "v1"); err != nil {
		t.Fatal(err)
	}
	err := s.PutPause(ctx, &starbook.PauseState{Runbook: "nope", Paused: true, By: "alice"}, pauseAudit("alice", "runbook.pause"))
	if !errors.Is(err, sbruntime.ErrNotFound) {
		t.Fatalf("pause of an unknown runbook: %v, want not found", err)
	}
	if n, a := countPrefix(t, s, s.k.Pauses()), countPrefix(t, s, s.k.audit()); n != 0 || a != 0 {
		t.Fatalf("a refused pause stored %d pauses and %d audit records", n, a)
	}
	if _, err := s.DeletePause(ctx, "nope", pauseAudit("alice", "runbook.resume")); !errors.Is(err, sbruntime.ErrNotFound) {
		t.Fatalf("resume of an unknown runbook: %v", err)
	}

	now := f.clock()
	if err := s.PutPause(ctx, &starbook.PauseState{Runbook: starbook.AllRunbooks, Paused: true, By: "bob", Reason: "freeze", At: now},
		pauseAudit("bob", "runbook.pause")); err != nil {
		t.Fatal(err)
	}
	p, err := s.PauseOf(ctx, "crash")
	if err != nil || !p.Paused || !p.All || p.By != "bob" || p.Runbook != "crash" {
		t.Fatalf("crash under the pause of all: %+v, %v", p, err)
	}
	until := now.Add(time.Minute)
	if err := s.PutPause(ctx, &starbook.PauseState{Runbook: "crash", Paused: true, By: "alice", At: now, Until: until},
		pauseAudit("alice", "runbook.pause")); err != nil {
		t.Fatal(err)
	}
	if p, _ := s.PauseOf(ctx, "crash"); p.All || p.By != "alice" {
		t.Fatalf("crash's own pause should win: %+v", p)
	}
	if a := countPrefix(t, s, s.k.audit()); a != 2 {
		t.Fatalf("%d audit records for two pauses", a)
	}
	list, err := s.Pauses(ctx)
	if err != nil || len(list) != 2 || list[0].Runbook != starbook.AllRunbooks {
		t.Fatalf("pauses %+v, %v: want every runbook's first", list, err)
	}

	resumed, next, err := s.ResumeDue(ctx, now)
	if err != nil || len(resumed) != 0 || !next.Equal(until) {
		t.Fatalf("ResumeDue before until: %v, next %s, %v", resumed, next, err)
	}
	f.tick(2 * time.Minute)
	if p, _ := s.PauseOf(ctx, "crash"); !p.All {
		t.Fatalf("crash's pause past its until still applies: %+v", p)
	}
	resumed, next, err = s.ResumeDue(ctx, f.clock())
	if err != nil || len(resumed) != 1 || resumed[0] != "crash" || !next.IsZero() {
		t.Fatalf("ResumeDue after until: %v, next %s, %v", resumed, next, err)
	}
	if n := countPrefix(t, s, s.k.pause("crash")); n != 0 {
		t.Fatal("crash's pause not deleted")
	}
	recs, err := s.Audit(ctx, "", 10)
	if err != nil || recs[len(recs)-1].Actor != "starbook" || recs[len(recs)-1].Action != "runbook.resume" {
		t.Fatalf("audit of the resume: %+v, %v", recs[len(recs)-1], err)
	}

	prev, err := s.DeletePause(ctx, starbook.AllRunbooks, pauseAudit("bob", "runbook.resume"))
	if err != nil || prev == nil || prev.Reason != "freeze" {
		t.Fatalf("resume all: %+v, %v", prev, err)
	}
	if p, _ := s.PauseOf(ctx, "crash"); p.Paused {
		t.Fatalf("crash still paused: %+v", p)
	}
	prev, err = s.DeletePause(ctx, "crash", pauseAudit("bob", "runbook.resume"))
	if err != nil || prev != nil {
		t.Fatalf("resume of a runbook not paused: %+v, %v", prev, err)
	}
}

// TestReplayOnce: two replays of one dead letter racing start one run; the
// dead letter is gone with its index keys, and a later read of it says it
// was replayed and by which run.
func TestReplayOnce(t *testing.T) {
	f := newDLFixture(t, "/replay/")
	s, ctx := f.s, f.ctx
	crash := rolloutBundle("crash", "v1")
	if _, _, err := s.PutBundles(ctx, []*sbruntime.Bundle{crash}); err != nil {
		t.Fatal(err)
	}
	payload := json.RawMessage(`{"labels":{"alertname":"Crash","pod":"a"},"fingerprint":"f00d","startsAt":"2026-03-01T12:00:00Z"}`)
	if err := f.tr.DeadLetter(ctx, []triggers.Unstarted{{Source: "alertmanager", Reason: starbook.ReasonPaused, Runbook: "crash",
		Detail: "runbook crash is paused", Fingerprint: "f00d", Payload: payload}}); err != nil {
		t.Fatal(err)
	}
	list, err := s.DeadLetters(ctx, starbook.DeadLetterFilter{Reason: starbook.ReasonPaused})
	if err != nil || len(list) != 1 {
		t.Fatalf("dead letters %v, %v", list, err)
	}
	dl := list[0]
	got, err := s.EventDeadLetter(ctx, dl.ID)
	if err != nil || got.ID != dl.ID {
		t.Fatalf("read dead letter: %+v, %v", got, err)
	}
	runbooks := []triggers.Runbook{{Name: "crash", Version: crash.Version, Set: &triggers.Set{}}}
	starts, err := triggers.ReplayStarts(dl, runbooks, false)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	results := make([][]triggers.Started, 2)
	errs := make([]error, 2)
	for i := range 2 {
		wg.Go(func() {
			mine := append([]triggers.Start(nil), starts...)
			results[i], errs[i] = f.tr.Replay(ctx, dl, mine)
		})
	}
	wg.Wait()
	started := 0
	var id string
	for i := range 2 {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		for _, st := range results[i] {
			if st.Status == triggers.StatusStarted {
				started++
				id = st.ID
			}
		}
	}
	if started != 1 {
		t.Fatalf("two replays started %d runs: %+v", started, results)
	}
	e, _, err := s.Execution(ctx, id)
	if err != nil || e.Trigger.Type != triggers.TypeAlert || e.Trigger.Attrs[triggers.AttrReplayOf] != dl.ID || string(e.Input) != string(payload) {
		t.Fatalf("replayed run %+v (input %s), %v", e, e.Input, err)
	}
	if _, err := s.EventDeadLetter(ctx, dl.ID); !errors.Is(err, sbruntime.ErrConflict) || !strings.Contains(err.Error(), id) {
		t.Fatalf("read after the replay: %v, want a conflict naming %s", err, id)
	}
	if left, _ := s.DeadLetters(ctx, starbook.DeadLetterFilter{}); len(left) != 0 {
		t.Fatalf("dead letters left: %v", left)
	}
	if n := countPrefix(t, s, s.k.prefix+"ix/d"); n != 0 {
		t.Fatalf("%d dead-letter index keys left", n)
	}
}

// TestStartChecksThePauseInItsTxn: a node whose cached start pin predates a
// pause set through another node does not start past it: the create txn
// compares the pause keys, fails, and the fresh pin refuses the start;
// forced starts and children go on, and a resume lets starts through.
func TestStartChecksThePauseInItsTxn(t *testing.T) {
	emb := startSuiteEtcd(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	a := NewStore(emb.Client, "/pausestart/")
	b := NewStore(emb.Client, "/pausestart/") // another node, whose cache goes stale
	defer a.Close()
	defer b.Close()
	if _, _, err := a.PutBundles(ctx, []*sbruntime.Bundle{rolloutBundle("rb", "one")}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.StartCurrent(ctx, "rb", nil, newExec("rb")); err != nil { // b caches "not paused"
		t.Fatal(err)
	}
	for _, runbook := range []string{"rb", starbook.AllRunbooks} {
		if err := a.PutPause(ctx, &starbook.PauseState{Runbook: runbook, Paused: true, By: "alice", Reason: "freeze"},
			pauseAudit("alice", "runbook.pause")); err != nil {
			t.Fatal(err)
		}
		before := countPrefix(t, a, a.k.execution(""))
		_, err := b.StartCurrent(ctx, "rb", nil, newExec("rb"))
		var paused *starbook.PausedError
		if !errors.As(err, &paused) || paused.State.By != "alice" {
			t.Fatalf("start on a stale pin under the pause of %s: %v, want a PausedError by alice", runbook, err)
		}
		if after := countPrefix(t, a, a.k.execution("")); after != before {
			t.Fatalf("a refused start stored an execution (%d -> %d)", before, after)
		}
		forced := func(version string) *sbruntime.Execution {
			e := newExec("rb")(version)
			e.Trigger.Attrs = map[string]string{starbook.AttrForced: "alice"}
			return e
		}
		if _, err := b.StartCurrent(ctx, "rb", nil, forced); err != nil {
			t.Fatalf("a forced start under the pause of %s: %v", runbook, err)
		}
		if _, err := b.startCurrent(ctx, "rb", nil, a.k.probe("child-"+runbook), newExec("rb")); err != nil {
			t.Fatalf("a child start under the pause of %s: %v", runbook, err)
		}
		if _, err := a.DeletePause(ctx, runbook, pauseAudit("alice", "runbook.resume")); err != nil {
			t.Fatal(err)
		}
		if _, err := b.StartCurrent(ctx, "rb", nil, newExec("rb")); err != nil { // its pin still says paused
			t.Fatalf("start after the resume of %s: %v", runbook, err)
		}
	}
}
