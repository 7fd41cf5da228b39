package observe

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/starbook/starbook"
)

var budgetRatioDesc = prometheus.NewDesc("starbook_budget_used_ratio",
	"Today's (UTC) use of each day budget a runbook declares: units taken by nodes over the limit (leader only).",
	[]string{"runbook", "budget"}, nil)

// budgetCollector reads today's day budget counters on each scrape, on the
// leader only (they are cluster-wide).
type budgetCollector struct{ m *Metrics }

func (c *budgetCollector) Describe(ch chan<- *prometheus.Desc) { ch <- budgetRatioDesc }

func (c *budgetCollector) Collect(ch chan<- prometheus.Metric) {
	uses := c.m.budgetUses
	if !c.m.leading.Load() || uses == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	list, err := uses(ctx, "")
	if err != nil {
		c.m.snapshotError.Inc()
		return
	}
	for _, u := range list {
		if u.Limit > 0 {
			ch <- prometheus.MustNewConstMetric(budgetRatioDesc, prometheus.GaugeValue,
				float64(u.Used)/float64(u.Limit), label(u.Runbook), u.Budget)
		}
	}
}

// budgetUses reads the day budget counters of a day ("" for today).
type budgetUses func(ctx context.Context, day string) ([]starbook.BudgetUse, error)
