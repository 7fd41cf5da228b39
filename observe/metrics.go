package observe

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"

	"github.com/starbook/starbook"
	sbruntime "github.com/starbook/starbook/runtime"
)

// Metrics holds a node's Prometheus metrics in a registry of its own (etcd's
// embedded server registers into the default one; Handler serves both).
type Metrics struct {
	Registry *prometheus.Registry

	started       *prometheus.CounterVec
	ended         *prometheus.CounterVec
	throttled     *prometheus.CounterVec
	alerts        *prometheus.CounterVec
	execDuration  *prometheus.HistogramVec
	runs          *prometheus.CounterVec
	running       prometheus.Gauge
	replayed      *prometheus.CounterVec
	steps         *prometheus.HistogramVec
	retries       *prometheus.CounterVec
	fanOut        *prometheus.HistogramVec
	approvalWait  *prometheus.HistogramVec
	leader        prometheus.Gauge
	etcdLatency   *prometheus.HistogramVec
	etcdErrors    *prometheus.CounterVec
	retained      prometheus.Counter
	leading       atomic.Bool
	snapshot      func(ctx context.Context) (*starbook.ClusterState, error)
	budgetUses    budgetUses // today's budget counters (budget.go)
	snapshotError prometheus.Counter
	deadLetters   *deadLetterCollector
	pauses        *pauseCollector // starbook_runbook_paused (pauses.go)
	rollouts      *prometheus.CounterVec
	backups       backupMetrics // periodic snapshots (snapshots.go)
	downstream    downstreamMetrics

	// stepSeries caches the step histogram's series: a label lookup in the
	// vector hashes every label value, and it happens on every step.
	stepSeriesMu sync.RWMutex
	stepSeries   map[stepLabels]prometheus.Observer
}

// stepLabels are the labels of a step duration series, as given (not folded).
type stepLabels struct{ runbook, kind, name, result string }

// Label values outside a small set are folded so that a script cannot blow
// up the number of series.
const maxLabel = 64

func label(s string) string {
	if len(s) > maxLabel {
		return s[:maxLabel]
	}
	if s == "" {
		return "-"
	}
	return s
}

