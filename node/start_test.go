package node_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/starbook/starbook/builtins"
	"github.com/starbook/starbook/cluster"
	"github.com/starbook/starbook/node"
	sbruntime "github.com/starbook/starbook/runtime"
	"github.com/starbook/starbook/service"
	"github.com/starbook/starbook/triggers"
)

// gate is an HTTP server whose requests block until it is opened.
type gate struct {
	open    chan struct{}
	arrived chan struct{}
}

func newGate(t *testing.T) (*gate, string) {
	g := &gate{open: make(chan struct{}), arrived: make(chan struct{}, 100)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.arrived <- struct{}{}
		select {
		case <-g.open:
		case <-r.Context().Done():
		}
		fmt.Fprint(w, `{}`)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(g.release)
	return g, srv.URL
}

func (g *gate) release() {
	select {
	case <-g.open:
	default:
		close(g.open)
	}
}

func (g *gate) waitArrival(t *testing.T) {
	t.Helper()
	select {
	case <-g.arrived:
	case <-time.After(20 * time.Second):
		t.Fatal("no request reached the gate within 20s")
	}
}

const gatedRunbook = `
def main(event):
    call(http.get, event.url, retry = 1)
    return "done"
`

// createRevisions returns the create revisions of an execution's record and
// of its owner key (0 when unowned).
func createRevisions(t *testing.T, s *cluster.Store, id string) (record, owner int64) {
	t.Helper()
	resp, err := s.Client().Txn(context.Background()).Then(clientv3.OpGet(key(s, "executions", id)), clientv3.OpGet(key(s, "owners", id))).Commit()
	if err != nil {
		t.Fatal(err)
	}
	if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
		record = kvs[0].CreateRevision
	}
	if kvs := resp.Responses[1].GetResponseRange().Kvs; len(kvs) > 0 {
		owner = kvs[0].CreateRevision
	}
	return record, owner
}

func TestStartClaimsTheExecutionInItsCreateTxn(t *testing.T) {
	tn := startTestNode(t, t.TempDir())
	tn.apply(t, map[string]string{"gated.star": gatedRunbook, "warm.star": "def main(event):\n    return 1\n"})
	// A run that ended shows the node claims: a start before its session
	// is up (a loaded machine) is claimed later, through the watch.
	tn.runToEnd(t, "warm", "")
	g, url := newGate(t)
	ctx := context.Background()
	e := startGated(t, tn, url)
	g.waitArrival(t)
	if record, owner := createRevisions(t, tn.svc.Store, e.ID); record == 0 || owner != record {
		t.Errorf("record created at revision %d, owner key at %d: want one txn", record, owner)
	}
	g.release()
	end, err := tn.svc.AwaitEnd(ctx, e.ID)
	if err != nil || end.Status != sbruntime.StatusCompleted || string(end.Result) != `"done"` {
		t.Fatalf("got %+v, %v", end, err)
	}
}

func TestStartRightAfterApplyElsewhereUsesTheNewVersion(t *testing.T) {
	tn := startTestNode(t, t.TempDir())
	tn.apply(t, map[string]string{"ver.star": "def main(event):\n    return \"v1\"\n"})
	first, _ := tn.runToEnd(t, "ver", "")
	// Another node applies v2 through its own store: this node's cached
	// version is stale, and its next start must notice.
	other := service.New(cluster.NewStore(tn.svc.Store.Client(), tn.svc.Store.Keys().Prefix()), builtins.New(builtins.Options{}))
	defer other.Store.Close()
	if _, err := other.Apply(context.Background(), map[string]string{"ver.star": "def main(event):\n    return \"v2\"\n"}); err != nil {
		t.Fatal(err)
	}
	e, _ := tn.runToEnd(t, "ver", "")
	if e.Version == first.Version || string(e.Result) != `"v2"` {
		t.Fatalf("started on %s with result %s after v2 was applied (v1 is %s)", e.Version, e.Result, first.Version)
	}
}

func TestCancelRightAfterStartStopsTheRun(t *testing.T) {
	tn := startTestNode(t, t.TempDir())
	tn.apply(t, map[string]string{"gated.star": gatedRunbook})
	_, url := newGate(t)
	ctx := context.Background()
	e := startGated(t, tn, url)
	if _, err := tn.svc.Cancel(ctx, e.ID); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	end, err := tn.svc.AwaitEnd(ctx, e.ID)
	if err != nil || end.Status != sbruntime.StatusCancelled {
		t.Fatalf("got %+v, %v; want cancelled while its call is blocked", end, err)
	}
}

