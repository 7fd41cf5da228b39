package node_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/starbook/starbook/builtins"
	"github.com/starbook/starbook/cluster"
	"github.com/starbook/starbook/downstream"
	"github.com/starbook/starbook/node"
	"github.com/starbook/starbook/observe"
	sbruntime "github.com/starbook/starbook/runtime"
	"github.com/starbook/starbook/service"
)

// guardedNode is a node whose HTTP built-ins go through downstream guards.
type guardedNode struct {
	svc    *service.Service
	guards *downstream.Guards
	stop   func()
}

// settableClock is the breakers' clock, moved by the test.
type settableClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *settableClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *settableClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// startGuardedNode starts node id on emb with guards on clock (nil: real
// time) reporting to hooks, stopped at cleanup (or by stop); tasks build
// its leader tasks on its store.
func startGuardedNode(t *testing.T, emb *cluster.Embedded, id string, clock *settableClock, hooks downstream.Hooks,
	tasks ...func(*cluster.Store) func(context.Context)) *guardedNode {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	store := cluster.NewStore(emb.Client, "/dg/")
	cfg := downstream.Config{Node: id, Circuits: store, Hooks: hooks}
	if clock != nil {
		cfg.Now = clock.Now
	}
	guards := downstream.New(cfg)
	bi := builtins.New(builtins.Options{HTTP: builtins.HTTPOptions{Guards: guards, RetryWait: time.Millisecond, MaxRetryAfter: time.Millisecond}})
	ncfg := node.Config{ID: id, Builtins: bi, SessionTTL: 2 * time.Second, StopGrace: time.Second, Guards: guards}
	for _, task := range tasks {
		ncfg.LeaderTasks = append(ncfg.LeaderTasks, task(store))
	}
	n, err := node.New(ctx, store, ncfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("node %s run: %v", id, err)
			}
			store.Close()
		})
	}
	t.Cleanup(stop)
	svc := service.New(store, bi)
	svc.Node = n // a start runs on the node that made it
	return &guardedNode{svc: svc, guards: guards, stop: stop}
}