// NewMetrics returns the metrics of one node, registered with Go and
// process collectors in a new registry.
func NewMetrics() *Metrics {
	m := &Metrics{Registry: prometheus.NewRegistry()}
	m.deadLetters = &deadLetterCollector{m: m}
	m.pauses = &pauseCollector{m: m}
	m.backups = newBackupMetrics()
	m.downstream = newDownstreamMetrics()
	f := func(c prometheus.Collector) { m.Registry.MustRegister(c) }
	latency := []float64{.001, .005, .01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900}
	m.started = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "starbook_executions_started_total",
		Help: "Executions created, by runbook and trigger type (counted by the leader)."}, []string{"runbook", "trigger"})
	m.ended = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "starbook_executions_ended_total",
		Help: "Executions that reached a terminal status: completed, failed, cancelled or stuck (counted by the leader)."},
		[]string{"runbook", "trigger", "status"})
	m.throttled = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "starbook_runs_throttled_total",
		Help: "Executions held back by a limit, by runbook, trigger type and reason: queued (max_concurrent or rate), dropped (on_excess=\"drop\") or budget (refused by a budget()) (counted by the leader)."},
		[]string{"runbook", "trigger", "reason"})
	m.alerts = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "starbook_alerts_total",
		Help: "Alerts received on /hooks/alertmanager, per runbook they matched and outcome: started, queued, dropped, duplicate, coalesced (delivered to its group's run), overflow (its group's run was full: a dead letter), no_run (a resolved alert whose group has no run) or refused (by the input schema) (counted by the node that received them)."},
		[]string{"runbook", "status"})
	m.execDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "starbook_execution_duration_seconds",
		Help:    "Time from an execution's creation to its end, by runbook and terminal status (counted by the leader).",
		Buckets: ExecutionDurationBuckets}, []string{"runbook", "status"})
	m.runs = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "starbook_runs_total",
		Help: "Runs (first runs and replays) this node finished, by how they ended: completed, failed, waiting, stuck, cancelled or aborted."},
		[]string{"runbook", "outcome"})
	m.running = prometheus.NewGauge(prometheus.GaugeOpts{Name: "starbook_runs_in_flight",
		Help: "Executions this node is running now."})
	m.replayed = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "starbook_replayed_steps_total",
		Help: "Durable calls answered from recorded history on replay."}, []string{"runbook"})
	m.steps = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "starbook_step_duration_seconds",
		Help:    "Latency of executed (not replayed) steps, retries included, by runbook, kind, name and result (ok or failed).",
		Buckets: latency}, []string{"runbook", "kind", "name", "result"})
	m.retries = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "starbook_step_retries_total",
		Help: "Extra attempts of steps (attempts - 1)."}, []string{"runbook", "kind", "name"})
	m.fanOut = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "starbook_fan_out_items",
		Help:    "Items of each fan_out that ran.",
		Buckets: []float64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000, 10000}}, []string{"runbook"})
	m.approvalWait = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "starbook_approval_latency_seconds",
		Help:    "Time from an approval request to its decision or timeout, by runbook and decision (counted by the leader).",
		Buckets: []float64{1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 24 * 3600}}, []string{"runbook", "decision"})
	m.leader = prometheus.NewGauge(prometheus.GaugeOpts{Name: "starbook_leader",
		Help: "1 while this node is the cluster's leader."})
	m.etcdLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "starbook_etcd_request_duration_seconds",
		Help:    "Latency of this node's etcd KV requests by operation (get, put, delete, txn, compact).",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 5}}, []string{"op"})
	m.etcdErrors = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "starbook_etcd_request_errors_total",
		Help: "etcd KV requests of this node that failed, by operation."}, []string{"op"})
	m.retained = prometheus.NewCounter(prometheus.CounterOpts{Name: "starbook_retention_deleted_total",
		Help: "Ended executions deleted by retention."})
	m.snapshotError = prometheus.NewCounter(prometheus.CounterOpts{Name: "starbook_state_read_errors_total",
		Help: "Scrapes whose read of the cluster state from etcd failed."})
	m.rollouts = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "starbook_rollout_transitions_total",
		Help: "Canary rollout transitions (started, promoted, rolled_back, aborted) this node committed, by runbook."},
		[]string{"runbook", "transition"})
	for _, c := range []prometheus.Collector{m.rollouts, m.started, m.ended, m.throttled, m.alerts, m.execDuration, m.runs, m.running, m.replayed, m.steps, m.retries,
		m.fanOut, m.approvalWait, m.leader, m.etcdLatency, m.etcdErrors, m.retained, m.snapshotError,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&stateCollector{m}, m.deadLetters, m.pauses, &budgetCollector{m}, m.backups.lastSaved, m.backups.failures} {
		f(c)
	}
	for _, c := range m.downstream.collectors() {
		f(c)
	}
	return m
}

// ExecutionDurationBuckets are the bounds of starbook_execution_duration_seconds:
// 1s to 1d, as runs last from seconds to days of waiting for people.
var ExecutionDurationBuckets = []float64{1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 2 * 3600, 6 * 3600, 12 * 3600, 24 * 3600}

// stepDone records an executed step ev of kind and name in runbook; items is
// a fan_out's item count.
func (m *Metrics) stepDone(runbook, kind, name string, items int, ev *sbruntime.Event) {
	result := "ok"
	if ev.Failed() {
		result = "failed"
	}
	m.stepDuration(stepLabels{runbook, kind, name, result}).Observe(ev.EndedAt.Sub(ev.StartedAt).Seconds())
	if ev.Attempts > 1 {
		m.retries.WithLabelValues(label(runbook), kind, label(name)).Add(float64(ev.Attempts - 1))
	}
	if kind == sbruntime.KindFanOut {
		m.fanOut.WithLabelValues(label(runbook)).Observe(float64(items))
	}
}

