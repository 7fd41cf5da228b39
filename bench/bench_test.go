package bench

import (
	"bytes"
	"context"
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
		"flat_ratio", "resume_10k_ms", "parked_100k_rss_mb", "alerts_per_s"} {
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
