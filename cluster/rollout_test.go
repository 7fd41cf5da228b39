package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/starbook/starbook"
	sbruntime "github.com/starbook/starbook/runtime"
	"github.com/starbook/starbook/triggers"
)

// rolloutBundle is a version of runbook name whose source says tag.
func rolloutBundle(name, tag string) *sbruntime.Bundle {
	files := map[string]string{name + ".star": "def main(event):\n    return " + fmt.Sprintf("%q", tag) + "\n"}
	return &sbruntime.Bundle{Name: name, Main: name + ".star", Files: files, Version: sbruntime.BundleVersion(files)}
}

func newExec(runbook string) func(string) *sbruntime.Execution {
	return func(version string) *sbruntime.Execution {
		now := time.Now().UTC()
		return &sbruntime.Execution{ID: ulid.Make().String(), Runbook: runbook, Version: version, Status: sbruntime.StatusPending,
			Trigger: sbruntime.Trigger{Type: "manual"}, CreatedAt: now, UpdatedAt: now}
	}
}

var canary20 = starbook.CanarySpec{Percent: 20, Runs: 5, MaxFailureRate: 0.2}

func TestRolloutSplitsStartsByID(t *testing.T) {
	emb := startSuiteEtcd(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	a := NewStore(emb.Client, "/split/")
	b := NewStore(emb.Client, "/split/") // another node, whose cache goes stale
	defer a.Close()
	defer b.Close()
	v1, v2 := rolloutBundle("rb", "one"), rolloutBundle("rb", "two")
	if _, _, err := a.PutBundles(ctx, []*sbruntime.Bundle{v1}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.StartCurrent(ctx, "rb", nil, newExec("rb")); err != nil { // b caches "no rollout"
		t.Fatal(err)
	}
	res, _, err := a.PutCanary(ctx, []*sbruntime.Bundle{v2}, canary20, "alice")
	if err != nil || res[0].Rollout == nil {
		t.Fatalf("put canary: %+v, %v", res, err)
	}
	if cur, _ := a.CurrentVersion(ctx, "rb"); cur != v1.Version {
		t.Fatalf("current during the canary is %s, want the stable %s", cur, v1.Version)
	}
	const n = 300
	canary := 0
	for i := range n {
		s := []*Store{a, b}[i%2]
		e, err := s.StartCurrent(ctx, "rb", nil, newExec("rb"))
		if err != nil {
			t.Fatal(err)
		}
		want := v1.Version
		if starbook.InCanary(e.ID, canary20.Percent) {
			want = v2.Version
			canary++
		}
		if e.Version != want {
			t.Fatalf("execution %s runs %s, want %s", e.ID, e.Version, want)
		}
		stored, _, err := s.Execution(ctx, e.ID)
		if err != nil || stored.Version != want {
			t.Fatalf("stored %s: %v, %v", e.ID, stored, err)
		}
	}
	if canary < n*12/100 || canary > n*28/100 {
		t.Errorf("%d of %d starts ran the canary, want about 20%%", canary, n)
	}

	// Triggered starts follow the same choice.
	tr := NewTriggers(a, nil, nil)
	starts := make([]triggers.Start, 100)
	for i := range starts {
		starts[i] = triggers.Start{Runbook: "rb", Version: v1.Version, Trigger: sbruntime.Trigger{Type: "webhook"}}
	}
	out, err := tr.Start(ctx, starts)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range out {
		e, _, err := a.Execution(ctx, st.ID)
		if err != nil {
			t.Fatal(err)
		}
		if want := map[bool]string{true: v2.Version, false: v1.Version}[starbook.InCanary(st.ID, 20)]; e.Version != want {
			t.Fatalf("triggered %s runs %s, want %s", st.ID, e.Version, want)
		}
	}

	// Abort through b; a's cached pin is stale, its next starts all run stable.
	if _, err := b.EndRollout(ctx, "rb", starbook.TransitionAborted, "bob", "testing", 0); err != nil {
		t.Fatal(err)
	}
	for range 50 {
		e, err := a.StartCurrent(ctx, "rb", nil, newExec("rb"))
		if err != nil {
			t.Fatal(err)
		}
		if e.Version != v1.Version {
			t.Fatalf("after abort, %s runs %s, want stable", e.ID, e.Version)
		}
	}
	out, err = tr.Start(ctx, starts[:30])
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range out {
		if e, _, _ := a.Execution(ctx, st.ID); e.Version != v1.Version {
			t.Fatalf("after abort, triggered %s runs %s, want stable", st.ID, e.Version)
		}
	}
}

func TestInCanaryIsDeterministic(t *testing.T) {
	for _, id := range []string{"01J0000000000000000000000A", "x", ""} {
		first := starbook.InCanary(id, 37.5)
		for range 10 {
			if starbook.InCanary(id, 37.5) != first {
				t.Fatalf("InCanary(%q) changed its mind", id)
			}
		}
	}
}

func TestPutCanaryRefusesBadSpecStoringNothing(t *testing.T) {
	emb := startSuiteEtcd(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := NewStore(emb.Client, "/badspec/")
	defer s.Close()
	v1, v2 := rolloutBundle("rb", "one"), rolloutBundle("rb", "two")
	if _, _, err := s.PutBundles(ctx, []*sbruntime.Bundle{v1}); err != nil {
		t.Fatal(err)
	}
	before, err := s.cli.Get(ctx, "/badspec/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	for _, spec := range []starbook.CanarySpec{
		{Percent: 0, Runs: 1}, {Percent: 100, Runs: 1}, {Percent: -5, Runs: 1}, {Percent: 10, Runs: 0},
		{Percent: 10, Runs: 1, MaxFailureRate: 1}, {Percent: 10, Runs: 1, MaxFailureRate: -0.1},
	} {
		_, _, err := s.PutCanary(ctx, []*sbruntime.Bundle{v2}, spec, "alice")
		var ie *sbruntime.InputError
		if !errors.As(err, &ie) {
			t.Errorf("spec %+v: %v, want an input error", spec, err)
		}
	}
	after, err := s.cli.Get(ctx, "/badspec/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	if after.Count != before.Count || after.Header.Revision != before.Header.Revision {
		t.Errorf("a refused canary stored something: %d keys at rev %d, before %d at %d",
			after.Count, after.Header.Revision, before.Count, before.Header.Revision)
	}
}

// TestRolloutTransitionsRace runs promote, abort and a plain apply of a
// third version at once, many times: exactly one of promote and abort
// wins, an apply wins only after the rollout ended, and the runbook always
// has a current version (a watch sees no delete of it).
func TestRolloutTransitionsRace(t *testing.T) {
	emb := startSuiteEtcd(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s := NewStore(emb.Client, "/race/")
	defer s.Close()
	ck := s.k.runbookCurrent("rb")
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	watch := s.cli.Watch(wctx, ck)
	deleted := make(chan struct{}, 1)
	go func() {
		for wr := range watch {
			for _, ev := range wr.Events {
				if ev.Type == clientv3.EventTypeDelete {
					deleted <- struct{}{}
				}
			}
		}
	}()
	for round := range 12 {
		stable, canary, other := rolloutBundle("rb", fmt.Sprint(round, "s")), rolloutBundle("rb", fmt.Sprint(round, "c")), rolloutBundle("rb", fmt.Sprint(round, "o"))
		if r, err := s.Rollout(ctx, "rb"); err == nil && r.Rollout.Active() {
			if _, err := s.EndRollout(ctx, "rb", starbook.TransitionAborted, "test", "next round", 0); err != nil {
				t.Fatal(err)
			}
		}
		if _, _, err := s.PutBundles(ctx, []*sbruntime.Bundle{stable}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.PutCanary(ctx, []*sbruntime.Bundle{canary}, canary20, "alice"); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var promoteErr, abortErr, applyErr error
		wg.Go(func() {
			_, promoteErr = s.EndRollout(ctx, "rb", starbook.TransitionPromoted, "p", "race", 0)
		})
		wg.Go(func() { _, abortErr = s.EndRollout(ctx, "rb", starbook.TransitionAborted, "a", "race", 0) })
		wg.Go(func() { _, _, applyErr = s.PutBundles(ctx, []*sbruntime.Bundle{other}) })
		wg.Wait()
		for _, err := range []error{promoteErr, abortErr, applyErr} {
			if err != nil && !errors.Is(err, sbruntime.ErrConflict) {
				t.Fatalf("round %d: %v, want nil or a conflict", round, err)
			}
		}
		if (promoteErr == nil) == (abortErr == nil) {
			t.Fatalf("round %d: promote %v, abort %v: want exactly one to win", round, promoteErr, abortErr)
		}
		r, err := s.Rollout(ctx, "rb")
		if err != nil {
			t.Fatal(err)
		}
		cur, err := s.CurrentVersion(ctx, "rb")
		if err != nil {
			t.Fatalf("round %d: no current version: %v", round, err)
		}
		want := map[bool]string{true: canary.Version, false: stable.Version}[promoteErr == nil]
		if applyErr == nil {
			want = other.Version // it could only win once the rollout ended
		}
		if cur != want || r.Rollout.Active() {
			t.Fatalf("round %d: current %s (stable %s canary %s other %s), rollout %s; promote %v abort %v apply %v",
				round, cur, stable.Version, canary.Version, other.Version, r.Rollout.State, promoteErr, abortErr, applyErr)
		}
	}
	select {
	case <-deleted:
		t.Fatal("the current pointer was deleted")
	default:
	}
	recs, err := s.Audit(ctx, "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, rec := range recs {
		counts[rec.Action]++
	}
	if counts["rollout.started"] != 12 || counts["rollout.promoted"]+counts["rollout.aborted"] < 12 {
		t.Errorf("audit: %v, want 12 starts and an end of each", counts)
	}
}
