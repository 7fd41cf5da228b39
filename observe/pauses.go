package observe

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/starbook/starbook"
)

var pausedDesc = prometheus.NewDesc("starbook_runbook_paused",
	"1 while a runbook is paused by its own pause, 0 once resumed; runbook \"*\" is the pause of every runbook (leader only).",
	[]string{"runbook"}, nil)

// PauseReader reads the pauses set (the leader's store).
type PauseReader interface {
	Pauses(ctx context.Context) ([]starbook.PauseState, error)
}

// pauseCollector reports starbook_runbook_paused on the leader, from the
// pauses in etcd (one small read a scrape: one key per paused runbook). A
// runbook seen paused by this node stays reported, as 0, once resumed.
type pauseCollector struct {
	m *Metrics

	mu   sync.Mutex
	read PauseReader
	seen map[string]bool
}

func (c *pauseCollector) Describe(ch chan<- *prometheus.Desc) { ch <- pausedDesc }

func (c *pauseCollector) Collect(ch chan<- prometheus.Metric) {
	if !c.m.leading.Load() {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.read == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	list, err := c.read.Pauses(ctx)
	cancel()
	if err != nil {
		c.m.snapshotError.Inc()
		return
	}
	paused := map[string]bool{starbook.AllRunbooks: false}
	for rb := range c.seen {
		paused[rb] = false
	}
	now := time.Now()
	for _, p := range list {
		if p.Active(now) {
			paused[label(p.Runbook)] = true
			c.seen[label(p.Runbook)] = true
		}
	}
	for rb, on := range paused {
		v := 0.0
		if on {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(pausedDesc, prometheus.GaugeValue, v, rb)
	}
}

// ReadPauses makes the leader report starbook_runbook_paused from r.
func (m *Metrics) ReadPauses(r PauseReader) {
	m.pauses.mu.Lock()
	defer m.pauses.mu.Unlock()
	m.pauses.read, m.pauses.seen = r, map[string]bool{}
}
