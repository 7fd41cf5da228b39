package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/starbook/starbook"
	sbruntime "github.com/starbook/starbook/runtime"
	"github.com/starbook/starbook/slo"
	"github.com/starbook/starbook/slo/tally"
	"github.com/starbook/starbook/triggers"
)

// fakeClock is a settable store clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time     { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) set(t time.Time)    { c.mu.Lock(); c.t = t; c.mu.Unlock() }
func (c *fakeClock) latest(t time.Time) { c.mu.Lock(); c.t = maxTime(c.t, t); c.mu.Unlock() }

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// rollupHistory writes n executions of two runbooks, created up to gap
// apart from start, through the store's end paths (a claim's Finish, Cancel of an unowned run, a
// redrive and its second end), created over days from start, folding the
// rollups as a leader would every few runs. It returns the latest time
// written.
func rollupHistory(t *testing.T, s *Store, clock *fakeClock, start time.Time, n int, gap time.Duration, seed uint64) time.Time {
	t.Helper()
	ctx := context.Background()
	r := rand.New(rand.NewPCG(seed, 7))
	entropy := ulid.Monotonic(rand.NewChaCha8([32]byte{byte(seed)}), 0)
	lease, err := s.cli.Grant(ctx, 600)
	if err != nil {
		t.Fatal(err)
	}
	created := start
	var latest time.Time
	var failed []string
	for i := range n {
		created = created.Add(time.Duration(r.Int64N(int64(gap))))
		rb := []string{"deploy", "restart"}[r.IntN(2)]
		took := time.Duration(r.ExpFloat64() * float64([]time.Duration{30 * time.Second, 5 * time.Minute, time.Hour}[r.IntN(3)]))
		ended := created.Add(took)
		latest = maxTime(latest, ended)
		id := ulid.MustNew(ulid.Timestamp(created), entropy).String()
		clock.set(created)
		e := &sbruntime.Execution{ID: id, Runbook: rb, Version: "v1", Status: sbruntime.StatusPending,
			Trigger: sbruntime.Trigger{Type: "manual"}, CreatedAt: created, UpdatedAt: created}
		if err := s.CreateExecution(ctx, e); err != nil {
			t.Fatal(err)
		}
		clock.set(ended)
		if r.IntN(10) == 0 { // cancelled while nobody ran it: Cancel writes its end
			if _, err := s.Cancel(ctx, id); err != nil {
				t.Fatal(err)
			}
		} else {
			c, err := s.Claim(ctx, id, "n1", lease.ID)
			if err != nil {
				t.Fatal(err)
			}
			status := []sbruntime.Status{sbruntime.StatusCompleted, sbruntime.StatusCompleted, sbruntime.StatusCompleted,
				sbruntime.StatusFailed, sbruntime.StatusStuck}[r.IntN(5)]
			if _, err := c.Finish(ctx, sbruntime.Outcome{Status: status, Error: "x"}); err != nil {
				t.Fatal(err)
			}
			if status == sbruntime.StatusFailed {
				failed = append(failed, id)
			}
		}
		// Now and then, redrive a failed run: it ends again later, once
		// more (or is left pending: it counts nowhere then).
		if len(failed) > 0 && r.IntN(6) == 0 {
			id := failed[r.IntN(len(failed))]
			st, err := s.ReadRedrive(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if st.Execution.Status.Terminal() && st.Owner == "" && !st.Runnable {
				at := maxTime(*st.Execution.EndedAt, created).Add(time.Minute)
				clock.set(at)
				next := *st.Execution
				next.Redrives = append(next.Redrives, sbruntime.Redrive{Attempt: next.Attempt() + 1, At: at, Status: next.Status})
				next.Status, next.Error, next.EndedAt, next.UpdatedAt = sbruntime.StatusPending, "", nil, at
				if err := s.RedriveFailed(ctx, st, &next); err != nil {
					t.Fatal(err)
				}
				if r.IntN(4) > 0 {
					c, err := s.Claim(ctx, id, "n1", lease.ID)
					if err != nil {
						t.Fatal(err)
					}
					end := at.Add(time.Duration(r.Int64N(int64(2 * time.Hour))))
					latest = maxTime(latest, end)
					clock.set(end)
					if _, err := c.Finish(ctx, sbruntime.Outcome{Status: sbruntime.StatusCompleted}); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
		if i%15 == 14 {
			if _, err := s.FoldRollups(ctx, created); err != nil {
				t.Fatal(err)
			}
		}
	}
	return latest
}

// historyStart is when rollupHistory's tests start their history.
var historyStart = time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)

// exactSLO computes runbook's status at at the way starbook did before
// rollups, from every execution record (the oracle). It reads them all,
// not only those created in the span as the service did: a run created
// before the span that ended in it counts, as slo.Compute says.
func exactSLO(t *testing.T, s *Store, runbook string, o *triggers.SLO, at time.Time) *starbook.SLOStatus {
	t.Helper()
	var runs []slo.Run
	if err := s.EndedSince(context.Background(), historyStart, func(e *sbruntime.Execution) {
		if e.Runbook == runbook {
			runs = append(runs, slo.Run{Status: e.Status, Created: e.CreatedAt, Ended: *e.EndedAt})
		}
	}); err != nil {
		t.Fatal(err)
	}
	return slo.Compute(runbook, "v1", o, runs, at)
}

func rolledSLO(t *testing.T, s *Store, runbook string, o *triggers.SLO, at time.Time) *starbook.SLOStatus {
	t.Helper()
	buckets, err := s.SLOBuckets(context.Background(), runbook, at.Add(-slo.Span(o)))
	if err != nil {
		t.Fatal(err)
	}
	return slo.ComputeBuckets(runbook, "v1", o, buckets, at)
}

// sameSLO fails unless got (from rollups) is want (exact, at at) within
// the stated resolution: the counts of a window equal when its far edge is
// a boundary of the buckets there (when at is a whole hour, for windows of
// whole hours; with minutes, when the leader folded within minuteSpan of
// at, for windows up to 6h); each latency percentile at or above the exact
// one by at most tally.RelativeError or 1 ms.
func sameSLO(t *testing.T, what string, o *triggers.SLO, got, want *starbook.SLOStatus, at time.Time, minutes bool) {
	t.Helper()
	exact := func(w time.Duration) bool {
		return at.Truncate(time.Hour).Equal(at) && w%time.Hour == 0 || minutes && w <= 6*time.Hour
	}
	for i, b := range want.BurnRates {
		if exact(slo.BurnWindows[i]) && got.BurnRates[i] != b {
			t.Errorf("%s: burn rate %+v, exact %+v", what, got.BurnRates[i], b)
		}
	}
	if !exact(o.Window) {
		return
	}
	if got.Runs != want.Runs || got.Successes != want.Successes || got.Failures != want.Failures || got.Cancelled != want.Cancelled {
		t.Errorf("%s: runs %d = %d ok + %d failed, %d cancelled; exact %d = %d + %d, %d", what,
			got.Runs, got.Successes, got.Failures, got.Cancelled, want.Runs, want.Successes, want.Failures, want.Cancelled)
	}
	if got.ErrorBudget != want.ErrorBudget {
		t.Errorf("%s: error budget %+v, exact %+v", what, got.ErrorBudget, want.ErrorBudget)
	}
	for i, l := range want.Latency {
		g := got.Latency[i]
		if (l.Seconds == nil) != (g.Seconds == nil) {
			t.Errorf("%s: %s %v, exact %v", what, l.Percentile, g.Seconds, l.Seconds)
			continue
		}
		if l.Seconds == nil {
			continue
		}
		if *g.Seconds < *l.Seconds || *g.Seconds > *l.Seconds*(1+tally.RelativeError)+0.001 {
			t.Errorf("%s: %s %.6fs, exact %.6fs", what, l.Percentile, *g.Seconds, *l.Seconds)
		}
		if g.Met && !l.Met {
			t.Errorf("%s: %s met, exact not met", what, l.Percentile)
		}
	}
}

func testObjective(t *testing.T) *triggers.SLO {
	o, err := triggers.NewSLO(0.95, map[string]time.Duration{"p50": time.Minute, "p95": 20 * time.Minute, "p99.9": 2 * time.Hour}, 0)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// TestSLORollupsMatchExact: over ~400 executions of two runbooks across
// weeks (completed, failed, stuck, cancelled unowned, redriven and ended
// again or left pending, folded now and then, ends arriving after their
// minute was folded), the SLO from rollups equals the exact computation
// from every record (the code it replaced, kept as the oracle) at whole
// hours through the history: counts and burn rates exactly, percentiles
// within the histogram's resolution. Then at the end, folded as far as a
// leader ever folds, and after a prune of old days, in what remains.
func TestSLORollupsMatchExact(t *testing.T) {
	emb := startSuiteEtcd(t)
	ctx := context.Background()
	s := NewStore(emb.Client, "/rollups/")
	defer s.Close()
	clock := &fakeClock{}
	s.SetClock(clock.now)
	start := historyStart
	latest := rollupHistory(t, s, clock, start, 300, 3*time.Hour, 1)
	busy := latest.Truncate(time.Minute)
	latest = maxTime(latest, rollupHistory(t, s, clock, busy, 100, time.Minute, 2)) // a busy last hour
	o := testObjective(t)
	check := func(what string) {
		t.Helper()
		for at := start.Add(6 * time.Hour); at.Before(latest.Add(2 * time.Hour)); at = at.Add(17 * time.Hour) {
			for _, rb := range []string{"deploy", "restart"} {
				sameSLO(t, what+" "+rb+" at "+at.Format(time.RFC3339), o, rolledSLO(t, s, rb, o, at), exactSLO(t, s, rb, o, at), at, false)
			}
		}
	}
	check("as written")
	// Several runbooks in one read: each gets what a read of its own gets.
	since := map[string]time.Time{"deploy": start, "restart": latest.Add(-72 * time.Hour)}
	both, err := s.SLOBucketsOf(ctx, since)
	if err != nil {
		t.Fatal(err)
	}
	for rb, t0 := range since {
		one, err := s.SLOBuckets(ctx, rb, t0)
		if err != nil || len(one) == 0 || len(one) != len(both[rb]) {
			t.Fatalf("%s: %d buckets read alone (%v), %d with another", rb, len(one), err, len(both[rb]))
		}
	}
	end := latest.Add(time.Hour).Truncate(time.Hour)
	want := exactSLO(t, s, "deploy", o, end)
	if want.Runs < 100 || want.Failures == 0 || want.Cancelled == 0 {
		t.Fatalf("history too thin to judge: %+v", want)
	}
	// At the leader's now, every window to the minute: the last minutes
	// folded, the last hours in minutes.
	for _, at := range []time.Time{busy.Add(37 * time.Minute), busy.Truncate(time.Hour).Add(2 * time.Hour)} {
		if _, err := s.FoldRollups(ctx, at); err != nil {
			t.Fatal(err)
		}
		for _, rb := range []string{"deploy", "restart"} {
			if got := rolledSLO(t, s, rb, o, at); got.BurnRates[1].Runs < 10 {
				t.Fatalf("too few runs of %s at %s (busy from %s) to judge its windows: %+v", rb, at, busy, got.BurnRates)
			}
			sameSLO(t, "now "+rb+" at "+at.Format(time.RFC3339), o, rolledSLO(t, s, rb, o, at), exactSLO(t, s, rb, o, at), at, true)
		}
	}
	// Everything folded: minutes into hours, a second pass finds nothing.
	for range 2 {
		if _, err := s.FoldRollups(ctx, end.Add(8*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := s.FoldRollups(ctx, end.Add(8*time.Hour)); err != nil || n != 0 {
		t.Fatalf("a pass after everything was folded folded %d, %v", n, err)
	}
	resp, err := s.cli.Get(ctx, s.k.prefix+"slo/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range resp.Kvs {
		if !strings.HasPrefix(string(kv.Key), s.k.sloHours()) {
			t.Fatalf("folded to hours, %s remains", kv.Key)
		}
	}
	check("folded")
	sameSLO(t, "folded at end", o, rolledSLO(t, s, "deploy", o, end), want, end, false)

	// Retention: rollups of the days before the cutoff's go, the others stay.
	cutoff := end.Add(-4 * 24 * time.Hour)
	if err := s.PruneDays(ctx, cutoff); err != nil {
		t.Fatal(err)
	}
	buckets, err := s.SLOBuckets(ctx, "deploy", start)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range buckets {
		if Day(b.Start) < Day(cutoff) {
			t.Fatalf("a bucket of %s survived the prune of days before %s", b.Start, Day(cutoff))
		}
	}
	short, err := triggers.NewSLO(0.95, nil, 72*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	sameSLO(t, "pruned", short, rolledSLO(t, s, "deploy", short, end), exactSLO(t, s, "deploy", short, end), end, false)
}

// TestUsageRollupsMatchExact: usage per runbook per day read from the
// rollups equals the sum of every usage key as written (what Usage read
// before rollups), through new keys, rewrites of folded keys with the same
// value and with another (a run's later outcome; a redrive), folds between
// them, and a prune of old days.
func TestUsageRollupsMatchExact(t *testing.T) {
	emb := startSuiteEtcd(t)
	ctx := context.Background()
	s := NewStore(emb.Client, "/usagerollups/")
	defer s.Close()
	clock := &fakeClock{}
	s.SetClock(clock.now)
	today := time.Date(2026, 11, 20, 15, 0, 0, 0, time.UTC)
	clock.set(today)
	r := rand.New(rand.NewPCG(3, 4))
	written := map[string]sbruntime.Usage{} // usage key -> its value as last written
	var keys []string
	write := func(key string) {
		u := sbruntime.Usage{Steps: r.Int64N(20), Retries: r.Int64N(3), HTTPCalls: r.Int64N(9), FanOutItems: r.Int64N(4), WallTimeMS: r.Int64N(1e6)}
		if old, ok := written[key]; ok && r.IntN(2) == 0 {
			u = old // the same again: a later outcome that added nothing that day
		}
		if _, ok := written[key]; !ok {
			keys = append(keys, key)
		}
		written[key] = u
		if _, err := s.cli.Put(ctx, key, string(encodeUsage(&u))); err != nil {
			t.Fatal(err)
		}
	}
	want := func(runbook string) map[string]starbook.DayUsage {
		out := map[string]starbook.DayUsage{}
		for key, u := range written {
			day, rest, _ := strings.Cut(strings.TrimPrefix(key, s.k.usage()), "/")
			rb, _, _ := strings.Cut(rest, "/")
			if runbook != "" && rb != runbook || day < Day(today.AddDate(0, 0, -3)) {
				continue
			}
			du := out[day+"/"+rb]
			du.Runbook, du.Day = rb, day
			du.Executions++
			du.Add(u)
			out[day+"/"+rb] = du
		}
		return out
	}
	check := func(what string) {
		t.Helper()
		for _, rb := range []string{"", "a"} {
			got, err := s.Usage(ctx, rb, 4)
			if err != nil {
				t.Fatal(err)
			}
			w := want(rb)
			if len(got) != len(w) {
				t.Errorf("%s: usage of %q: %d days × runbooks, want %d", what, rb, len(got), len(w))
			}
			for _, du := range got {
				if exp := w[du.Day+"/"+du.Runbook]; du.Executions != exp.Executions || du.Usage != exp.Usage {
					t.Errorf("%s: usage of %q on %s: %+v, want %+v", what, du.Runbook, du.Day, *du, exp)
				}
			}
		}
	}
	for step := range 12 {
		for range 30 {
			if len(keys) > 0 && r.IntN(3) == 0 {
				write(keys[r.IntN(len(keys))]) // a rewrite, folded or not
				continue
			}
			day := Day(today.AddDate(0, 0, -r.IntN(4)))
			rb := []string{"a", "b", "ab"}[r.IntN(3)]
			write(s.k.executionUsage(day, rb, ulid.Make().String()))
		}
		check("written")
		if step%3 != 2 {
			if _, err := s.FoldRollups(ctx, today); err != nil {
				t.Fatal(err)
			}
			check("folded")
		}
	}
	if _, err := s.FoldRollups(ctx, today); err != nil {
		t.Fatal(err)
	}
	check("all folded")
	if resp, err := s.cli.Get(ctx, s.k.usage(), clientv3.WithPrefix(), clientv3.WithCountOnly()); err != nil || resp.Count != 0 {
		t.Fatalf("after the last fold, %v usage keys left (%v)", resp.Count, err)
	}
	// Retention: the days before the cutoff's go, rollups and all.
	if err := s.PruneDays(ctx, today.AddDate(0, 0, -1)); err != nil {
		t.Fatal(err)
	}
	for key := range written {
		if day, _, _ := strings.Cut(strings.TrimPrefix(key, s.k.usage()), "/"); day < Day(today.AddDate(0, 0, -1)) {
			delete(written, key)
		}
	}
	check("pruned")
	for _, family := range []string{s.k.usageDays(), s.k.usageFolded()} {
		resp, err := s.cli.Get(ctx, family, clientv3.WithRange(family+Day(today.AddDate(0, 0, -1))), clientv3.WithCountOnly())
		if err != nil || resp.Count != 0 {
			t.Fatalf("%d keys of %s before the cutoff survived the prune (%v)", resp.Count, family, err)
		}
	}
}

// TestBuildRollups: a store whose ends were written before rollups (no
// slo/ keys) gets them from BuildRollups: killed after its first txn and
// run again, then run once more, it counts every ended execution once —
// the SLO from rollups equals the exact one — and folds the usage keys.
func TestBuildRollups(t *testing.T) {
	emb := startSuiteEtcd(t)
	ctx := context.Background()
	s := NewStore(emb.Client, "/buildrollups/")
	defer s.Close()
	clock := &fakeClock{}
	s.SetClock(clock.now)
	latest := rollupHistory(t, s, clock, historyStart, 250, 3*time.Hour, 5)
	// As a store of format 3 is: no rollups.
	if _, err := s.cli.Delete(ctx, s.k.prefix+"slo/", clientv3.WithPrefix()); err != nil {
		t.Fatal(err)
	}
	end := latest.Add(time.Hour).Truncate(time.Hour)
	clock.set(end)
	o := testObjective(t)
	rb := "deploy"
	want := exactSLO(t, s, rb, o, end)
	if got := rolledSLO(t, s, rb, o, end); got.Runs != 0 {
		t.Fatalf("no rollups, yet %d runs", got.Runs)
	}
	// Killed as its first txn commits: a watch on its progress key cancels it.
	kctx, kill := context.WithCancel(ctx)
	wch := s.cli.Watch(kctx, s.k.sloBuilt())
	go func() {
		<-wch
		kill()
	}()
	if err := s.BuildRollups(kctx); err == nil {
		t.Fatal("the build was not killed half way: too few rollups to test a resume")
	}
	kill()
	resp, err := s.cli.Get(ctx, s.k.sloBuilt())
	if err != nil || len(resp.Kvs) == 0 || string(resp.Kvs[0].Value) == builtDone {
		t.Fatalf("killed build left %v (%v): want a cursor", resp.Kvs, err)
	}
	for i := range 2 {
		if err := s.BuildRollups(ctx); err != nil {
			t.Fatal(err)
		}
		sameSLO(t, "built", o, rolledSLO(t, s, rb, o, end), want, end, false)
		for _, at := range []time.Time{historyStart.Add(5 * 24 * time.Hour), historyStart.Add(11 * 24 * time.Hour)} {
			sameSLO(t, "built, run "+string(rune('1'+i)), o, rolledSLO(t, s, rb, o, at), exactSLO(t, s, rb, o, at), at, false)
		}
	}
	if resp, err := s.cli.Get(ctx, s.k.usage(), clientv3.WithPrefix(), clientv3.WithCountOnly()); err != nil || resp.Count != 0 {
		t.Fatalf("after the build, %v usage keys unfolded (%v)", resp.Count, err)
	}
}

// TestRollupTask: the leader task folds on its first pass, tells OnPass,
// passes again soon after one that folded something, and returns when its
// leadership (ctx) ends.
func TestRollupTask(t *testing.T) {
	emb := startSuiteEtcd(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := NewStore(emb.Client, "/rolluptask/")
	defer s.Close()
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	s.SetClock(func() time.Time { return now })
	ended := now.Add(-10 * time.Minute)
	e := &sbruntime.Execution{ID: "x1", Runbook: "r", Status: sbruntime.StatusCompleted, CreatedAt: ended.Add(-time.Second), EndedAt: &ended}
	if _, err := s.cli.Txn(ctx).Then(s.k.rollupEndOps(e)...).Commit(); err != nil {
		t.Fatal(err)
	}
	passes := make(chan int, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.RollupTask(RollupFolding{Interval: time.Hour, OnPass: func(n int, err error) {
			if err != nil {
				t.Error(err)
			}
			passes <- n
		}})(ctx)
	}()
	if n := <-passes; n != 1 {
		t.Fatalf("first pass folded %d keys, want the one end", n)
	}
	buckets, err := s.SLOBuckets(ctx, "r", now.Add(-time.Hour))
	if err != nil || len(buckets) != 1 || buckets[0].Successes != 1 || !buckets[0].Start.Equal(ended.Truncate(time.Minute)) {
		t.Fatalf("after the pass: %+v, %v; want its minute's rollup", buckets, err)
	}
	select { // a pass that folded something is followed by another soon, not an Interval later
	case n := <-passes:
		if n != 0 {
			t.Fatalf("second pass folded %d keys, want none", n)
		}
	case <-time.After(rollupBusyInterval + 5*time.Second):
		t.Fatal("no second pass within rollupBusyInterval of a busy one")
	}
	cancel()
	<-done
}

// TestFoldsRacingWritesAndEachOther: two folders at once (a leader and its
// successor) while ends and usage rewrites keep coming: every read along
// the way and the final one count each end once and sum the usage keys as
// last written.
func TestFoldsRacingWritesAndEachOther(t *testing.T) {
	emb := startSuiteEtcd(t)
	ctx := context.Background()
	s := NewStore(emb.Client, "/foldrace/")
	defer s.Close()
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	s.SetClock(func() time.Time { return now })
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for f := range 2 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := s.FoldRollups(ctx, now.Add(time.Duration(f)*8*time.Hour)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	r := rand.New(rand.NewPCG(11, 12))
	written := map[string]sbruntime.Usage{}
	var ends int64
	for i := range 300 {
		ended := now.Add(-time.Duration(r.Int64N(int64(10 * time.Hour))))
		e := &sbruntime.Execution{ID: fmt.Sprintf("e%04d", i), Runbook: "r", Status: sbruntime.StatusCompleted,
			CreatedAt: ended.Add(-time.Second), EndedAt: &ended}
		key := s.k.executionUsage(Day(ended), "r", fmt.Sprintf("e%04d", r.IntN(60))) // rewrites, mostly
		u := sbruntime.Usage{Steps: r.Int64N(9)}
		written[key] = u
		ops := append(s.k.rollupEndOps(e), clientv3.OpPut(key, string(encodeUsage(&u))))
		if _, err := s.cli.Txn(ctx).Then(ops...).Commit(); err != nil {
			t.Fatal(err)
		}
		ends++
		if i%50 == 49 {
			buckets, err := s.SLOBuckets(ctx, "r", now.Add(-11*time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			var total tally.Bucket
			for i := range buckets {
				total.Merge(&buckets[i], 1)
			}
			if total.Successes != ends || total.Latency.Count() != ends {
				t.Fatalf("after %d ends, racing folds: %d counted", ends, total.Successes)
			}
		}
	}
	close(stop)
	wg.Wait()
	if _, err := s.FoldRollups(ctx, now.Add(8*time.Hour)); err != nil {
		t.Fatal(err)
	}
	buckets, err := s.SLOBuckets(ctx, "r", now.Add(-11*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	var total tally.Bucket
	for i := range buckets {
		total.Merge(&buckets[i], 1)
	}
	if total.Successes != ends {
		t.Fatalf("%d ends, %d counted", ends, total.Successes)
	}
	got, err := s.Usage(ctx, "r", 2)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][2]int64{}
	for key, u := range written {
		day, _, _ := strings.Cut(strings.TrimPrefix(key, s.k.usage()), "/")
		w := want[day]
		want[day] = [2]int64{w[0] + 1, w[1] + u.Steps}
	}
	for _, du := range got {
		if w := want[du.Day]; du.Executions != w[0] || du.Steps != w[1] {
			t.Errorf("usage on %s: %d executions, %d steps; want %v", du.Day, du.Executions, du.Steps, w)
		}
	}
}

// TestEndedUsageKeepsNoKey: executions that record steps over two days and
// end (failed, some redriven and run again over the next day) leave no
// usage key of their own once folded, and usage read from the rollups
// equals, at each step, every execution's usage as computed from its
// history (what its end wrote), the redriven ones' included.
func TestEndedUsageKeepsNoKey(t *testing.T) {
	emb := startSuiteEtcd(t)
	ctx := context.Background()
	s := NewStore(emb.Client, "/endedusage/")
	defer s.Close()
	clock := &fakeClock{}
	s.SetClock(clock.now)
	lease, err := s.cli.Grant(ctx, 600)
	if err != nil {
		t.Fatal(err)
	}
	day0 := time.Date(2026, 11, 20, 23, 0, 0, 0, time.UTC)
	r := rand.New(rand.NewPCG(5, 6))
	final := map[string][]usagePut{} // execution -> its usage as its end wrote it
	run := func(id string, attempt int, from time.Time, status sbruntime.Status) {
		t.Helper()
		clock.set(from)
		c, err := s.Claim(ctx, id, "n1", lease.ID)
		if err != nil {
			t.Fatal(err)
		}
		at := from
		for i := range 2 + r.IntN(4) {
			at = at.Add(time.Duration(r.Int64N(int64(40 * time.Minute))))
			clock.set(at)
			ev := &sbruntime.Event{Position: fmt.Sprintf("%d", 10*attempt+i), Kind: sbruntime.KindCall, Attempt: attempt,
				Attempts: 1 + r.IntN(2), HTTPCalls: r.IntN(4), StartedAt: at, EndedAt: at}
			if err := c.Append(ctx, ev); err != nil {
				t.Fatal(err)
			}
		}
		clock.set(at.Add(time.Second))
		if _, err := c.Finish(ctx, sbruntime.Outcome{Status: status, Error: "x"}); err != nil {
			t.Fatal(err)
		}
		st, err := s.ReadRedrive(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		final[id] = s.k.finalUsagePuts(st.Execution, st.History)
	}
	check := func(what string) {
		t.Helper()
		want := map[string][2]int64{} // day/runbook -> executions, steps+http+wall
		for _, puts := range final {
			for _, p := range puts {
				day, rest, _ := strings.Cut(strings.TrimPrefix(p.key, s.k.usage()), "/")
				rb, _, _ := strings.Cut(rest, "/")
				var u sbruntime.Usage
				if err := json.Unmarshal(p.value, &u); err != nil {
					t.Fatal(err)
				}
				w := want[day+"/"+rb]
				want[day+"/"+rb] = [2]int64{w[0] + 1, w[1] + u.Steps + u.Retries + u.HTTPCalls + u.WallTimeMS}
			}
		}
		clock.set(day0.Add(72 * time.Hour))
		got, err := s.Usage(ctx, "", 5)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Errorf("%s: %d days × runbooks, want %d", what, len(got), len(want))
		}
		for _, du := range got {
			if w := want[du.Day+"/"+du.Runbook]; du.Executions != w[0] || du.Steps+du.Retries+du.HTTPCalls+du.WallTimeMS != w[1] {
				t.Errorf("%s: %s %s: %+v, want %v", what, du.Day, du.Runbook, *du, w)
			}
		}
	}
	var ids []string
	for i := range 20 {
		created := day0.Add(time.Duration(i) * 3 * time.Minute)
		clock.set(created)
		id := ulid.MustNew(ulid.Timestamp(created), rand.NewChaCha8([32]byte{byte(i)})).String()
		if err := s.CreateExecution(ctx, &sbruntime.Execution{ID: id, Runbook: []string{"a", "b"}[i%2], Version: "v1",
			Status: sbruntime.StatusPending, Trigger: sbruntime.Trigger{Type: "manual"}, CreatedAt: created, UpdatedAt: created}); err != nil {
			t.Fatal(err)
		}
		run(id, 1, created, sbruntime.StatusFailed)
		ids = append(ids, id)
	}
	check("ended")
	fold := func() {
		t.Helper()
		if _, err := s.FoldRollups(ctx, day0.Add(72*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	fold()
	check("folded")
	if resp, err := s.cli.Get(ctx, s.k.usageFolded(), clientv3.WithPrefix(), clientv3.WithCountOnly()); err != nil || resp.Count != 0 {
		t.Fatalf("%d usagefolded keys of ended executions (%v), want none", resp.Count, err)
	}
	// Redrive half and run them again the next day (attempt 2); redrive
	// half of those again before their end was folded (attempt 3).
	redrive := func(id string, at time.Time) {
		t.Helper()
		clock.set(at)
		st, err := s.ReadRedrive(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		next := *st.Execution
		next.Redrives = append(next.Redrives, sbruntime.Redrive{Attempt: next.Attempt() + 1, At: at, Status: next.Status})
		next.Status, next.Error, next.EndedAt, next.UpdatedAt = sbruntime.StatusPending, "", nil, at
		if err := s.RedriveFailed(ctx, st, &next); err != nil {
			t.Fatal(err)
		}
	}
	day1 := day0.Add(20 * time.Hour)
	for i, id := range ids {
		if i%2 == 0 {
			redrive(id, day1)
			check(fmt.Sprintf("redriven %d", i))
			run(id, 2, day1.Add(time.Minute), []sbruntime.Status{sbruntime.StatusFailed, sbruntime.StatusCompleted}[i%4/2])
			if i%4 == 0 {
				redrive(id, day1.Add(3*time.Hour))
				run(id, 3, day1.Add(3*time.Hour), sbruntime.StatusCompleted)
			}
			check(fmt.Sprintf("ran again %d", i))
		}
		if i%3 == 0 {
			fold()
			check(fmt.Sprintf("folded %d", i))
		}
	}
	fold()
	check("all folded")
	if resp, err := s.cli.Get(ctx, s.k.usageFolded(), clientv3.WithPrefix(), clientv3.WithCountOnly()); err != nil || resp.Count != 0 {
		t.Fatalf("%d usagefolded keys of ended executions (%v), want none", resp.Count, err)
	}
	if resp, err := s.cli.Get(ctx, s.k.usage(), clientv3.WithPrefix(), clientv3.WithCountOnly()); err != nil || resp.Count != 0 {
		t.Fatalf("%d usage keys left after the last fold (%v)", resp.Count, err)
	}
}
