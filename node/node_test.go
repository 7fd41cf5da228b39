package node_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/starbook/starbook/builtins"
	"github.com/starbook/starbook/cluster"
	"github.com/starbook/starbook/node"
	sbruntime "github.com/starbook/starbook/runtime"
	"github.com/starbook/starbook/service"
)

// testNode is a node, its service and its embedded etcd, stopped at cleanup.
type testNode struct {
	svc  *service.Service
	node *node.Node
}

func startTestNode(t *testing.T, dir string) *testNode {
	t.Helper()
	return startNodeAt(t, dir, nil)
}

// startNodeAt starts a node on an embedded etcd in dir, stopped at cleanup.
// A non-nil now is the clock of its store, service and engine; tasks build
// leader tasks on the store.
func startNodeAt(t *testing.T, dir string, now func() time.Time, tasks ...func(*cluster.Store) func(context.Context)) *testNode {
	t.Helper()
	return startNodeWith(t, dir, "/t/", now, func(s *cluster.Store, cfg *node.Config) {
		for _, task := range tasks {
			cfg.LeaderTasks = append(cfg.LeaderTasks, task(s))
		}
	})
}

// startNodeWith is startNodeAt with the store under prefix and the node's
// configuration changed by configure (nil for none).
func startNodeWith(t *testing.T, dir, prefix string, now func() time.Time, configure func(*cluster.Store, *node.Config)) *testNode {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	emb, err := cluster.StartEmbedded(ctx, cluster.EmbeddedConfig{Dir: dir, Fast: true, NoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	var starter atomic.Pointer[service.Service]
	bi := builtins.New(builtins.Options{Runbooks: builtins.RunbookStarterFunc(func(ctx context.Context, c builtins.ChildRequest) (string, error) {
		return starter.Load().StartChild(ctx, c)
	})})
	store := cluster.NewStore(emb.Client, prefix)
	if now != nil {
		store.SetClock(now)
	}
	cfg := node.Config{ID: "n1", Builtins: bi, SessionTTL: 2 * time.Second, StopGrace: time.Second, Now: now,
		LeaderTasks: []func(context.Context){store.ChildEndsTask(20*time.Millisecond, nil)}}
	if configure != nil {
		configure(store, &cfg)
	}
	node, err := node.New(ctx, store, cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- node.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("node run: %v", err)
		}
		store.Close()
		emb.Close()
	})
	svc := service.New(store, bi)
	svc.Node = node // starts are claimed in their create txn, as in serve
	starter.Store(svc)
	if now != nil {
		svc.Now = now
	}
	return &testNode{svc: svc, node: node}
}

func (tn *testNode) apply(t *testing.T, files map[string]string) {
	t.Helper()
	if _, err := tn.svc.Apply(context.Background(), files); err != nil {
		t.Fatal(err)
	}
}

func (tn *testNode) runToEnd(t *testing.T, runbook, input string) (*sbruntime.Execution, []*sbruntime.Event) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var raw json.RawMessage
	if input != "" {
		raw = json.RawMessage(input)
	}
	e, err := tn.svc.Start(ctx, runbook, raw, sbruntime.Trigger{Type: "manual"})
	if err != nil {
		t.Fatal(err)
	}
	end, err := tn.svc.AwaitEnd(ctx, e.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !end.Status.Terminal() {
		t.Fatalf("execution %s still %s after 30s", e.ID, end.Status)
	}
	end, history, err := tn.svc.Execution(ctx, e.ID)
	if err != nil {
		t.Fatal(err)
	}
	return end, history
}

// keyCounter is an HTTP server counting requests per Idempotency-Key.
type keyCounter struct {
	mu   sync.Mutex
	seen map[string]int
}