func TestStartWithEveryWorkerBusyLeavesTheExecutionForTheWatch(t *testing.T) {
	tn := startNodeWith(t, t.TempDir(), "/t/", nil, func(_ *cluster.Store, cfg *node.Config) { cfg.Workers = 1 })
	svc, store, ctx := tn.svc, tn.svc.Store, context.Background()
	if _, err := svc.Apply(ctx, map[string]string{"gated.star": gatedRunbook}); err != nil {
		t.Fatal(err)
	}
	g, url := newGate(t)
	input := json.RawMessage(fmt.Sprintf(`{"url": %q}`, url))
	busy, err := svc.Start(ctx, "gated", input, sbruntime.Trigger{Type: "manual"})
	if err != nil {
		t.Fatal(err)
	}
	g.waitArrival(t)
	next, err := svc.Start(ctx, "gated", input, sbruntime.Trigger{Type: "manual"})
	if err != nil {
		t.Fatal(err)
	}
	if _, owner := createRevisions(t, store, next.ID); owner != 0 {
		t.Errorf("second execution owned (revision %d) while the only worker is busy", owner)
	}
	g.release()
	for _, id := range []string{busy.ID, next.ID} {
		wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
		end, err := svc.AwaitEnd(wctx, id)
		wcancel()
		if err != nil || end.Status != sbruntime.StatusCompleted {
			t.Fatalf("%s: got %+v, %v", id, end, err)
		}
	}
}

func TestTriggeredStartsAreClaimedInTheirCreateTxnAndDuplicatesFreeTheirSlot(t *testing.T) {
	tn := startTestNode(t, t.TempDir())
	tn.apply(t, map[string]string{"gated.star": gatedRunbook})
	g, url := newGate(t)
	ctx := context.Background()
	version, err := tn.svc.Store.CurrentVersion(ctx, "gated")
	if err != nil {
		t.Fatal(err)
	}
	tr := cluster.NewTriggers(tn.svc.Store, nil, nil)
	tr.RunOn(tn.node)
	start := func(key string) triggers.Started {
		t.Helper()
		out, err := tr.Start(ctx, []triggers.Start{{Runbook: "gated", Version: version,
			Input:   json.RawMessage(fmt.Sprintf(`{"url": %q}`, url)),
			Trigger: sbruntime.Trigger{Type: "webhook", Source: "test"},
			Dedup:   &triggers.Dedup{Scope: "webhook", Key: key, TTL: time.Minute}}})
		if err != nil || len(out) != 1 {
			t.Fatalf("start: %v, %v", out, err)
		}
		return out[0]
	}
	first := start("k1")
	if first.Status != triggers.StatusStarted {
		t.Fatalf("first start: %+v", first)
	}
	g.waitArrival(t)
	if record, owner := createRevisions(t, tn.svc.Store, first.ID); record == 0 || owner != record {
		t.Errorf("record created at revision %d, owner key at %d: want one txn", record, owner)
	}
	if dup := start("k1"); dup.Status != triggers.StatusDuplicate || dup.ID != first.ID {
		t.Errorf("second start with the same key: %+v, want a duplicate of %s", dup, first.ID)
	}
	running := tn.node.Running()
	if running != 1 {
		t.Errorf("%d runs tracked after a duplicate start, want 1 (its reserved slot given back)", running)
	}
	g.release()
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if end, err := tn.svc.AwaitEnd(wctx, first.ID); err != nil || end.Status != sbruntime.StatusCompleted {
		t.Fatalf("got %+v, %v", end, err)
	}
}

// startGated starts the gated runbook, calling url, on tn.
func startGated(t *testing.T, tn *testNode, url string) *sbruntime.Execution {
	t.Helper()
	e, err := tn.svc.Start(context.Background(), "gated", json.RawMessage(fmt.Sprintf(`{"url": %q}`, url)), sbruntime.Trigger{Type: "manual"})
	if err != nil {
		t.Fatal(err)
	}
	return e
}
