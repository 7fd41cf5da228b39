package bench

import (
	"bytes"
	"context"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/starbook/starbook/cluster"
)

// TestThroughputWorkloadCompletes runs the throughput workload once: every
// execution must complete (the bench waits for each).
func TestThroughputWorkloadCompletes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	emb, err := cluster.StartEmbedded(ctx, cluster.EmbeddedConfig{Dir: t.TempDir(), Fast: true, NoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Close()
	e := &env{cli: emb.Client}
	if err := e.startNode(ctx, "/bench/"); err != nil {
		t.Fatal(err)
	}
	defer e.stop()
	if v := e.throughput(ctx, 300, 5); e.err != nil || v <= 0 {
		t.Fatalf("throughput %v, err %v", v, e.err)
	}
}

// TestQuickRunPrintsTableAndJSON runs the whole quick bench.
func TestQuickRunPrintsTableAndJSON(t *testing.T) {
	if testing.Short() {
		t.Skip("runs every workload")
	}
	var out bytes.Buffer
	if _, err := Run(context.Background(), Config{Quick: true, Repeats: 1, Out: &out}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	last := lines[len(lines)-1]
	for _, key := range []string{"floor_txn_ms", "step_ms", "floor_txn_per_s_50", "steps_per_s_50", "fanout_1000_s",
		"flat_ratio", "resume_10k_ms", "parked_100k_rss_mb", "alerts_per_s", "http_step_ms", "http_step_ratio"} {
		if !strings.Contains(last, `"`+key+`":`) {
			t.Errorf("JSON line %s lacks %s", last, key)
		}
	}
}

// TestBudgetedBenchCountsEveryStep: with --budget the bench runbook declares
// BenchBudget, and the throughput workload's runs and steps are counted
// against it, a chunk at a time (at most a chunk and a half held ahead).
func TestBudgetedBenchCountsEveryStep(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	emb, err := cluster.StartEmbedded(ctx, cluster.EmbeddedConfig{Dir: t.TempDir(), Fast: true, NoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Close()
	e := &env{cli: emb.Client, budget: true}
	if err := e.startNode(ctx, "/bench/"); err != nil {
		t.Fatal(err)
	}
	defer e.stop()
	if v := e.throughput(ctx, 300, 5); e.err != nil || v <= 0 {
		t.Fatalf("throughput %v, err %v", v, e.err)
	}
	uses, err := e.store.BudgetUses(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, u := range uses {
		got[u.Budget] = u.Used
	}
	for budget, spent := range map[string]int64{"runs_per_day": 300, "steps_per_day": 1500} {
		if got[budget] < spent || got[budget] > spent+150 {
			t.Errorf("%s counter %d, want %d spent and at most a chunk and a half (150) held", budget, got[budget], spent)
		}
	}
}

// BenchmarkThroughput is the throughput figure of starbook bench as a Go
// benchmark, long enough to compare two builds: each iteration alternates
// fenced txns with 50 writers (the floor) and 1,000 runs of 5 no-op steps,
// 50 in flight, on an embedded etcd with fsync on; it reports the median
// ratio. "budget" declares BenchBudget on the bench runbook, as --budget
// does. Run it as
//
//	go test ./bench -run '^$' -bench Throughput -benchtime 5x
func BenchmarkThroughput(b *testing.B) {
	for _, budget := range []bool{false, true} {
		name := "plain"
		if budget {
			name = "budget"
		}
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			emb, err := cluster.StartEmbedded(ctx, cluster.EmbeddedConfig{Dir: b.TempDir(), Fast: true})
			if err != nil {
				b.Fatal(err)
			}
			defer emb.Close()
			e := &env{cli: emb.Client, sz: Config{}.sizes(), budget: budget}
			if err := e.startNode(ctx, "/bench/"); err != nil {
				b.Fatal(err)
			}
			defer e.stop()
			e.throughput(ctx, 200, 5) // warm up: versions cached, chunks taken
			var ratios, steps []float64
			b.ResetTimer()
			for range b.N {
				floor := e.floorParallel(ctx, 4000, 50)
				v := e.throughput(ctx, 1000, 5)
				ratios, steps = append(ratios, v/floor), append(steps, v)
			}
			b.StopTimer()
			if e.err != nil {
				b.Fatal(e.err)
			}
			sort.Float64s(ratios)
			sort.Float64s(steps)
			b.ReportMetric(ratios[len(ratios)/2], "throughput_ratio")
			b.ReportMetric(steps[len(steps)/2], "steps/s")
		})
	}
}

// TestPolicyBenchLoadsThePolicy: with --policy the bench node enforces
// BenchPolicy from its start, and the throughput workload runs under it.
func TestPolicyBenchLoadsThePolicy(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	emb, err := cluster.StartEmbedded(ctx, cluster.EmbeddedConfig{Dir: t.TempDir(), Fast: true, NoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Close()
	e := &env{cli: emb.Client, policy: true}
	if err := e.startNode(ctx, "/bench/"); err != nil {
		t.Fatal(err)
	}
	defer e.stop()
	if e.node.PolicyVersion() == "" {
		t.Fatal("the bench node enforces no policy")
	}
	if v := e.throughput(ctx, 50, 5); e.err != nil || v <= 0 {
		t.Fatalf("throughput %v, err %v", v, e.err)
	}
}

// TestOnlyRunsTheNamedWorkloads: --only step,throughput measures those
// two and nothing else; an unknown name is refused before anything runs.
func TestOnlyRunsTheNamedWorkloads(t *testing.T) {
	var out bytes.Buffer
	rep, err := Run(context.Background(), Config{Quick: true, Repeats: 1, Out: &out, Only: []string{"step", "throughput"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"step_ratio", "throughput_ratio"} {
		if _, ok := rep.JSON[key]; !ok {
			t.Errorf("JSON lacks %s: %v", key, rep.JSON)
		}
	}
	for _, key := range []string{"http_step_ms", "fanout_1000_s", "parked_100k_rss_mb", "alerts_per_s"} {
		if _, ok := rep.JSON[key]; ok {
			t.Errorf("JSON has %s, not asked for", key)
		}
	}
	if _, err := Run(context.Background(), Config{Quick: true, Only: []string{"steps"}}); err == nil || !strings.Contains(err.Error(), `no workload "steps"`) {
		t.Errorf("unknown workload: %v", err)
	}
}