func startEmbedded(t *testing.T) *cluster.Embedded {
	t.Helper()
	emb, err := cluster.StartEmbedded(context.Background(), cluster.EmbeddedConfig{Dir: t.TempDir(), Fast: true, NoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emb.Close)
	return emb
}

func (gn *guardedNode) apply(t *testing.T, files map[string]string) {
	t.Helper()
	if _, err := gn.svc.Apply(context.Background(), files); err != nil {
		t.Fatal(err)
	}
}

// waitGuard waits until gn's guards follow the limit of host an apply
// declared: nodes learn of it from their watch.
func (gn *guardedNode) waitGuard(t *testing.T, host string) {
	t.Helper()
	waitFor(t, func() bool { return gn.guards.Host(host) != nil })
}

// run runs runbook with {"url": u} to its end on gn.
func (gn *guardedNode) run(t *testing.T, runbook, u string) (*sbruntime.Execution, []*sbruntime.Event) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	input, _ := json.Marshal(map[string]string{"url": u})
	e, err := gn.svc.Start(ctx, runbook, input, sbruntime.Trigger{Type: "manual"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := gn.svc.AwaitEnd(ctx, e.ID); err != nil {
		t.Fatal(err)
	}
	end, history, err := gn.svc.Execution(ctx, e.ID)
	if err != nil {
		t.Fatal(err)
	}
	return end, history
}

// failingServer answers 503 while failing is set, else 200, and counts
// what it received.
type failingServer struct {
	failing  atomic.Bool
	requests atomic.Int64
}

func (s *failingServer) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	s.requests.Add(1)
	if s.failing.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	fmt.Fprint(w, "ok")
}

func newFailingServer(t *testing.T) (*failingServer, *httptest.Server) {
	fs := &failingServer{}
	fs.failing.Store(true)
	srv := httptest.NewServer(fs)
	t.Cleanup(srv.Close)
	return fs, srv
}

// fanOutCalls makes n calls to event.url, each retried 3 times by call()
// and (by default) twice more by the HTTP built-in: up to 9 requests each.
func fanOutCalls(decl string, n, concurrency int) string {
	return decl + fmt.Sprintf(`
def main(event):
    def one(i):
        return call(http.get, event.url + "/" + str(i), retry = retry(attempts = 3, initial = "1ms", max = "2ms"))
    return fan_out(one, list(range(%d)), max_concurrency = %d, fail_fast = False)
`, n, concurrency)
}

// TestHTTPLimitRetriesStopMultiplying: against a server that always fails,
// call() retries times HTTP retries multiply the requests of an unlimited
// host ninefold; a limited host gets at most (1 + 20%) x calls.
func TestHTTPLimitRetriesStopMultiplying(t *testing.T) {
	emb := startEmbedded(t)
	gn := startGuardedNode(t, emb, "n1", nil, downstream.Hooks{})
	fs, srv := newFailingServer(t)
	// The breaker is out of the way: this is the retry budget alone.
	gn.apply(t, map[string]string{"limited.star": fanOutCalls(`http_limit("127.0.0.1", failures = 1000)`, 30, 5)})
	gn.apply(t, map[string]string{"unlimited.star": fanOutCalls("", 30, 5)})
	gn.waitGuard(t, "127.0.0.1")
	u, _ := url.Parse(srv.URL)

	end, _ := gn.run(t, "unlimited", "http://localhost:"+u.Port()) // the same server, a host without a limit
	if end.Status != sbruntime.StatusFailed {
		t.Fatalf("unlimited: status %s", end.Status)
	}
	if got := fs.requests.Swap(0); got != 30*9 {
		t.Errorf("unlimited host: %d requests for 30 calls, want 270 (retries multiply)", got)
	}

	end, _ = gn.run(t, "limited", srv.URL)
	if end.Status != sbruntime.StatusFailed || !strings.Contains(end.Error, "503 Service Unavailable") {
		t.Fatalf("limited: status %s, error %q; want failed with the last 503", end.Status, end.Error)
	}
	if got := fs.requests.Load(); got < 30 || got > 36 {
		t.Errorf("limited host: %d requests for 30 calls, want 30 to 36 (retries within 20%%)", got)
	}
}

// TestHTTPLimitBreakerOpens: after N consecutive failures the circuit opens
// and later calls fail fast, not sent at all; the metrics count both.
func TestHTTPLimitBreakerOpens(t *testing.T) {
	emb := startEmbedded(t)
	metrics := observe.NewMetrics()
	clock := &settableClock{now: time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)}
	gn := startGuardedNode(t, emb, "n1", clock, metrics.DownstreamHooks())
	fs, srv := newFailingServer(t)
	gn.apply(t, map[string]string{"rb.star": fanOutCalls(`http_limit("127.0.0.1", failures = 5, cooldown = "30s")`, 40, 1)})
	gn.waitGuard(t, "127.0.0.1")

	end, history := gn.run(t, "rb", srv.URL)
	if end.Status != sbruntime.StatusFailed {
		t.Fatalf("status %s", end.Status)
	}
	sent := fs.requests.Load()
	if sent < 5 || sent > 6 { // 5 first requests, and 20% of them retried
		t.Errorf("%d requests reached the server, want 5 or 6: the breaker opens after 5 failures", sent)
	}
	open := 0
	for _, ev := range history {
		if strings.Contains(ev.Error, "circuit open for 127.0.0.1 until 2026-12-02T12:00:30Z") {
			open++
		}
	}
	if open < 30 {
		t.Errorf("%d calls failed fast with the circuit open, want at least 30 of 40", open)
	}
	if got := counter(t, metrics, "starbook_http_requests_total", "127.0.0.1", "503"); got != float64(sent) {
		t.Errorf("starbook_http_requests_total{host=127.0.0.1,code=503} = %g, want %d", got, sent)
	}
	if got := counter(t, metrics, "starbook_circuit_state", "127.0.0.1", ""); got != 2 {
		t.Errorf("starbook_circuit_state = %g, want 2 (open)", got)
	}
}

// counter reads the series of name with host (and code, when not "").
func counter(t *testing.T, m *observe.Metrics, name, host, code string) float64 {
	t.Helper()
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, s := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range s.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["host"] != host || (code != "" && labels["code"] != code) {
				continue
			}
			if s.GetCounter() != nil {
				return s.GetCounter().GetValue()
			}
			return s.GetGauge().GetValue()
		}
	}
	return 0
}

