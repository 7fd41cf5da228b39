package observe

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/starbook/starbook/api"
	"github.com/starbook/starbook/builtins"
	"github.com/starbook/starbook/cluster"
	"github.com/starbook/starbook/node"
	sbruntime "github.com/starbook/starbook/runtime"
	"github.com/starbook/starbook/service"
)

// The store is what the metrics read.
var (
	_ Store         = (*cluster.Store)(nil)
	_ RolloutSource = (*cluster.Store)(nil)
)

// callee records the traceparent of each request and fails /flaky once.
type callee struct {
	mu      sync.Mutex
	parents []string
	flaky   int
}

func (c *callee) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.parents = append(c.parents, r.Header.Get("traceparent"))
	if r.URL.Path == "/flaky" {
		c.flaky++
		if c.flaky == 1 {
			http.Error(w, "try again", http.StatusServiceUnavailable)
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"ok": true}`))
}

// TestObservedExecution runs an execution that a traced request starts and
// that parks on a durable timer (so its second run replays), and checks the
// spans, the propagated traceparent, the metrics and the log lines.
func TestObservedExecution(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	emb, err := cluster.StartEmbedded(ctx, cluster.EmbeddedConfig{Dir: t.TempDir(), Fast: true, NoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Close()
	m := NewMetrics()
	InstrumentEtcd(emb.Client, m)
	rec := tracetest.NewSpanRecorder()
	tracing := NewTracing("n1", nil, sdktrace.WithSpanProcessor(rec))
	var logs bytes.Buffer
	var logMu sync.Mutex
	logger := slog.New(LogHandler(slog.NewJSONHandler(&lockedWriter{w: &logs, mu: &logMu}, nil)))

	bi := builtins.New(builtins.Options{})
	store := cluster.NewStore(emb.Client, "/o/")
	defer store.Close()
	// Count cluster-wide changes from before the execution exists.
	watchCtx, stopWatch := context.WithCancel(ctx)
	watching, watchDone := make(chan struct{}), make(chan struct{})
	seen := &endNotifier{Metrics: m, ended: make(chan string, 10)}
	go func() {
		defer close(watchDone)
		store.WatchChanges(watchCtx, seen, func() { close(watching) })
	}()
	defer func() { stopWatch(); <-watchDone }()
	<-watching
	m.snapshot, _ = store.Snapshot, m.leading.Swap(true)

	worker, err := node.New(ctx, store, node.Config{ID: "n1", Builtins: bi, SessionTTL: 2 * time.Second,
		StopGrace: time.Second, Logger: logger, Observer: &Observer{Metrics: m, Tracing: tracing, Node: "n1"}})
	if err != nil {
		t.Fatal(err)
	}
	nodeCtx, stopNode := context.WithCancel(ctx)
	nodeDone := make(chan error, 1)
	go func() { nodeDone <- worker.Run(nodeCtx) }()
	defer func() { stopNode(); <-nodeDone }()

	svc := service.New(store, bi)
	srv := httptest.NewServer(tracing.Middleware(api.NewHandler(svc, logger)))
	defer srv.Close()
	cal := &callee{}
	target := httptest.NewServer(cal)
	defer target.Close()

	if _, err := svc.Apply(ctx, map[string]string{"obs.star": `
def main(event):
    log("checking", url = event.url)
    call(http.get, event.url + "/a")
    sleep("1ms")
    call(http.get, event.url + "/flaky", retries = 0, retry = retry(attempts = 3, initial = "1ms"), name = "flaky")
    fan_out(lambda i: i * 2, [1, 2, 3])
    log("done")
    return "ok"
`}); err != nil {
		t.Fatal(err)
	}
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	body, _ := json.Marshal(map[string]any{"runbook": "obs", "input": map[string]string{"url": target.URL}})
	req, _ := http.NewRequestWithContext(ctx, "POST", srv.URL+"/api/v1/executions", bytes.NewReader(body))
	req.Header.Set("traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var started struct{ Execution *sbruntime.Execution }
	_ = json.NewDecoder(resp.Body).Decode(&started)
	resp.Body.Close()
	if resp.StatusCode != 201 || started.Execution == nil {
		t.Fatalf("start: %s", resp.Status)
	}
	e, err := svc.AwaitEnd(ctx, started.Execution.ID)
	if err != nil || e.Status != sbruntime.StatusCompleted {
		t.Fatalf("end = %+v, %v", e, err)
	}
	for id := range seen.ended { // the leader's watch counted the end
		if id == e.ID {
			break
		}
	}
	if e.TraceID() != traceID {
		t.Errorf("execution trace id %s, want the request's %s", e.TraceID(), traceID)
	}

	// Traces: every run in the caller's trace, the replay marked, a span per
	// executed step, the step's span in the callee's traceparent.
	var runs, replays int
	steps := map[string]int{}
	stepSpans := map[string]bool{}
	for _, s := range rec.Ended() {
		if s.SpanContext().TraceID().String() != traceID {
			continue
		}
		attrs := map[attribute.Key]attribute.Value{}
		for _, a := range s.Attributes() {
			attrs[a.Key] = a.Value
		}
		switch {
		case strings.HasPrefix(s.Name(), "run "):
			runs++
			if attrs["starbook.replay"].AsBool() {
				replays++
				if attrs["starbook.replayed_steps"].AsInt64() < 2 {
					t.Errorf("replay span: replayed_steps = %v", attrs["starbook.replayed_steps"])
				}
			}
		case attrs["starbook.kind"].Type() != attribute.INVALID:
			steps[attrs["starbook.kind"].AsString()]++
			stepSpans[s.SpanContext().SpanID().String()] = true
		}
	}
	if runs < 2 || replays < 1 {
		t.Errorf("%d run spans, %d replays; want >= 2 and >= 1", runs, replays)
	}
	if steps["call"] != 2 || steps["fan_out"] != 1 {
		t.Errorf("step spans by kind: %v", steps)
	}
	cal.mu.Lock()
	for _, tp := range cal.parents {
		parts := strings.Split(tp, "-")
		if len(parts) != 4 || parts[1] != traceID || !stepSpans[parts[2]] {
			t.Errorf("callee saw traceparent %q: want trace %s and a step span", tp, traceID)
		}
	}
	cal.mu.Unlock()

	// Metrics.
	if v := testutil.ToFloat64(m.started.WithLabelValues("obs", "api")); v != 1 {
		t.Errorf("started = %v", v)
	}
	if v := testutil.ToFloat64(m.ended.WithLabelValues("obs", "api", "completed")); v != 1 {
		t.Errorf("ended completed = %v", v)
	}
	if v := testutil.ToFloat64(m.retries.WithLabelValues("obs", "call", "flaky")); v != 1 {
		t.Errorf("retries = %v", v)
	}
	if n := testutil.CollectAndCount(m.steps, "starbook_step_duration_seconds"); n < 3 {
		t.Errorf("%d step latency series", n)
	}
	rw := httptest.NewRecorder()
	m.Handler().ServeHTTP(rw, httptest.NewRequest("GET", "/metrics", nil))
	for _, want := range []string{"starbook_fan_out_items_bucket", "starbook_runs_total{outcome=\"waiting\",runbook=\"obs\"} 1",
		"starbook_etcd_request_duration_seconds_count{op=\"txn\"}", "starbook_queue_depth 0",
		"starbook_waits_pending{kind=\"approval\"} 0", "starbook_replayed_steps_total"} {
		if !strings.Contains(rw.Body.String(), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	// Logs: the execution's lines carry its trace id, node and position.
	logMu.Lock()
	defer logMu.Unlock()
	found := false
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, `"msg":"checking"`) {
			found = true
			for _, want := range []string{`"trace_id":"` + traceID + `"`, `"node":"n1"`, `"position":"0"`, `"execution":"` + e.ID + `"`} {
				if !strings.Contains(line, want) {
					t.Errorf("log line lacks %s: %s", want, line)
				}
			}
		}
	}
	if !found {
		t.Errorf("no log line from the runbook in:\n%s", logs.String())
	}
}

// TestRunTraceWithoutCaller: an execution nobody traced gets a trace id of
// its own, the same for every run.
func TestRunTraceWithoutCaller(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tr := NewTracing("n1", nil, sdktrace.WithSpanProcessor(rec))
	o := &Observer{Tracing: tr, Metrics: NewMetrics()}
	e := &sbruntime.Execution{ID: "01JTEST", Runbook: "r"}
	for range 2 {
		_, end := o.StartRun(context.Background(), sbruntime.RunInfo{Execution: e})
		end(sbruntime.RunReport{Outcome: sbruntime.Outcome{Status: sbruntime.StatusWaiting}})
	}
	spans := rec.Ended()
	if len(spans) != 2 {
		t.Fatalf("%d spans", len(spans))
	}
	for _, s := range spans {
		if got := s.SpanContext().TraceID().String(); got != e.TraceID() {
			t.Errorf("trace id %s, want %s", got, e.TraceID())
		}
	}
	// Without an exporter spans still get ids, but are not sampled.
	off := NewTracing("n1", nil)
	ctx, end := (&Observer{Tracing: off}).StartRun(context.Background(), sbruntime.RunInfo{Execution: e})
	h := http.Header{}
	Inject(ctx, h)
	end(sbruntime.RunReport{})
	if tp := h.Get("traceparent"); !strings.Contains(tp, e.TraceID()) || !strings.HasSuffix(tp, "-00") {
		t.Errorf("traceparent without exporter = %q", tp)
	}
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// endNotifier passes changes on to the metrics and tells which executions ended.
type endNotifier struct {
	*Metrics
	ended chan string
}

func (n *endNotifier) ExecutionChanged(prev, cur *sbruntime.Execution) {
	n.Metrics.ExecutionChanged(prev, cur)
	if cur.Status.Terminal() {
		n.ended <- cur.ID
	}
}

func TestThrottledBy(t *testing.T) {
	x := func(status sbruntime.Status, err string) *sbruntime.Execution {
		return &sbruntime.Execution{Status: status, Error: err}
	}
	pending := x(sbruntime.StatusPending, "")
	for _, tc := range []struct {
		name      string
		prev, cur *sbruntime.Execution
		want      string
	}{
		{"created queued", nil, x(sbruntime.StatusPending, "queued: max_concurrent 2 reached"), "queued"},
		{"queued record rewritten", x(sbruntime.StatusPending, "queued: rate"), x(sbruntime.StatusPending, "queued: rate"), ""},
		{"created dropped", nil, x(sbruntime.StatusCancelled, "dropped: max_concurrent 1 reached"), "dropped"},
		{"start refused by a budget", nil, x(sbruntime.StatusCancelled, "budget: runs_per_day 10 reached"), "budget"},
		{"stopped by a budget in flight", pending, x(sbruntime.StatusFailed, "budget: steps_per_day 100 reached"), "budget"},
		{"cancelled by a person", pending, x(sbruntime.StatusCancelled, "cancelled"), ""},
		{"failed", pending, x(sbruntime.StatusFailed, "boom"), ""},
		{"ended record rewritten", x(sbruntime.StatusCancelled, "dropped: rate"), x(sbruntime.StatusCancelled, "dropped: rate"), ""},
		{"started", nil, pending, ""},
	} {
		if got := throttledBy(tc.prev, tc.cur); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}
