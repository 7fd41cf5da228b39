package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	sbruntime "github.com/starbook/starbook/runtime"
)

// fencingFixture is a store on a fresh prefix with one runnable execution.
type fencingFixture struct {
	s      *Store
	prefix string
	id     string
	ctx    context.Context
}

func newFencingFixture(t *testing.T, emb *Embedded, prefix string) *fencingFixture {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	s := NewStore(emb.Client, prefix)
	now := time.Now().UTC()
	e := &sbruntime.Execution{ID: "race", Runbook: "r", Version: "v1", Status: sbruntime.StatusPending,
		Trigger: sbruntime.Trigger{Type: "manual"}, CreatedAt: now, UpdatedAt: now}
	if err := s.CreateExecution(ctx, e); err != nil {
		t.Fatal(err)
	}
	return &fencingFixture{s: s, prefix: prefix, id: e.ID, ctx: ctx}
}

func (f *fencingFixture) grant(t *testing.T) clientv3.LeaseID {
	t.Helper()
	l, err := f.s.cli.Grant(f.ctx, 60)
	if err != nil {
		t.Fatal(err)
	}
	return l.ID
}

// claim claims the execution through s: f.s, or another node's store.
func (f *fencingFixture) claim(t *testing.T, s *Store, node string, lease clientv3.LeaseID) *Claim {
	t.Helper()
	c, err := s.Claim(f.ctx, f.id, node, lease)
	if err != nil {
		t.Fatalf("%s claims: %v", node, err)
	}
	return c
}