// TestHTTPLimitCircuitSharedAcrossNodes: a circuit opened on one node makes
// the other fail fast without sending; once the cooldown is over, one probe
// goes, and its success closes the circuit on both.
func TestHTTPLimitCircuitSharedAcrossNodes(t *testing.T) {
	emb := startEmbedded(t)
	clock := &settableClock{now: time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)}
	n1 := startGuardedNode(t, emb, "n1", clock, downstream.Hooks{})
	n2 := startGuardedNode(t, emb, "n2", clock, downstream.Hooks{})
	fs, srv := newFailingServer(t)
	n1.apply(t, map[string]string{"one.star": `
http_limit("127.0.0.1", failures = 3, cooldown = "30s")

def main(event):
    return call(http.get, event.url, retries = 0)
`})
	waitFor(t, func() bool { return n1.guards.Host("127.0.0.1") != nil && n2.guards.Host("127.0.0.1") != nil })

	for range 3 {
		if end, _ := n1.run(t, "one", srv.URL); end.Status != sbruntime.StatusFailed {
			t.Fatalf("status %s, want failed", end.Status)
		}
	}
	if got := n1.guards.Host("127.0.0.1").State(); got != downstream.Open {
		t.Fatalf("n1: circuit %s after 3 failures", got)
	}
	waitFor(t, func() bool { return n2.guards.Host("127.0.0.1").State() == downstream.Open })

	end, _ := n2.run(t, "one", srv.URL)
	if !strings.Contains(end.Error, "circuit open for 127.0.0.1 until 2026-12-02T12:00:30Z") {
		t.Errorf("n2: error %q, want the circuit n1 opened", end.Error)
	}
	if got := fs.requests.Load(); got != 3 {
		t.Errorf("%d requests, want 3: n2 failed fast", got)
	}

	fs.failing.Store(false)
	clock.Add(30 * time.Second)
	end, _ = n2.run(t, "one", srv.URL) // the probe
	if end.Status != sbruntime.StatusCompleted {
		t.Fatalf("probe: status %s, error %q", end.Status, end.Error)
	}
	waitFor(t, func() bool {
		return n1.guards.Host("127.0.0.1").State() == downstream.Closed && n2.guards.Host("127.0.0.1").State() == downstream.Closed
	})
	if end, _ := n1.run(t, "one", srv.URL); end.Status != sbruntime.StatusCompleted {
		t.Errorf("n1 after the probe: status %s, error %q", end.Status, end.Error)
	}
	if got := fs.requests.Load(); got != 5 {
		t.Errorf("%d requests, want 5", got)
	}
}

// TestHTTPLimitSharesFollowMembership: each node takes rate / nodes and
// concurrency / nodes; a second node registering halves the first's share,
// and its leaving restores it. A bad declaration changes nothing.
func TestHTTPLimitSharesFollowMembership(t *testing.T) {
	emb := startEmbedded(t)
	n1 := startGuardedNode(t, emb, "n1", nil, downstream.Hooks{})
	n1.apply(t, map[string]string{"rb.star": `
http_limit("api.example.com", rate = "10/s", concurrency = 4)

def main(event):
    return None
`})
	share := func(gn *guardedNode) string {
		h := gn.guards.Host("api.example.com")
		if h == nil {
			return "none"
		}
		rate, conc := h.Share()
		return fmt.Sprintf("%g/s %d", rate, conc)
	}
	waitFor(t, func() bool { return share(n1) == "10/s 4" })

	n2 := startGuardedNode(t, emb, "n2", nil, downstream.Hooks{})
	if got := share(n2); got != "5/s 2" {
		t.Errorf("n2 share %s at start, want 5/s 2", got)
	}
	waitFor(t, func() bool { return share(n1) == "5/s 2" })

	_, err := n1.svc.Apply(context.Background(), map[string]string{"rb.star": `
http_limit("api.example.com", rate = "10/h")

def main(event):
    return None
`})
	if err == nil || !strings.Contains(err.Error(), `rb.star:2:11: http_limit: rate "10/h": the period must be s or m`) {
		t.Fatalf("apply of a bad http_limit: %v", err)
	}
	n2.stop()
	waitFor(t, func() bool { return share(n1) == "10/s 4" })
	if l := n1.guards.Host("api.example.com").Limit(); l.Rate != "10/s" {
		t.Errorf("limit %+v after a refused apply", l)
	}
}