func (kc *keyCounter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	kc.mu.Lock()
	kc.seen[r.Header.Get("Idempotency-Key")]++
	kc.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"path": %q}`, r.URL.Path)
}

func TestNodeRunsRunbookToCompletion(t *testing.T) {
	tn := startTestNode(t, t.TempDir())
	kc := &keyCounter{seen: map[string]int{}}
	srv := httptest.NewServer(kc)
	defer srv.Close()
	tn.apply(t, map[string]string{
		"steps.star": `
load("lib.star", "greet")

def main(event):
    out = []
    for i in range(3):
        r = call(http.get, event.url + "/step/" + str(i))
        out.append(r["json"]["path"])
    hosts = fan_out(lambda h: call(http.get, event.url + "/host/" + h).json.path, ["a", "b", "c"], max_concurrency = 2)
    sleep("50ms")
    return {"steps": out, "hosts": hosts, "greeting": greet(event.who)}
`,
		"lib.star": `
def greet(who):
    return "hello " + who
`,
	})
	e, history := tn.runToEnd(t, "steps", fmt.Sprintf(`{"url": %q, "who": "sre"}`, srv.URL))
	if e.Status != sbruntime.StatusCompleted {
		t.Fatalf("status %s, error %s", e.Status, e.Error)
	}
	want := `{"greeting":"hello sre","hosts":["/host/a","/host/b","/host/c"],"steps":["/step/0","/step/1","/step/2"]}`
	if string(e.Result) != want {
		t.Errorf("result %s\nwant   %s", e.Result, want)
	}
	// 3 calls, the fan_out with 3 children, and the sleep.
	if len(history) != 8 {
		t.Errorf("history has %d events, want 8: %v", len(history), positions(history))
	}
	for key, n := range kc.seen {
		if n != 1 {
			t.Errorf("idempotency key %s seen %d times", key, n)
		}
	}
	if len(kc.seen) != 6 {
		t.Errorf("%d distinct keys, want 6", len(kc.seen))
	}
}

func positions(history []*sbruntime.Event) []string {
	var ps []string
	for _, ev := range history {
		ps = append(ps, ev.Position)
	}
	return ps
}

func TestNodeResumesSleepingExecutionAfterRestart(t *testing.T) {
	dir := t.TempDir()
	tn := startTestNode(t, dir)
	tn.apply(t, map[string]string{"nap.star": `
def main(event):
    a = now()
    sleep("1s")
    return "woke"
`})
	ctx := context.Background()
	e, err := tn.svc.Start(ctx, "nap", nil, sbruntime.Trigger{Type: "manual"})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		x, _, err := tn.svc.Execution(ctx, e.ID)
		return err == nil && x.Status == sbruntime.StatusWaiting
	})
	end, err := tn.svc.AwaitEnd(ctx, e.ID)
	if err != nil || end.Status != sbruntime.StatusCompleted || string(end.Result) != `"woke"` {
		t.Fatalf("got %+v, %v", end, err)
	}
}

func TestCancelWaitingExecution(t *testing.T) {
	tn := startTestNode(t, t.TempDir())
	tn.apply(t, map[string]string{"long.star": `
def main(event):
    sleep("1h")
`})
	ctx := context.Background()
	e, err := tn.svc.Start(ctx, "long", nil, sbruntime.Trigger{Type: "manual"})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		x, _, err := tn.svc.Execution(ctx, e.ID)
		return err == nil && x.Status == sbruntime.StatusWaiting
	})
	if _, err := tn.svc.Cancel(ctx, e.ID); err != nil {
		t.Fatal(err)
	}
	end, err := tn.svc.AwaitEnd(ctx, e.ID)
	if err != nil || end.Status != sbruntime.StatusCancelled {
		t.Fatalf("got %+v, %v", end, err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 20s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestExecutionKeepsItsVersionAfterNewApply(t *testing.T) {
	tn := startTestNode(t, t.TempDir())
	tn.apply(t, map[string]string{"ver.star": `
def main(event):
    sleep("300ms")
    return "v1"
