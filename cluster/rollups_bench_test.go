package cluster

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	clientv3 "go.etcd.io/etcd/client/v3"

	sbruntime "github.com/starbook/starbook/runtime"
	"github.com/starbook/starbook/slo"
	"github.com/starbook/starbook/triggers"
)

// writeEnded writes n ended executions of two runbooks spread over the 30
// days before now, as their ends write them (record, SLO end, usage key),
// and folds the rollups as the leader would have by now.
func writeEnded(ctx context.Context, s *Store, n int, now time.Time) error {
	r := rand.New(rand.NewPCG(uint64(n), 1))
	entropy := ulid.Monotonic(rand.NewChaCha8([32]byte{1}), 0)
	start := now.Add(-30 * 24 * time.Hour)
	var ops []clientv3.Op
	flush := func() error {
		_, err := s.cli.Txn(ctx).Then(ops...).Commit()
		ops = ops[:0]
		return err
	}
	for i := range n {
		created := start.Add(time.Duration(i) * (30 * 24 * time.Hour / time.Duration(n)))
		ended := created.Add(time.Duration(r.ExpFloat64() * float64(2*time.Minute)))
		e := &sbruntime.Execution{ID: ulid.MustNew(ulid.Timestamp(created), entropy).String(), Runbook: []string{"a", "b"}[i%2],
			Version: "v1", Status: []sbruntime.Status{sbruntime.StatusCompleted, sbruntime.StatusFailed}[min(r.IntN(20), 1)],
			Trigger: sbruntime.Trigger{Type: "manual"}, CreatedAt: created, UpdatedAt: ended, EndedAt: &ended}
		data, err := e.EncodeJSON()
		if err != nil {
			return err
		}
		u := sbruntime.Usage{Steps: 5, HTTPCalls: 3, WallTimeMS: ended.Sub(created).Milliseconds()}
		ops = append(ops, clientv3.OpPut(s.k.execution(e.ID), string(data)),
			clientv3.OpPut(s.k.executionUsage(Day(ended), e.Runbook, e.ID), string(encodeUsage(&u))))
		ops = append(ops, s.k.rollupEndOps(e)...)
		if len(ops) >= 120 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := flush(); err != nil {
		return err
	}
	_, err := s.FoldRollups(ctx, now)
	return err
}

// writeBurst writes n ended executions of two runbooks as a burst of rate
// ends a second that ends at now, as writeEnded does, and folds the
// rollups as the leader does meanwhile: a pass every rollupBusyInterval from
// the burst's start, the last one before now (a read just before the next
// pass: the most left unfolded).
func writeBurst(ctx context.Context, s *Store, n, rate int, now time.Time) error {
	entropy := ulid.Monotonic(rand.NewChaCha8([32]byte{2}), 0)
	start := now.Add(-time.Duration(n) * time.Second / time.Duration(rate))
	next := start // the next pass
	var ops []clientv3.Op
	flush := func() error {
		_, err := s.cli.Txn(ctx).Then(ops...).Commit()
		ops = ops[:0]
		return err
	}
	for i := range n {
		ended := start.Add(time.Duration(i) * time.Second / time.Duration(rate))
		for !next.After(ended) {
			if err := flush(); err != nil {
				return err
			}
			if _, err := s.FoldRollups(ctx, next); err != nil {
				return err
			}
			next = next.Add(rollupBusyInterval)
		}
		created := ended.Add(-3 * time.Second)
		e := &sbruntime.Execution{ID: ulid.MustNew(ulid.Timestamp(created), entropy).String(), Runbook: []string{"a", "b"}[i%2],
			Version: "v1", Status: sbruntime.StatusCompleted, Trigger: sbruntime.Trigger{Type: "alert"},
			CreatedAt: created, UpdatedAt: ended, EndedAt: &ended}
		data, err := e.EncodeJSON()
		if err != nil {
			return err
		}
		u := sbruntime.Usage{Steps: 5, HTTPCalls: 3, WallTimeMS: 3000}
		ops = append(ops, clientv3.OpPut(s.k.execution(e.ID), string(data)),
			clientv3.OpPut(s.k.executionUsage(Day(ended), e.Runbook, e.ID), string(encodeFinalUsage(&u))))
		ops = append(ops, s.k.rollupEndOps(e)...)
		if len(ops) >= 120 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

// BenchmarkRollupReads: what `starbook slo` (one runbook's 28d objective)
// and `starbook usage` (30 days) cost with 1,000 and 10,000 ended
// executions stored: from rollups, and, for slo, the exact read of every
// record it replaced. From rollups, the cost grows with the buckets that
// hold an end (at most 720 hours and 420 minutes a runbook for 30 days),
// then stays flat; the old way, it grows with the executions.
func BenchmarkRollupReads(b *testing.B) {
	emb := benchEtcd(b)
	ctx := context.Background()
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	o, err := triggers.NewSLO(0.99, map[string]time.Duration{"p95": 5 * time.Minute}, 0)
	if err != nil {
		b.Fatal(err)
	}
	sizes := []int{1000, 10000}
	if os.Getenv("STARBOOK_BENCH_100K") != "" {
		sizes = append(sizes, 100000) // minutes of setup, and seconds per exact read
	}
	stores := map[int]*Store{}
	for _, n := range sizes {
		s := NewStore(emb.Client, fmt.Sprintf("/rollupreads%d/", n))
		defer s.Close()
		s.SetClock(func() time.Time { return now })
		if err := writeEnded(ctx, s, n, now); err != nil {
			b.Fatal(err)
		}
		stores[n] = s
	}
	// As retention leaves it: old revisions of the folded keys compacted.
	if _, err := stores[sizes[0]].Compact(ctx, 1); err != nil {
		b.Fatal(err)
	}
	for _, n := range sizes {
		s := stores[n]
		b.Run(fmt.Sprintf("slo/rollups/executions=%d", n), func(b *testing.B) {
			for b.Loop() {
				buckets, err := s.SLOBuckets(ctx, "a", now.Add(-slo.Span(o)))
				if err != nil {
					b.Fatal(err)
				}
				if st := slo.ComputeBuckets("a", "v1", o, buckets, now); st.Runs == 0 {
					b.Fatal("no runs")
				}
				b.ReportMetric(float64(len(buckets)), "keys/op")
			}
		})
		b.Run(fmt.Sprintf("slo/exact/executions=%d", n), func(b *testing.B) {
			for b.Loop() {
				var runs []slo.Run
				if err := s.EndedSince(ctx, now.Add(-slo.Span(o)), func(e *sbruntime.Execution) {
					if e.Runbook == "a" {
						runs = append(runs, slo.Run{Status: e.Status, Created: e.CreatedAt, Ended: *e.EndedAt})
					}
				}); err != nil {
					b.Fatal(err)
				}
				if st := slo.Compute("a", "v1", o, runs, now); st.Runs == 0 {
					b.Fatal("no runs")
				}
				b.ReportMetric(float64(len(runs)), "runs/op")
			}
		})
		b.Run(fmt.Sprintf("usage/rollups/executions=%d", n), func(b *testing.B) {
			for b.Loop() {
				if days, err := s.Usage(ctx, "", 30); err != nil || len(days) == 0 {
					b.Fatal(days, err)
				}
			}
		})
	}
}

// TestRollupReadCost measures what BenchmarkRollupReads does, alternating
// the store sizes read by read so that load from elsewhere on the machine
// falls on each alike, and logs the medians and their ratios. Run with
// STARBOOK_MEASURE_ROLLUPS=1 (and STARBOOK_BENCH_100K=1 for 100,000):
//
//	STARBOOK_MEASURE_ROLLUPS=1 go test ./cluster -run TestRollupReadCost -v
//	STARBOOK_MEASURE_ROLLUPS=1 STARBOOK_MEASURE_BURST=1 STARBOOK_BENCH_100K=1 go test ./cluster -run TestRollupReadCost -v
//
// (and STARBOOK_MEASURE_COMPACTED=1 to compact after the burst too).
func TestRollupReadCost(t *testing.T) {
	if os.Getenv("STARBOOK_MEASURE_ROLLUPS") == "" {
		t.Skip("a measure: set STARBOOK_MEASURE_ROLLUPS=1")
	}
	ctx := context.Background()
	emb, err := StartEmbedded(ctx, EmbeddedConfig{Dir: t.TempDir(), Fast: true})
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Close()
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	o, err := triggers.NewSLO(0.99, map[string]time.Duration{"p95": 5 * time.Minute}, 0)
	if err != nil {
		t.Fatal(err)
	}
	sizes := []int{1000, 10000}
	if os.Getenv("STARBOOK_BENCH_100K") != "" {
		sizes = append(sizes, 100000)
	}
	// STARBOOK_MEASURE_BURST=1: the stores are as right after a burst of
	// 500 ends a second (bench/scale.go's load), folded as the leader does
	// meanwhile (writeBurst), instead of 30 days' ends all folded.
	burst := os.Getenv("STARBOOK_MEASURE_BURST") != ""
	stores := map[int]*Store{}
	for _, n := range sizes {
		s := NewStore(emb.Client, fmt.Sprintf("/rollupcost%d/", n), WithMaxTxnOps(EmbeddedMaxTxnOps))
		defer s.Close()
		s.SetClock(func() time.Time { return now })
		write := writeEnded
		if burst {
			write = func(ctx context.Context, s *Store, n int, now time.Time) error {
				return writeBurst(ctx, s, n, 500, now)
			}
		}
		t0 := time.Now()
		if err := write(ctx, s, n, now); err != nil {
			t.Fatal(err)
		}
		t.Logf("%d executions written and folded in %v", n, time.Since(t0).Round(time.Millisecond))
		if burst { // what the rollups keep of the ended executions once all is folded
			if _, err := s.FoldRollups(ctx, now.Add(rollupGrace)); err != nil {
				t.Fatal(err)
			}
			var counts []string
			for _, family := range []string{s.k.sloEnds(), s.k.sloMinutes(), s.k.sloHours(), s.k.usage(), s.k.usageFolded(), s.k.usageDays()} {
				resp, err := s.cli.Get(ctx, family, clientv3.WithPrefix(), clientv3.WithCountOnly())
				if err != nil {
					t.Fatal(err)
				}
				counts = append(counts, fmt.Sprintf("%s %d", strings.TrimPrefix(family, s.k.prefix), resp.Count))
			}
			t.Logf("%d executions, all folded: keys %s", n, strings.Join(counts, ", "))
			// The reads below are right after the burst: write it again.
			s = NewStore(emb.Client, fmt.Sprintf("/rollupcostb%d/", n), WithMaxTxnOps(EmbeddedMaxTxnOps))
			defer s.Close()
			s.SetClock(func() time.Time { return now })
			if err := write(ctx, s, n, now); err != nil {
				t.Fatal(err)
			}
		}
		stores[n] = s
	}
	// Compacted, as a store is an hour on (AutoCompactionRetention); right
	// after a burst, the keys folded away are still in etcd's index: a
	// range read steps over them.
	if !burst || os.Getenv("STARBOOK_MEASURE_COMPACTED") != "" {
		if _, err := stores[sizes[0]].Compact(ctx, 1); err != nil {
			t.Fatal(err)
		}
	}
	reads := map[string]func(s *Store) error{
		"slo": func(s *Store) error {
			buckets, err := s.SLOBuckets(ctx, "a", now.Add(-slo.Span(o)))
			if err == nil && slo.ComputeBuckets("a", "v1", o, buckets, now).Runs == 0 {
				err = fmt.Errorf("no runs")
			}
			return err
		},
		"usage": func(s *Store) error { _, err := s.Usage(ctx, "", 30); return err },
		"slo-exact": func(s *Store) error {
			var runs []slo.Run
			return s.EndedSince(ctx, now.Add(-slo.Span(o)), func(e *sbruntime.Execution) {
				if e.Runbook == "a" {
					runs = append(runs, slo.Run{Status: e.Status, Created: e.CreatedAt, Ended: *e.EndedAt})
				}
			})
		},
	}
	for _, name := range []string{"slo", "usage", "slo-exact"} {
		samples := map[int][]time.Duration{}
		rounds := 41
		if name == "slo-exact" {
			rounds = 5
		}
		for range rounds {
			for _, n := range sizes {
				t0 := time.Now()
				if err := reads[name](stores[n]); err != nil {
					t.Fatal(err)
				}
				samples[n] = append(samples[n], time.Since(t0))
			}
		}
		base := median(samples[sizes[0]])
		for _, n := range sizes {
			m := median(samples[n])
			t.Logf("%-9s %6d executions: median %8.2f ms, %5.2fx the %d's", name, n, float64(m)/1e6, float64(m)/float64(base), sizes[0])
		}
	}
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}