// get returns the key's value, or nil if absent.
func (f *fencingFixture) get(t *testing.T, key string) *clientv3.GetResponse {
	t.Helper()
	resp, err := f.s.cli.Get(f.ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// events returns the stored events by position with the writer each names
// and the number of writes of each key.
func (f *fencingFixture) events(t *testing.T) (writer map[string]string, writes map[string]int64) {
	t.Helper()
	resp, err := f.s.cli.Get(f.ctx, f.s.k.history(f.id), clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	writer, writes = map[string]string{}, map[string]int64{}
	for _, kv := range resp.Kvs {
		var ev sbruntime.Event
		if err := json.Unmarshal(kv.Value, &ev); err != nil {
			t.Fatal(err)
		}
		var who string
		_ = json.Unmarshal(ev.Result, &who)
		writer[ev.Position], writes[ev.Position] = who, kv.Version
	}
	// Events an end folded into the record (fold.go): written as many times
	// as their keys were before the end deleted them, once if it had none.
	rec := f.get(t, f.s.k.execution(f.id))
	if len(rec.Kvs) == 0 {
		return writer, writes
	}
	folded, err := unfold(rec.Kvs[0].Value)
	if err != nil {
		t.Fatal(err)
	}
	if len(folded) == 0 {
		return writer, writes
	}
	before, err := f.s.cli.Get(f.ctx, f.s.k.history(f.id), clientv3.WithPrefix(), clientv3.WithRev(rec.Kvs[0].ModRevision-1))
	if err != nil {
		t.Fatal(err)
	}
	versions := map[string]int64{}
	for _, kv := range before.Kvs {
		versions[f.s.k.IDUnder(string(kv.Key), f.s.k.history(f.id))] = kv.Version
	}
	for _, ev := range folded {
		var who string
		_ = json.Unmarshal(ev.Result, &who)
		writer[ev.Position], writes[ev.Position] = who, writes[ev.Position]+max(versions[ev.Position], 1)
	}
	return writer, writes
}

func event(pos, writer string) *sbruntime.Event {
	return &sbruntime.Event{Position: pos, Kind: sbruntime.KindCall, Name: "step",
		Result: json.RawMessage(strconv.Quote(writer))}
}

// TestFencingStaleRunner: runner A claims, loses its claim (lease revoked or
// owner key deleted) and runner B, on another node, claims. Every write A
// makes afterwards is refused with ErrNotOwner and leaves nothing behind; B's
// succeed.
func TestFencingStaleRunner(t *testing.T) {
	emb := startSuiteEtcd(t)
	tests := []struct {
		name string
		lose func(t *testing.T, f *fencingFixture, a *Claim, lease clientv3.LeaseID)
	}{
		{"lease revoked", func(t *testing.T, f *fencingFixture, a *Claim, lease clientv3.LeaseID) {
			if _, err := f.s.cli.Revoke(f.ctx, lease); err != nil {
				t.Fatal(err)
			}
		}},
		{"owner key deleted", func(t *testing.T, f *fencingFixture, a *Claim, lease clientv3.LeaseID) {
			if _, err := f.s.cli.Delete(f.ctx, f.s.k.owner(f.id)); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFencingFixture(t, emb, fmt.Sprintf("/fence/%d/", i))
			other := NewStore(emb.Client, f.prefix) // node b's
			leaseA := f.grant(t)
			a := f.claim(t, f.s, "a", leaseA)
			if _, err := other.Claim(f.ctx, f.id, "b", f.grant(t)); !errors.Is(err, ErrNotClaimable) {
				t.Fatalf("B claims an owned execution: %v, want ErrNotClaimable", err)
			}
			if err := a.Append(f.ctx, event("1", "a")); err != nil {
				t.Fatalf("A appends 1: %v", err)
			}

			tt.lose(t, f, a, leaseA)
			if err := a.Append(f.ctx, event("2", "a")); !errors.Is(err, sbruntime.ErrNotOwner) {
				t.Fatalf("A appends with no owner: %v, want ErrNotOwner", err)
			}
			b := f.claim(t, other, "b", f.grant(t))
			if ev := b.History["1"]; ev == nil {
				t.Fatal("B's claim did not load A's event at 1")
			}
			execBefore := f.get(t, f.s.k.execution(f.id)).Kvs[0]

			deadline := time.Now().Add(time.Hour)
			_, waitErr := a.Wait(f.ctx, &sbruntime.Wait{Execution: f.id, Position: "3", Kind: sbruntime.KindSleep, Deadline: &deadline})
			writes := []struct {
				what string
				err  error
			}{
				{"append 2", a.Append(f.ctx, event("2", "a"))},
				{"append 1", a.Append(f.ctx, event("1", "a"))},
				{"wait 3", waitErr},
				{"set status", a.SetStatus(f.ctx, sbruntime.StatusCompensating)},
			}
			for _, w := range writes {
				if !errors.Is(w.err, sbruntime.ErrNotOwner) {
					t.Errorf("stale A's %s: %v, want ErrNotOwner", w.what, w.err)
				}
			}
			if _, err := a.Finish(f.ctx, sbruntime.Outcome{Status: sbruntime.StatusFailed, Error: "stale"}); !errors.Is(err, sbruntime.ErrNotOwner) {
				t.Errorf("stale A's finish: got %v, want ErrNotOwner", err)
			}
			if err := b.Append(f.ctx, event("2", "b")); err != nil {
				t.Fatalf("B appends 2: %v", err)
			}
			if err := b.Append(f.ctx, event("1", "b")); !errors.Is(err, sbruntime.ErrPositionTaken) {
				t.Errorf("B appends 1: %v, want ErrPositionTaken", err)
			}

			if kv := f.get(t, f.s.k.execution(f.id)).Kvs[0]; kv.ModRevision != execBefore.ModRevision {
				t.Errorf("stale A rewrote the execution record: %s", kv.Value)
			}
			if owner := f.get(t, f.s.k.owner(f.id)); len(owner.Kvs) != 1 || string(owner.Kvs[0].Value) != "b" {
				t.Errorf("owner after A's stale finish: %v, want b", owner.Kvs)
			}
			if len(f.get(t, f.s.k.runnable(f.id)).Kvs) != 1 {
				t.Error("stale A's finish deleted the runnable key")
			}
			for _, key := range []string{f.s.k.wait(f.id, "3"), f.s.k.timer(deadline, f.id, "3")} {
				if len(f.get(t, key).Kvs) != 0 {
					t.Errorf("stale A's wait wrote %s", key)
				}
			}
			writer, versions := f.events(t)
			if want := map[string]string{"1": "a", "2": "b"}; fmt.Sprint(writer) != fmt.Sprint(want) {
				t.Errorf("events by writer %v, want %v", writer, want)
			}
			for pos, v := range versions {
				if v != 1 {
					t.Errorf("position %s written %d times", pos, v)
				}
			}
			if _, err := b.Finish(f.ctx, sbruntime.Outcome{Status: sbruntime.StatusCompleted}); err != nil {
				t.Fatal(err)
			}
			if e, _, err := f.s.Execution(f.ctx, f.id); err != nil || e.Status != sbruntime.StatusCompleted {
				t.Errorf("after B's finish: %v %v, want completed", e, err)
			}
		})
	}
}

// TestFencingRace: runner A appends as fast as it can while its lease is
// revoked and runner B claims and appends the same positions. Both run on
// one node (one store), so their appends also meet in the same group-commit
// batches. A stops at its first refused write, wrote nothing after the
// revocation, and no position is written twice.
func TestFencingRace(t *testing.T) {
	emb := startSuiteEtcd(t)
	const n = 60
	f := newFencingFixture(t, emb, "/race/")
	leaseA := f.grant(t)
	a := f.claim(t, f.s, "a", leaseA)

	started := make(chan struct{})
	aErr := make(chan error, 1)
	go func() {
		for i := 1; i <= n; i++ {
			if err := a.Append(f.ctx, event(strconv.Itoa(i), "a")); err != nil {
				aErr <- err
				return
			}
			if i == 5 {
				close(started)
			}
		}
		aErr <- nil
	}()
	<-started
	revoked, err := f.s.cli.Revoke(f.ctx, leaseA)
	if err != nil {
		t.Fatal(err)
	}
	b := f.claim(t, f.s, "b", f.grant(t))
	for i := 1; i <= n; i++ {
		err := b.Append(f.ctx, event(strconv.Itoa(i), "b"))
		if err != nil && !errors.Is(err, sbruntime.ErrPositionTaken) {
			t.Fatalf("B appends %d: %v", i, err)
		}
	}
	if err := <-aErr; err != nil && !errors.Is(err, sbruntime.ErrNotOwner) {
		t.Fatalf("A stopped with %v, want ErrNotOwner", err)
	}

	resp, err := f.s.cli.Get(f.ctx, f.s.k.history(f.id), clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != n {
		t.Errorf("%d positions recorded, want %d", len(resp.Kvs), n)
	}
	byA := 0
	for _, kv := range resp.Kvs {
		var ev sbruntime.Event
		if err := json.Unmarshal(kv.Value, &ev); err != nil {
			t.Fatal(err)
		}
		if kv.Version != 1 {
			t.Errorf("position %s written %d times", ev.Position, kv.Version)
		}
		if string(ev.Result) == `"a"` {
			byA++
			if kv.ModRevision > revoked.Header.Revision {
				t.Errorf("A wrote position %s at revision %d, after its lease was revoked at %d",
					ev.Position, kv.ModRevision, revoked.Header.Revision)
			}
		}
	}
	if byA < 5 || byA == n {
		t.Errorf("A wrote %d positions, want at least 5 and fewer than %d", byA, n)
	}
}

// TestConcurrentAppendsOnePosition: under one claim, appends racing for one
// position: exactly one wins, the others get ErrPositionTaken.
func TestConcurrentAppendsOnePosition(t *testing.T) {
	emb := startSuiteEtcd(t)
	const writers = 32
	f := newFencingFixture(t, emb, "/same/")
	c := f.claim(t, f.s, "a", f.grant(t))
	start := make(chan struct{})
	errs := make([]error, writers)
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			<-start
			errs[i] = c.Append(f.ctx, event("1", strconv.Itoa(i)))
		})
	}
	close(start)
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil:
			if winner >= 0 {
				t.Errorf("writers %d and %d both recorded position 1", winner, i)
			}
			winner = i
		case !errors.Is(err, sbruntime.ErrPositionTaken):
			t.Errorf("writer %d: %v, want ErrPositionTaken", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no writer recorded position 1")
	}
	writer, versions := f.events(t)
	if writer["1"] != strconv.Itoa(winner) || versions["1"] != 1 {
		t.Errorf("position 1 holds writer %q (written %d times), want %d once", writer["1"], versions["1"], winner)
	}
}

// TestCancelRacingAPark: a cancel that meets a run about to park is never
// lost, in either order. Asked while the run still owns the execution (the
// script already stopped, so the run never hears it), the park ends the
// execution cancelled instead. Asked after the run let go, no request is left
// for an owner that will never come; Cancel cancels the parked execution
// itself. (Seen lost in TestActiveLimit: a parked execution with a cancel
// request nobody would read, and AwaitEnd waiting out its deadline.)
func TestCancelRacingAPark(t *testing.T) {
	emb := startSuiteEtcd(t)
	park := func(t *testing.T, f *fencingFixture, a *Claim) *sbruntime.Execution {
		t.Helper()
		if _, err := a.Wait(f.ctx, &sbruntime.Wait{Execution: f.id, Position: "1", Kind: sbruntime.KindSignal, Name: "go"}); err != nil {
			t.Fatal(err)
		}
		e, err := a.Finish(f.ctx, sbruntime.Outcome{Status: sbruntime.StatusWaiting})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	tests := []struct {
		name string
		race func(t *testing.T, f *fencingFixture, a *Claim)
	}{
		{"asked before the park", func(t *testing.T, f *fencingFixture, a *Claim) {
			e, err := f.s.Cancel(f.ctx, f.id)
			if err != nil || e.Status.Terminal() {
				t.Fatalf("cancel of an owned execution: %+v, %v; want it asked to stop", e, err)
			}
			if len(f.get(t, f.s.k.cancel(f.id)).Kvs) == 0 {
				t.Fatal("no cancel request for the owner")
			}
			if e := park(t, f, a); e.Status != sbruntime.StatusCancelled {
				t.Errorf("the park stored %s, want cancelled", e.Status)
			}
		}},
		{"asked after the park", func(t *testing.T, f *fencingFixture, a *Claim) {
			park(t, f, a)
			// Cancel saw a's claim before the park, and asks only now.
			asked, err := f.s.requestCancel(f.ctx, f.id, a.rev, time.Now())
			if err != nil || asked {
				t.Fatalf("request to an owner that let go: %v, %v; want none", asked, err)
			}
			if len(f.get(t, f.s.k.cancel(f.id)).Kvs) != 0 {
				t.Fatal("a cancel request is left for an owner that let go")
			}
			if e, err := f.s.Cancel(f.ctx, f.id); err != nil || e.Status != sbruntime.StatusCancelled {
				t.Fatalf("cancel of a parked execution: %+v, %v", e, err)
			}
		}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFencingFixture(t, emb, fmt.Sprintf("/cancelpark/%d/", i))
			a := f.claim(t, f.s, "a", f.grant(t))
			tt.race(t, f, a)
			e, _, err := f.s.Execution(f.ctx, f.id)
			if err != nil || e.Status != sbruntime.StatusCancelled || e.EndedAt == nil {
				t.Fatalf("stored %+v, %v; want cancelled", e, err)
			}
			for _, key := range []string{f.s.k.cancel(f.id), f.s.k.owner(f.id), f.s.k.runnable(f.id), f.s.k.wait(f.id, "1")} {
				if len(f.get(t, key).Kvs) != 0 {
					t.Errorf("%s left behind", key)
				}
			}
		})
	}
}