`})
	ctx := context.Background()
	old, err := tn.svc.Start(ctx, "ver", nil, sbruntime.Trigger{Type: "manual"})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		x, _, err := tn.svc.Execution(ctx, old.ID)
		return err == nil && x.Status == sbruntime.StatusWaiting
	})
	tn.apply(t, map[string]string{"ver.star": `
def main(event):
    return "v2"
`})
	end, err := tn.svc.AwaitEnd(ctx, old.ID)
	if err != nil || string(end.Result) != `"v1"` || end.Version != old.Version {
		t.Fatalf("old execution got %+v, %v; want result v1 on version %s", end, err, old.Version)
	}
	e, _ := tn.runToEnd(t, "ver", "")
	if string(e.Result) != `"v2"` || e.Version == old.Version {
		t.Fatalf("new execution got %s on %s, want v2 on a new version", e.Result, e.Version)
	}
}

func TestApplyRefusesBadRunbooksAndStoresNothing(t *testing.T) {
	tn := startTestNode(t, t.TempDir())
	ctx := context.Background()
	for name, files := range map[string]map[string]string{
		"syntax":     {"bad.star": "def main(event):\n    return (\n"},
		"undefined":  {"bad.star": "def main(event):\n    return nope()\n"},
		"no main":    {"bad.star": "x = 1\n"},
		"bad load":   {"bad.star": "load(\"missing.star\", \"x\")\ndef main(event):\n    return x\n"},
		"main arity": {"bad.star": "def main(a, b):\n    return 1\n"},
	} {
		_, err := tn.svc.Apply(ctx, files)
		var ie *sbruntime.InputError
		if !errors.As(err, &ie) || !strings.Contains(err.Error(), "bad.star:") && name != "no main" {
			t.Errorf("%s: got %v, want an input error naming bad.star:line", name, err)
		}
	}
	rbs, err := tn.svc.Runbooks(ctx)
	if err != nil || len(rbs) != 0 {
		t.Fatalf("runbooks after refused applies: %v, %v", rbs, err)
	}
}

func TestClusterStatusShowsNodeLeaderAndClaims(t *testing.T) {
	tn := startTestNode(t, t.TempDir())
	tn.svc.Node = tn.node
	ctx := context.Background()
	waitFor(t, func() bool { return tn.node.IsLeader(ctx) })
	st, err := tn.svc.Cluster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Leader != "n1" || len(st.Nodes) != 1 || st.Nodes[0].ID != "n1" || !st.Nodes[0].Leader || st.Nodes[0].LeaseRemaining <= 0 {
		t.Fatalf("cluster status %+v, want n1 registered, leading, with a live lease", st)
	}
	if st.Format != cluster.CurrentFormat || !strings.HasPrefix(st.FormatWrittenBy, "starbook ") {
		t.Fatalf("cluster status %+v, want the store's format %d and the build that wrote it", st, cluster.CurrentFormat)
	}
	if err := tn.svc.Ready(ctx); err != nil {
		t.Fatalf("ready: %v", err)
	}
}

// key spells a key of the layout (cluster/keys.go) under s's prefix, for
// tests that look at etcd directly.
func key(s *cluster.Store, parts ...string) string {
	return s.Keys().Prefix() + strings.Join(parts, "/")
}

// timerKey spells the key of a durable timer (timers/<unix-ms>/<id>/<pos>).
func timerKey(s *cluster.Store, due time.Time, id, pos string) string {
	return fmt.Sprintf("%stimers/%013d/%s/%s", s.Keys().Prefix(), due.UnixMilli(), id, pos)
}

// startEtcd starts an embedded etcd in a temporary directory, stopped at
// cleanup.
func startEtcd(t *testing.T) *cluster.Embedded {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	emb, err := cluster.StartEmbedded(ctx, cluster.EmbeddedConfig{Dir: t.TempDir(), Fast: true, NoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emb.Close)
	return emb
}
