package node_test

import (
	"context"
	"testing"
	"time"

	"github.com/starbook/starbook/slo"
	"github.com/starbook/starbook/triggers"
)

// TestRollupsBuiltFromFormat3: the format 3 fixture, written before
// rollups, gets them from BuildRollups (the format 4 migration's step; run
// here too, and again: it counts nothing twice): each runbook's SLO from
// rollups equals slo.Compute over its executions as stored, and usage
// reads the same before and after its keys are folded.
func TestRollupsBuiltFromFormat3(t *testing.T) {
	dir, m := openFormat3(t)
	clock := &fakeClock{t: m.Clock}
	tn := startNodeWith(t, dir, m.Prefix, clock.Now, nil)
	store := tn.svc.Store
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	before, err := store.Usage(ctx, "", 3)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := store.BuildRollups(ctx); err != nil {
			t.Fatal(err)
		}
	}
	o, err := triggers.NewSLO(0.9, map[string]time.Duration{"p50": time.Second, "p99": time.Minute}, 0)
	if err != nil {
		t.Fatal(err)
	}
	at := m.Clock.Add(time.Hour).Truncate(time.Hour)
	runs := map[string][]slo.Run{}
	ended := 0
	for _, x := range m.Executions {
		e, _, err := tn.svc.Execution(ctx, x.ID)
		if err != nil {
			t.Fatal(err)
		}
		r := slo.Run{Status: e.Status, Created: e.CreatedAt}
		if e.EndedAt != nil {
			r.Ended, ended = *e.EndedAt, ended+1
		}
		runs[x.Runbook] = append(runs[x.Runbook], r)
	}
	if ended < 30 {
		t.Fatalf("%d ended executions in the fixture; want 30 or more", ended)
	}
	for rb, rs := range runs {
		want := slo.Compute(rb, "v", o, rs, at)
		buckets, err := store.SLOBuckets(ctx, rb, at.Add(-slo.Span(o)))
		if err != nil {
			t.Fatal(err)
		}
		got := slo.ComputeBuckets(rb, "v", o, buckets, at)
		if got.Successes != want.Successes || got.Failures != want.Failures || got.Cancelled != want.Cancelled || got.BurnRates[3] != want.BurnRates[3] {
			t.Errorf("%s: %d ok, %d failed, %d cancelled, 3d %+v; exact %d, %d, %d, %+v", rb, got.Successes, got.Failures, got.Cancelled,
				got.BurnRates[3], want.Successes, want.Failures, want.Cancelled, want.BurnRates[3])
		}
		for i, l := range want.Latency {
			if g := got.Latency[i]; (g.Seconds == nil) != (l.Seconds == nil) || l.Seconds != nil && (*g.Seconds < *l.Seconds || *g.Seconds > *l.Seconds*1.04+0.001) {
				t.Errorf("%s %s: %v, exact %v", rb, l.Percentile, g.Seconds, l.Seconds)
			}
		}
	}
	after, err := store.Usage(ctx, "", 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before) || len(before) == 0 {
		t.Fatalf("usage %d days × runbooks after the build, %d before", len(after), len(before))
	}
	for i := range before {
		if b, a := before[i], after[i]; b.Runbook != a.Runbook || b.Day != a.Day || b.Executions != a.Executions || b.Usage != a.Usage {
			t.Errorf("usage %+v after the build, %+v before", *a, *b)
		}
	}
}
