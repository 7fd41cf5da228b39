package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/starbook/starbook"
	sbruntime "github.com/starbook/starbook/runtime"
	"github.com/starbook/starbook/triggers"
)

// putBudgeted stores a runbook version declaring budget b and returns it.
func putBudgeted(t *testing.T, s *Store, name string, b triggers.Budget) *sbruntime.Bundle {
	t.Helper()
	decl, err := json.Marshal(&triggers.Set{Budget: &b})
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{name + ".star": "def main(event):\n    pass\n"}
	bundle := &sbruntime.Bundle{Name: name, Main: name + ".star", Files: files, Version: sbruntime.BundleVersion(files), Triggers: decl}
	if _, _, err := s.PutBundles(context.Background(), []*sbruntime.Bundle{bundle}); err != nil {
		t.Fatal(err)
	}
	return bundle
}

func readCounter(t *testing.T, s *Store, key string) (counterValue, int64) {
	t.Helper()
	resp, err := s.cli.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) == 0 {
		return counterValue{}, 0
	}
	var v counterValue
	if err := json.Unmarshal(resp.Kvs[0].Value, &v); err != nil {
		t.Fatal(err)
	}
	return v, resp.Kvs[0].Version
}

// TestBudgetChunksAcrossTwoNodes: two stores on one etcd (two nodes) spend
// one day budget from 16 goroutines each until both are refused. Every
// unit taken is spent (a node refuses only once its chunk is spent), the
// total spent reaches the limit and overshoots it by less than one chunk
// (within the documented nodes x chunk), and the counter was written once
// per chunk, never per unit.
func TestBudgetChunksAcrossTwoNodes(t *testing.T) {
	emb := startSuiteEtcd(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const limit = 1000
	chunk := ChunkOf(limit)
	if chunk != 10 {
		t.Fatalf("chunk of %d is %d, want 10 (1%%)", limit, chunk)
	}
	nodes := []*Store{NewStore(emb.Client, "/chunks/"), NewStore(emb.Client, "/chunks/")}
	var spent atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for _, s := range nodes {
		defer s.Close()
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					err := s.Budgets().Spend(ctx, "rb", triggers.BudgetStepsPerDay, limit, 1, true)
					var be *sbruntime.BudgetError
					if errors.As(err, &be) {
						if be.Error() != "budget: steps_per_day 1000 reached" {
							errs <- err
						}
						return
					}
					if err != nil {
						errs <- err
						return
					}
					spent.Add(1)
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	v, writes := readCounter(t, nodes[0], nodes[0].k.budget(Day(time.Now()), "rb", triggers.BudgetStepsPerDay))
	got := spent.Load()
	t.Logf("spent %d of %d, counter %d, written %d times", got, limit, v.Taken, writes)
	if got < limit || got > limit+chunk-1 {
		t.Errorf("spent %d: want between the limit %d and limit+chunk-1 %d", got, limit, limit+chunk-1)
	}
	if got-limit > int64(len(nodes))*chunk {
		t.Errorf("overshoot %d is over nodes x chunk %d", got-limit, int64(len(nodes))*chunk)
	}
	if v.Taken != got || v.Limit != limit {
		t.Errorf("counter %+v, want taken %d (all spent) and limit %d", v, got, limit)
	}
	if writes != v.Taken/chunk {
		t.Errorf("counter written %d times for %d units: want one write per chunk of %d", writes, v.Taken, chunk)
	}
	// Once reached, both nodes refuse new runs too.
	for i, s := range nodes {
		done, err := s.Budgets().Exhausted(ctx, "rb", triggers.BudgetStepsPerDay, limit)
		if err != nil || !done {
			t.Errorf("node %d: exhausted %v, %v", i, done, err)
		}
	}
}

// TestBudgetDayRollover: runs_per_day counts per UTC day of the store's
// clock: the fourth start of a day is refused and recorded cancelled with
// the budget's message, the next day starts afresh under its own key, and
// retention deletes the old day's counters and usage.
func TestBudgetDayRollover(t *testing.T) {
	emb := startSuiteEtcd(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var mu sync.Mutex
	now := time.Date(2026, 3, 1, 23, 59, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s := NewStore(emb.Client, "/rollover/")
	defer s.Close()
	s.SetClock(clock)
	putBudgeted(t, s, "daily", triggers.Budget{RunsPerDay: 3})
	seq := 0
	start := func() (*sbruntime.Execution, error) {
		seq++
		id := time.Now().Format("150405.000000") + string(rune('a'+seq))
		return s.StartCurrent(ctx, "daily", nil, func(version string) *sbruntime.Execution {
			at := clock()
			return &sbruntime.Execution{ID: id, Runbook: "daily", Version: version, Status: sbruntime.StatusPending,
				Trigger: sbruntime.Trigger{Type: "manual"}, CreatedAt: at, UpdatedAt: at}
		})
	}
	for i := range 3 {
		if _, err := start(); err != nil {
			t.Fatalf("start %d: %v", i+1, err)
		}
	}
	_, err := start()
	var le *sbruntime.LimitError
	if !errors.As(err, &le) || le.Limit != "runs_per_day" {
		t.Fatalf("fourth start: %v, want a LimitError naming runs_per_day", err)
	}
	list, err := s.Executions(ctx, ListFilter{Runbook: "daily", Status: sbruntime.StatusCancelled})
	if err != nil || len(list) != 1 || list[0].Error != "budget: runs_per_day 3 reached" || list[0].EndedAt == nil {
		t.Fatalf("refused start recorded as %+v (%v), want one cancelled execution with the budget's error", list, err)
	}

	mu.Lock()
	now = now.Add(2 * time.Minute) // 2026-03-02 00:01 UTC
	mu.Unlock()
	if _, err := start(); err != nil {
		t.Fatalf("first start of the next day: %v", err)
	}
	v1, _ := readCounter(t, s, s.k.budget("2026-03-01", "daily", triggers.BudgetRunsPerDay))
	v2, _ := readCounter(t, s, s.k.budget("2026-03-02", "daily", triggers.BudgetRunsPerDay))
	if v1.Taken != 3 || v2.Taken != 1 {
		t.Errorf("counters %+v and %+v, want 3 on the first day and 1 on the second", v1, v2)
	}
	uses, err := s.BudgetUses(ctx, "")
	if err != nil || len(uses) != 1 || uses[0].Day != "2026-03-02" || uses[0].Used != 1 || uses[0].Limit != 3 {
		t.Errorf("today's budgets %+v (%v)", uses, err)
	}

	if _, err := s.cli.Put(ctx, s.k.executionUsage("2026-03-01", "daily", "x"), `{"steps":1}`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.cli.Put(ctx, s.k.executionUsage("2026-03-02", "daily", "y"), `{"steps":2}`); err != nil {
		t.Fatal(err)
	}
	if err := s.PruneDays(ctx, clock()); err != nil {
		t.Fatal(err)
	}
	for _, prefix := range []string{s.k.budgetsOf("2026-03-01"), s.k.usageOf("2026-03-01")} {
		if resp, _ := s.cli.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithCountOnly()); resp.Count != 0 {
			t.Errorf("%s: %d keys left after retention", prefix, resp.Count)
		}
	}
	for _, prefix := range []string{s.k.budgetsOf("2026-03-02"), s.k.usageOf("2026-03-02")} {
		if resp, _ := s.cli.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithCountOnly()); resp.Count != 1 {
			t.Errorf("%s: %d keys, want today's one kept", prefix, resp.Count)
		}
	}
}

// TestStepsPerDayExhaustedRefusesNewRuns: once a day budget of steps is
// reached, a new run of the runbook is refused at start with that budget's
// name, and a triggered one is recorded as a cancelled execution (a dead
// letter) with the same message, its dedup key taken.
func TestStepsPerDayExhaustedRefusesNewRuns(t *testing.T) {
	emb := startSuiteEtcd(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := NewStore(emb.Client, "/exhausted/")
	defer s.Close()
	b := putBudgeted(t, s, "capped", triggers.Budget{StepsPerDay: 2})
	for range 2 {
		if err := s.Budgets().Spend(ctx, "capped", triggers.BudgetStepsPerDay, 2, 1, true); err != nil {
			t.Fatal(err)
		}
	}
	tr := NewTriggers(s, nil, nil)
	started, err := tr.Start(ctx, []triggers.Start{{Runbook: "capped", Version: b.Version, Input: json.RawMessage(`{}`),
		Trigger: sbruntime.Trigger{Type: triggers.TypeWebhook, Source: "hook"}, Dedup: &triggers.Dedup{Scope: "webhook", Key: "k1", TTL: time.Hour}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(started) != 1 || started[0].Status != triggers.StatusDropped || started[0].Reason != "budget: steps_per_day 2 reached" {
		t.Fatalf("triggered start %+v, want dropped by the budget", started)
	}
	e, _, err := s.Execution(ctx, started[0].ID)
	if err != nil || e.Status != sbruntime.StatusCancelled || e.Error != "budget: steps_per_day 2 reached" {
		t.Fatalf("refused triggered run stored as %+v (%v)", e, err)
	}
	if resp, _ := s.cli.Get(ctx, s.k.runnable(e.ID), clientv3.WithCountOnly()); resp.Count != 0 {
		t.Error("a refused run is runnable")
	}
	again, err := tr.Start(ctx, []triggers.Start{{Runbook: "capped", Version: b.Version, Input: json.RawMessage(`{}`),
		Trigger: sbruntime.Trigger{Type: triggers.TypeWebhook}, Dedup: &triggers.Dedup{Scope: "webhook", Key: "k1", TTL: time.Hour}}})
	if err != nil || again[0].Status != triggers.StatusDuplicate || again[0].ID != e.ID {
		t.Errorf("redelivery %+v (%v), want a duplicate of the refused run", again, err)
	}
	_, err = s.StartCurrent(ctx, "capped", nil, func(version string) *sbruntime.Execution {
		now := time.Now().UTC()
		return &sbruntime.Execution{ID: "manual1", Runbook: "capped", Version: version, Status: sbruntime.StatusPending,
			Trigger: sbruntime.Trigger{Type: "manual"}, CreatedAt: now, UpdatedAt: now}
	})
	var le *sbruntime.LimitError
	if !errors.As(err, &le) || le.Limit != "steps_per_day" {
		t.Fatalf("manual start: %v, want refused naming steps_per_day", err)
	}
	// Both refused runs, the triggered one and the manual one, are dead
	// letters with reason budget.
	dead, err := s.DeadLetters(ctx, starbook.DeadLetterFilter{Runbook: "capped", Reason: "budget"})
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, d := range dead {
		ids[d.ID] = true
	}
	if !ids["manual1"] || len(dead) != 2 {
		t.Errorf("budget dead letters %v, want the triggered run and manual1", ids)
	}
}