// TestHTTPLimitConcurrency: a blocking server sees at most the declared
// number of requests in flight.
func TestHTTPLimitConcurrency(t *testing.T) {
	emb := startEmbedded(t)
	gn := startGuardedNode(t, emb, "n1", nil, downstream.Hooks{})
	var mu sync.Mutex
	inFlight, most := 0, 0
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		inFlight++
		most = max(most, inFlight)
		mu.Unlock()
		<-release
		mu.Lock()
		inFlight--
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // before srv.Close, which waits for the handlers
	gn.apply(t, map[string]string{"rb.star": `
http_limit("127.0.0.1", concurrency = 2)

def main(event):
    return fan_out(lambda i: call(http.get, event.url), list(range(6)), max_concurrency = 6)
`})
	gn.waitGuard(t, "127.0.0.1")
	input, _ := json.Marshal(map[string]string{"url": srv.URL})
	e, err := gn.svc.Start(context.Background(), "rb", input, sbruntime.Trigger{Type: "manual"})
	if err != nil {
		t.Fatal(err)
	}
	for left := 6; left > 0; left-- {
		waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return inFlight == min(2, left) })
		release <- struct{}{}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	end, err := gn.svc.AwaitEnd(ctx, e.ID)
	if err != nil || end.Status != sbruntime.StatusCompleted {
		t.Fatalf("end %+v, %v", end, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if most != 2 {
		t.Errorf("%d requests in flight at most, want 2", most)
	}
}

// TestHTTPLimitStaleCircuitReaped: the leader's circuit reaping keeps a
// circuit record while its Until is recent, however many passes go by, and
// deletes it once Until is more than the grace past; the delete reaches
// every node through its watch of circuits/ and closes the host's circuit
// there (starbook_circuit_state reads 0, closed), and every node sends the
// host's requests again.
func TestHTTPLimitStaleCircuitReaped(t *testing.T) {
	emb := startEmbedded(t)
	clock := &settableClock{now: time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)}
	var passes atomic.Int64
	reap := func(s *cluster.Store) func(context.Context) {
		return s.CircuitReapTask(cluster.CircuitReaping{Interval: 20 * time.Millisecond, Now: clock.Now,
			OnPass: func(_ []cluster.ReapedCircuit, err error) {
				if err != nil {
					t.Errorf("reap pass: %v", err)
				}
				passes.Add(1)
			}})
	}
	metrics := observe.NewMetrics()
	n1 := startGuardedNode(t, emb, "n1", clock, metrics.DownstreamHooks(), reap)
	n2 := startGuardedNode(t, emb, "n2", clock, downstream.Hooks{}, reap) // whichever leads reaps
	reader := cluster.NewStore(emb.Client, "/dg/")
	defer reader.Close()
	records := func() int {
		cs, _, err := reader.Circuits(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return len(cs)
	}
	fs, srv := newFailingServer(t)
	n1.apply(t, map[string]string{"one.star": `
http_limit("127.0.0.1", failures = 1, cooldown = "30s")

def main(event):
    return call(http.get, event.url, retries = 0)
`})
	waitFor(t, func() bool { return n1.guards.Host("127.0.0.1") != nil && n2.guards.Host("127.0.0.1") != nil })
	if end, _ := n1.run(t, "one", srv.URL); end.Status != sbruntime.StatusFailed {
		t.Fatalf("status %s, want failed", end.Status)
	}
	waitFor(t, func() bool {
		return n1.guards.Host("127.0.0.1").State() == downstream.Open && n2.guards.Host("127.0.0.1").State() == downstream.Open
	})

	// Until (12:00:30) is within the grace: passes go by, the circuit stays.
	seen := passes.Load()
	waitFor(t, func() bool { return passes.Load() >= seen+2 })
	if records() != 1 || n1.guards.Host("127.0.0.1").State() != downstream.Open || n2.guards.Host("127.0.0.1").State() != downstream.Open {
		t.Fatalf("a recent circuit was reaped: %d records, n1 %s, n2 %s", records(),
			n1.guards.Host("127.0.0.1").State(), n2.guards.Host("127.0.0.1").State())
	}
	if got := counter(t, metrics, "starbook_circuit_state", "127.0.0.1", ""); got != 2 {
		t.Fatalf("starbook_circuit_state = %g before the reap, want 2 (open)", got)
	}

	// Nobody called the host since: an hour past Until, the leader reaps it.
	clock.Add(cluster.DefaultCircuitGrace + 31*time.Second)
	waitFor(t, func() bool {
		return n1.guards.Host("127.0.0.1").State() == downstream.Closed && n2.guards.Host("127.0.0.1").State() == downstream.Closed
	})
	if n := records(); n != 0 {
		t.Errorf("%d circuit records left after the reap", n)
	}
	if got := counter(t, metrics, "starbook_circuit_state", "127.0.0.1", ""); got != 0 {
		t.Errorf("starbook_circuit_state = %g after the reap, want 0 (closed)", got)
	}

	fs.failing.Store(false)
	for _, gn := range []*guardedNode{n1, n2} {
		if end, _ := gn.run(t, "one", srv.URL); end.Status != sbruntime.StatusCompleted {
			t.Errorf("after the reap: status %s, error %q", end.Status, end.Error)
		}
	}
	if got := fs.requests.Load(); got != 3 {
		t.Errorf("%d requests, want 3: the failure, then one per node", got)
	}
	if n := records(); n != 0 {
		t.Errorf("%d circuit records after successful calls to a closed circuit, want 0", n)
	}
}
