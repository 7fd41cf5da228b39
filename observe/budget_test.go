package observe

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/starbook/starbook/cluster"
	"github.com/starbook/starbook/triggers"
)

// TestBudgetUsedRatio: the leader reports today's counter over the limit
// of each day budget; other nodes report nothing.
func TestBudgetUsedRatio(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	emb, err := cluster.StartEmbedded(ctx, cluster.EmbeddedConfig{Dir: t.TempDir(), Fast: true, NoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Close()
	store := cluster.NewStore(emb.Client, "/ratio/")
	defer store.Close()
	b := store.Budgets()
	for range 3 {
		if err := b.Spend(ctx, "deploy", triggers.BudgetStepsPerDay, 8, 1, true); err != nil {
			t.Fatal(err)
		}
	}
	for range 4 {
		if err := b.Spend(ctx, "cleanup", triggers.BudgetRunsPerDay, 4, 1, true); err != nil {
			t.Fatal(err)
		}
	}
	m := NewMetrics()
	m.LeaderTask(store) // wires the reads; the task itself is not run
	want := `
# HELP starbook_budget_used_ratio Today's (UTC) use of each day budget a runbook declares: units taken by nodes over the limit (leader only).
# TYPE starbook_budget_used_ratio gauge
starbook_budget_used_ratio{budget="runs_per_day",runbook="cleanup"} 1
starbook_budget_used_ratio{budget="steps_per_day",runbook="deploy"} 0.375
`
	if n := testutil.CollectAndCount(m.Registry, "starbook_budget_used_ratio"); n != 0 {
		t.Errorf("a node that does not lead reports %d budget series", n)
	}
	m.leading.Store(true)
	if err := testutil.GatherAndCompare(m.Registry, strings.NewReader(want), "starbook_budget_used_ratio"); err != nil {
		t.Error(err)
	}
}