func (m *Metrics) stepDuration(l stepLabels) prometheus.Observer {
	m.stepSeriesMu.RLock()
	o, ok := m.stepSeries[l]
	m.stepSeriesMu.RUnlock()
	if ok {
		return o
	}
	o = m.steps.WithLabelValues(label(l.runbook), l.kind, label(l.name), l.result)
	m.stepSeriesMu.Lock()
	defer m.stepSeriesMu.Unlock()
	if m.stepSeries == nil {
		m.stepSeries = map[stepLabels]prometheus.Observer{}
	}
	m.stepSeries[l] = o
	return o
}

// Handler serves the metrics of m and, after them, those registered in
// Prometheus' default registry (etcd's, when it is embedded).
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(prometheus.Gatherers{m.Registry, defaultOnly{}},
		promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// defaultOnly gathers the default registry without its Go and process
// collectors, which m's registry has already.
type defaultOnly struct{}

func (defaultOnly) Gather() ([]*dto.MetricFamily, error) {
	mfs, err := prometheus.DefaultGatherer.Gather()
	out := mfs[:0]
	for _, mf := range mfs {
		if name := mf.GetName(); len(name) > 3 && (name[:3] == "go_" || (len(name) > 8 && name[:8] == "process_")) {
			continue
		}
		out = append(out, mf)
	}
	return out, err
}

// Store is what the leader's metrics read from storage (*cluster.Store).
type Store interface {
	// Snapshot reads the queue, claims, waits and nodes.
	Snapshot(ctx context.Context) (*starbook.ClusterState, error)
	// DeadLetterCounts counts dead letters by kind and reason.
	DeadLetterCounts(ctx context.Context) (map[[2]string]int, error)
	// BudgetUses reads the day budget counters of a day ("" for today).
	BudgetUses(ctx context.Context, day string) ([]starbook.BudgetUse, error)
	// WatchChanges tells w of every change from now until ctx is done.
	WatchChanges(ctx context.Context, w starbook.ChangeWatcher, ready func())
}

// LeaderTask returns a leader task (node.Config.LeaderTasks) that
// marks this node as leader, counts cluster-wide changes from store's watch
// and reports the cluster's state, until leadership ends.
func (m *Metrics) LeaderTask(store Store) func(ctx context.Context) {
	m.snapshot = store.Snapshot
	m.deadLetters.setDeadLetters(store.DeadLetterCounts)
	m.budgetUses = store.BudgetUses
	return func(ctx context.Context) {
		m.leading.Store(true)
		m.leader.Set(1)
		defer func() {
			m.leading.Store(false)
			m.leader.Set(0)
		}()
		store.WatchChanges(ctx, m, nil)
	}
}

var _ starbook.ChangeWatcher = (*Metrics)(nil)

// ExecutionChanged implements starbook.ChangeWatcher.
func (m *Metrics) ExecutionChanged(prev, cur *sbruntime.Execution) {
	rb, trig := label(cur.Runbook), label(cur.Trigger.Type)
	if prev == nil {
		m.started.WithLabelValues(rb, trig).Inc()
	}
	if reason := throttledBy(prev, cur); reason != "" {
		m.throttled.WithLabelValues(rb, trig, reason).Inc()
	}
	if cur.Status.Terminal() && (prev == nil || !prev.Status.Terminal()) {
		m.ended.WithLabelValues(rb, trig, string(cur.Status)).Inc()
		if cur.EndedAt != nil {
			m.execDuration.WithLabelValues(rb, string(cur.Status)).Observe(max(cur.EndedAt.Sub(cur.CreatedAt).Seconds(), 0))
		}
	}
}

// throttledBy names the limit that held cur back when this change is where
// it did ("" for none): created queued behind its runbook's max_concurrent
// or rate, ended dropped by on_excess="drop", or ended refused by a
// budget (a start refused, or an in-flight run stopped at its next step).
func throttledBy(prev, cur *sbruntime.Execution) string {
	switch {
	case prev == nil && !cur.Status.Terminal() && strings.HasPrefix(cur.Error, "queued: "):
		return "queued"
	case !cur.Status.Terminal() || (prev != nil && prev.Status.Terminal()):
		return ""
	case cur.Status == sbruntime.StatusCancelled && strings.HasPrefix(cur.Error, "dropped: "):
		return "dropped"
	case strings.HasPrefix(cur.Error, sbruntime.BudgetErrorPrefix):
		return "budget"
	}
	return ""
}

// ApprovalResolved implements starbook.ChangeWatcher.
func (m *Metrics) ApprovalResolved(runbook, decision string, waited time.Duration) {
	m.approvalWait.WithLabelValues(label(runbook), label(decision)).Observe(waited.Seconds())
}

// Retained counts executions deleted by retention (cluster.Retention.OnPass).
func (m *Metrics) Retained(n int, err error) { m.retained.Add(float64(n)) }

// stateCollector reads the cluster's state from etcd on each scrape, on the
// leader only.
type stateCollector struct{ m *Metrics }

var (
	queueDesc = prometheus.NewDesc("starbook_queue_depth",
		"Runnable executions no node has claimed (leader only).", nil, nil)
	claimsDesc = prometheus.NewDesc("starbook_claims",
		"Executions each node has claimed (leader only).", []string{"node"}, nil)
	waitsDesc = prometheus.NewDesc("starbook_waits_pending",
		"Pending waits by kind: approval, signal, sleep (leader only).", []string{"kind"}, nil)
	queuedDesc = prometheus.NewDesc("starbook_trigger_queued",
		"Triggered runs waiting for their runbook's max_concurrent or rate to admit them, by runbook (leader only).", []string{"runbook"}, nil)
	nodesDesc = prometheus.NewDesc("starbook_nodes",
		"Nodes registered in the cluster, each under its session lease (leader only).", nil, nil)
	waitAgeDesc = prometheus.NewDesc("starbook_waits_oldest_age_seconds",
		"Age of the oldest pending wait of each kind (leader only).", []string{"kind"}, nil)
)

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- queueDesc
	ch <- claimsDesc
	ch <- waitsDesc
	ch <- waitAgeDesc
	ch <- nodesDesc
	ch <- queuedDesc
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	if !c.m.leading.Load() || c.m.snapshot == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	snap, err := c.m.snapshot(ctx)
	if err != nil {
		c.m.snapshotError.Inc()
		return
	}
	ch <- prometheus.MustNewConstMetric(queueDesc, prometheus.GaugeValue, float64(snap.QueueDepth))
	ch <- prometheus.MustNewConstMetric(nodesDesc, prometheus.GaugeValue, float64(snap.Nodes))
	queued := map[string]int{} // by label: two long names may fold into one
	for rb, n := range snap.Queued {
		queued[label(rb)] += n
	}
	for rb, n := range queued {
		ch <- prometheus.MustNewConstMetric(queuedDesc, prometheus.GaugeValue, float64(n), rb)
	}
	for node, n := range snap.Claims {
		ch <- prometheus.MustNewConstMetric(claimsDesc, prometheus.GaugeValue, float64(n), node)
	}
	now := time.Now()
	for _, kind := range []string{sbruntime.KindApproval, sbruntime.KindSignal, sbruntime.KindSleep} {
		ch <- prometheus.MustNewConstMetric(waitsDesc, prometheus.GaugeValue, float64(snap.Waits[kind]), kind)
		age := 0.0
		if since, ok := snap.OldestWait[kind]; ok {
			age = max(now.Sub(since).Seconds(), 0)
		}
		ch <- prometheus.MustNewConstMetric(waitAgeDesc, prometheus.GaugeValue, age, kind)
	}
}

// AlertCounted counts what an alert did for a runbook it matched: give it to
// triggers.Dispatcher.Counted.
func (m *Metrics) AlertCounted(runbook, status string) {
	m.alerts.WithLabelValues(runbook, status).Inc()
}
