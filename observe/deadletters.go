package observe

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

var deadLettersDesc = prometheus.NewDesc("starbook_dead_letters",
	"Dead letters not acknowledged, by runbook (\"-\" for an event no runbook matched) and reason (leader only).",
	[]string{"runbook", "reason"}, nil)

// deadLetterRefresh is how long the leader reuses the counts it read: a
// scrape reads every dead letter, so a burst of scrapes reads them once.
const deadLetterRefresh = 10 * time.Second

// deadLetterCollector reports starbook_dead_letters on the leader, from
// the dead-letter index in etcd (its counts are cluster-wide: only the
// leader exports them, so a sum over nodes counts each once).
type deadLetterCollector struct {
	m *Metrics

	mu     sync.Mutex
	read   func(ctx context.Context) (map[[2]string]int, error)
	at     time.Time
	counts map[[2]string]int
}

func (c *deadLetterCollector) Describe(ch chan<- *prometheus.Desc) { ch <- deadLettersDesc }

func (c *deadLetterCollector) Collect(ch chan<- prometheus.Metric) {
	if !c.m.leading.Load() {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.read == nil {
		return
	}
	if c.counts == nil || time.Since(c.at) > deadLetterRefresh {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		counts, err := c.read(ctx)
		cancel()
		if err != nil {
			c.m.snapshotError.Inc()
			return
		}
		c.counts, c.at = counts, time.Now()
	}
	for k, n := range c.counts {
		ch <- prometheus.MustNewConstMetric(deadLettersDesc, prometheus.GaugeValue, float64(n), label(k[0]), k[1])
	}
}

// setDeadLetters makes the collector read counts with read (the leader's
// store), dropping what it read before.
func (c *deadLetterCollector) setDeadLetters(read func(ctx context.Context) (map[[2]string]int, error)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.read, c.counts = read, nil
}
