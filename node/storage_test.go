package node_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/starbook/starbook"
	"github.com/starbook/starbook/api"
	"github.com/starbook/starbook/builtins"
	"github.com/starbook/starbook/cluster"
	"github.com/starbook/starbook/node"
	"github.com/starbook/starbook/quota"
	sbruntime "github.com/starbook/starbook/runtime"
	"github.com/starbook/starbook/service"
	"github.com/starbook/starbook/triggers"
)

// syncBuffer is a log sink the node writes from many goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// holdServer answers /hold once the test lets it, and /after at once.
type holdServer struct {
	held    chan struct{} // a /hold request arrived
	release chan struct{} // closed: /hold answers
	mu      sync.Mutex
	calls   map[string]int
}

func (h *holdServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	h.calls[r.URL.Path]++
	h.mu.Unlock()
	if r.URL.Path == "/hold" {
		select {
		case h.held <- struct{}{}:
		default:
		}
		<-h.release
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"path": %q}`, r.URL.Path)
}

func (h *holdServer) count(path string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.calls[path]
}

const storageRunbooks = `
def main(event):
    call(http.get, event["url"] + "/hold")
    call(http.get, event["url"] + "/after")
    return "done"
`

const storageWaiter = `
def main(event):
    wait_for_signal("go")
    call(http.get, event["url"] + "/after")
    return "done"
`

const storageAlert = `
trigger.alert(alertname = "KubePodCrashLooping")

def main(event):
    return "ok"
`

// TestStoreFullRefusesStartsAndLosesNoRun fills an embedded etcd with an
// 8 MiB quota. At 90% the guard refuses new starts, each named: the
// service's and the API's (507, the message says what to do), and the
// alerts' (507, a dead letter with reason storage per alert); a parked run
// still resumes, steps and ends. Past the quota etcd itself refuses every
// write (NOSPACE): a run whose step ends then waits, keeping its claim, and
// the node says what to do. Once the filler is deleted and the store freed
// (compact, defrag, disarm), every started run ends completed and new runs
// start again.
func TestStoreFullRefusesStartsAndLosesNoRun(t *testing.T) {
	const quotaBytes = 8 << 20
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	emb, err := cluster.StartEmbedded(ctx, cluster.EmbeddedConfig{Dir: t.TempDir(), Fast: true, NoFsync: true,
		Quota: quotaBytes, CommitEachWrite: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emb.Close)
	guard := quota.New(quota.Config{Client: emb.Client, Disarm: true})
	logs := &syncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, nil))
	bi := builtins.New(builtins.Options{})
	store := cluster.NewStore(emb.Client, "/t/")
	t.Cleanup(store.Close)
	nodeCtx, stopNode := context.WithCancel(context.Background())
	n, err := node.New(nodeCtx, store, node.Config{ID: "n1", Builtins: bi, SessionTTL: 2 * time.Second,
		StopGrace: time.Second, Logger: logger, Storage: guard})
	if err != nil {
		t.Fatal(err)
	}
	nodeDone := make(chan error, 1)
	go func() { nodeDone <- n.Run(nodeCtx) }()
	t.Cleanup(func() {
		stopNode()
		if err := <-nodeDone; err != nil {
			t.Errorf("node run: %v", err)
		}
	})
	svc := service.New(store, bi)
	svc.Node, svc.Storage = n, guard
	tr := cluster.NewTriggers(store, nil, logger)
	d := &triggers.Dispatcher{Index: tr.Index(), Resolver: tr, DeadLetters: tr,
		Starter: &quota.Starter{Starter: tr, Guard: guard, DeadLetters: tr}}
	srv := httptest.NewServer(api.NewHandler(svc, logger, api.WithHooks(d, api.AlertmanagerAuth{})))
	t.Cleanup(srv.Close)
	hs := &holdServer{held: make(chan struct{}, 1), release: make(chan struct{}), calls: map[string]int{}}
	effects := httptest.NewServer(hs)
	t.Cleanup(effects.Close)
	var releaseOnce sync.Once
	release := func() { releaseOnce.Do(func() { close(hs.release) }) }
	t.Cleanup(release)
	if _, err := svc.Apply(ctx, map[string]string{"hold.star": storageRunbooks, "wait.star": storageWaiter, "alert.star": storageAlert}); err != nil {
		t.Fatal(err)
	}
	input := json.RawMessage(fmt.Sprintf(`{"url": %q}`, effects.URL))
	start := func(runbook string) string {
		t.Helper()
		e, err := svc.Start(ctx, runbook, input, sbruntime.Trigger{Type: "manual"})
		if err != nil {
			t.Fatal(err)
		}
		return e.ID
	}
	status := func(id string) sbruntime.Status {
		e, _, err := svc.Execution(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return e.Status
	}
	awaitCompleted := func(id string) {
		t.Helper()
		actx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		e, err := svc.AwaitEnd(actx, id)
		if err != nil || e.Status != sbruntime.StatusCompleted {
			t.Fatalf("execution %s: %+v, %v; want completed", id, e, err)
		}
	}

	// Two runs parked on a signal, one inside a step.
	w1, w2 := start("wait"), start("wait")
	waitFor(t, func() bool { return status(w1) == sbruntime.StatusWaiting && status(w2) == sbruntime.StatusWaiting })
	h := start("hold")
	select {
	case <-hs.held:
	case <-ctx.Done():
		t.Fatal("the hold step never ran")
	}

	// Fill to 90%: new starts are refused, and say what to do. etcd's size
	// (what the quota is checked against, and Status reports) is refreshed
	// at each backend commit: the member commits each write here
	// (CommitEachWrite), else a burst of puts would overshoot the quota
	// before the guard reads 90%.
	filler := strings.Repeat("x", 64<<10)
	puts := 0
	put := func() error {
		_, err := emb.Client.Put(ctx, fmt.Sprintf("/filler/%06d", puts), filler)
		puts++
		return err
	}
	for guard.Admit() == nil {
		if err := put(); err != nil {
			t.Fatalf("filling to 90%% after %d puts: %v", puts, err)
		}
		if _, err := guard.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
	}
	r, _ := guard.Reading()
	t.Logf("refusing after %d puts of 64 KiB: db %d of %d bytes (%d in use)", puts, r.Size, r.Quota, r.InUse)
	if r.Quota != quotaBytes {
		t.Errorf("guard reads a quota of %d, want the member's %d", r.Quota, quotaBytes)
	}
	remedies := []string{"storage full", "new runs are refused from 90%", "serve --retention", "starbook store free", "serve --etcd-quota"}
	named := func(what, msg string) {
		t.Helper()
		for _, s := range remedies {
			if !strings.Contains(msg, s) {
				t.Errorf("%s: %q\ndoes not say %q", what, msg, s)
			}
		}
	}
	_, err = svc.Start(ctx, "wait", input, sbruntime.Trigger{Type: "manual"})
	if !errors.Is(err, sbruntime.ErrStorageFull) {
		t.Fatalf("service start at 90%%: %v, want ErrStorageFull", err)
	}
	named("service start", err.Error())
	var ae *api.Error
	if _, err := (&api.Client{BaseURL: srv.URL}).Start(ctx, "wait", input); !errors.As(err, &ae) || ae.Status != http.StatusInsufficientStorage {
		t.Fatalf("API start at 90%%: %v, want 507", err)
	}
	named("API start", ae.Message)
	payload, err := os.ReadFile(filepath.Join("..", "testdata", "alertmanager", "valid_firing.json"))
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // Alertmanager retries a 5xx: one dead letter per alert all the same
		resp, err := http.Post(srv.URL+"/hooks/alertmanager", "application/json", bytes.NewReader(payload))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusInsufficientStorage || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("alertmanager hook at 90%%: %d %s, want 507 with Retry-After", resp.StatusCode, body)
		}
		named("alertmanager hook", string(body))
	}
	dls, err := store.DeadLetters(ctx, starbook.DeadLetterFilter{Reason: starbook.ReasonStorage})
	if err != nil || len(dls) != 2 {
		t.Fatalf("storage dead letters %+v, %v: want one per alert", dls, err)
	}
	for _, dl := range dls {
		if dl.Kind != starbook.DeadEvent || dl.Runbook != "alert" || dl.Source != "alertmanager" || dl.Fingerprint == "" {
			t.Errorf("dead letter %+v", dl)
		}
		named("dead letter", dl.Detail)
	}
	// A run in flight still resumes, steps and ends.
	if err := svc.Signal(ctx, w1, "go", nil, "test"); err != nil {
		t.Fatal(err)
	}
	awaitCompleted(w1)

	// Past the quota etcd refuses every write: the held step's end waits.
	for err == nil {
		err = put()
	}
	if !quota.IsNoSpace(err) {
		t.Fatalf("filling past the quota: %v, want NOSPACE", err)
	}
	waitFor(t, func() bool {
		r, err := guard.Refresh(ctx)
		return err == nil && r.Alarm
	})
	release()
	waitFor(t, func() bool { return strings.Contains(logs.String(), "etcd is out of space (NOSPACE)") })
	if !strings.Contains(logs.String(), "starbook store free") {
		t.Errorf("the node's NOSPACE line does not say what to do:\n%s", logs)
	}
	if s := status(h); s.Terminal() {
		t.Fatalf("run %s ended %s while etcd refused writes", h, s)
	}

	// Free: delete the filler (a delete is no put: etcd takes it under the
	// alarm), compact, defragment, disarm.
	if _, err := emb.Client.Delete(ctx, "/filler/", clientv3.WithPrefix()); err != nil {
		t.Fatalf("delete under NOSPACE: %v", err)
	}
	sp, err := svc.FreeStore(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("freed: %+v %+v", sp, sp.Freed)
	if sp.Freed.Disarmed != 1 || sp.Refusal != "" || sp.Alarm || sp.DBBytes >= quotaBytes/2 {
		t.Fatalf("after freeing: %+v, freed %+v", sp, sp.Freed)
	}
	awaitCompleted(h)
	if err := svc.Signal(ctx, w2, "go", nil, "test"); err != nil {
		t.Fatal(err)
	}
	awaitCompleted(w2)
	awaitCompleted(start("hold"))

	// No run lost: every execution started completed.
	list, err := svc.Executions(ctx, starbook.Filter{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 4 {
		t.Errorf("%d executions, want the 4 started", len(list))
	}
	for _, e := range list {
		if e.Status != sbruntime.StatusCompleted {
			t.Errorf("execution %s (%s) is %s: %s", e.ID, e.Runbook, e.Status, e.Error)
		}
	}
	if hs.count("/hold") < 2 || hs.count("/after") < 4 {
		t.Errorf("effects %v: want /hold twice or more (at least once per run) and /after four times or more", hs.calls)
	}
}
