package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/starbook/starbook"
	"github.com/starbook/starbook/api"
	"github.com/starbook/starbook/builtins"
	"github.com/starbook/starbook/cluster"
	"github.com/starbook/starbook/node"
	sbruntime "github.com/starbook/starbook/runtime"
	"github.com/starbook/starbook/service"
	"github.com/starbook/starbook/triggers"
)

const dlPrefix = "/dl/"

// dlNode is a node with its service, hooks and API over embedded etcd.
type dlNode struct {
	cli   *api.Client
	svc   *service.Service
	store *cluster.Store
	etcd  *clientv3.Client
	url   string
}

func startDLNode(t *testing.T) *dlNode {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	emb, err := cluster.StartEmbedded(ctx, cluster.EmbeddedConfig{Dir: t.TempDir(), Fast: true, NoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	bi := builtins.New(builtins.Options{})
	store := cluster.NewStore(emb.Client, dlPrefix)
	n, err := node.New(ctx, store, node.Config{ID: "n1", Builtins: bi, SessionTTL: 2 * time.Second, StopGrace: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	svc := service.New(store, bi)
	svc.Node = n
	tr := cluster.NewTriggers(store, nil, nil)
	tr.RunOn(n)
	h := api.NewHandler(svc, nil, api.WithHooks(&triggers.Dispatcher{Index: tr.Index(), Starter: tr, Resolver: tr,
		DeadLetters: tr}, api.AlertmanagerAuth{}))
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		srv.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("node run: %v", err)
		}
		store.Close()
		emb.Close()
	})
	return &dlNode{cli: &api.Client{BaseURL: srv.URL, User: "alice"}, svc: svc, store: store, etcd: emb.Client, url: srv.URL}
}

func (d *dlNode) apply(t *testing.T, files map[string]string) {
	t.Helper()
	if _, err := d.cli.Apply(context.Background(), files); err != nil {
		t.Fatal(err)
	}
}

// run starts runbook with input and waits for its end.
func (d *dlNode) run(t *testing.T, runbook, input string) *sbruntime.Execution {
	t.Helper()
	e, err := d.cli.Start(context.Background(), runbook, json.RawMessage(input))
	if err != nil {
		t.Fatal(err)
	}
	return d.awaitEnd(t, e.ID)
}

func (d *dlNode) awaitEnd(t *testing.T, id string) *sbruntime.Execution {
	t.Helper()
	e, _, err := d.cli.Wait(context.Background(), id, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !e.Status.Terminal() {
		t.Fatalf("execution %s still %s after 30s", id, e.Status)
	}
	return e
}

// awaitStatus waits, on the execution's record watch, until id has status st.
func (d *dlNode) awaitStatus(t *testing.T, id string, st sbruntime.Status) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	wch := d.etcd.Watch(ctx, dlPrefix+"executions/"+id)
	for {
		e, _, err := d.svc.Execution(ctx, id)
		if err == nil && e.Status == st {
			return
		}
		select {
		case <-wch:
		case <-ctx.Done():
			t.Fatalf("execution %s never became %s (last %v, %v)", id, st, e, err)
		}
	}
}

// keysExceptAudit is every key under the prefix but the audit log's and
// the node's own, with its mod revision.
func (d *dlNode) keysExceptAudit(t *testing.T) map[string]int64 {
	t.Helper()
	resp, err := d.etcd.Get(context.Background(), dlPrefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, kv := range resp.Kvs {
		k := string(kv.Key)
		if !strings.HasPrefix(k, dlPrefix+"audit/") && !strings.HasPrefix(k, dlPrefix+"nodes/") && !strings.HasPrefix(k, dlPrefix+"election/") {
			out[k] = kv.ModRevision
		}
	}
	return out
}

func (d *dlNode) deadLetters(t *testing.T, f starbook.DeadLetterFilter) map[string]*starbook.DeadLetter {
	t.Helper()
	list, err := d.cli.DeadLetters(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*starbook.DeadLetter{}
	for _, dl := range list {
		out[dl.ID] = dl
	}
	return out
}

func (d *dlNode) alert(t *testing.T, alerts ...string) {
	t.Helper()
	body := `{"version": "4", "status": "firing", "receiver": "sb", "alerts": [` + strings.Join(alerts, ",") + `]}`
	resp, err := http.Post(d.url+"/hooks/alertmanager", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("alertmanager hook: %s %s", resp.Status, b)
	}
}

func firing(name, fp string) string {
	return fmt.Sprintf(`{"status": "firing", "labels": {"alertname": %q, "pod": "api-1"}, "annotations": {"summary": "s"},
		"startsAt": "2026-01-01T00:00:00Z", "endsAt": "0001-01-01T00:00:00Z", "fingerprint": %q}`, name, fp)
}

var dlRunbooks = map[string]string{
	"fails.star": `
def main(event):
    fail("boom")
`,
	"ok.star": `
def main(event):
    return "fine"
`,
	"undo_fails.star": `
def one():
    return 1

def bad_undo():
    fail("undo broke")

def main(event):
    call(one)
    compensate(bad_undo, retry = 1)
    fail("boom")
`,
	"diverges.star": `
def one():
    return 1

def main(event):
    wait_for_signal("go")
    call(one)
`,
	"waits.star": `
def main(event):
    return wait_for_signal("go")
`,
	"storm.star": `
trigger.alert(alertname = "Storm", max_concurrent = 1, on_excess = "drop")

def main(event):
    return wait_for_signal("go")
`,
}

// TestDeadLetterForEachReason: an execution that fails, gets stuck, fails
// its compensation or is dropped, and an alert no runbook matches, each
// become a dead letter with their reason (and the alert its payload); a
// completed run and a user's cancel do not.
func TestDeadLetterForEachReason(t *testing.T) {
	d := startDLNode(t)
	d.apply(t, dlRunbooks)
	ctx := context.Background()

	want := map[string]string{} // id -> reason
	want[d.run(t, "fails", `{}`).ID] = starbook.ReasonFailed
	want[d.run(t, "undo_fails", `{}`).ID] = starbook.ReasonCompensationFailed
	completed := d.run(t, "ok", `{}`)

	// Stuck: the history gets an event the script does not make, then the
	// signal makes it replay past it.
	st, err := d.cli.Start(ctx, "diverges", nil)
	if err != nil {
		t.Fatal(err)
	}
	d.awaitStatus(t, st.ID, sbruntime.StatusWaiting)
	if _, err := d.etcd.Put(ctx, dlPrefix+"history/"+st.ID+"/2", `{"position":"2","kind":"call","name":"other","started_at":"2026-01-01T00:00:00Z","ended_at":"2026-01-01T00:00:00Z"}`); err != nil {
		t.Fatal(err)
	}
	if err := d.svc.Signal(ctx, st.ID, "go", nil, "test"); err != nil {
		t.Fatal(err)
	}
	if e := d.awaitEnd(t, st.ID); e.Status != sbruntime.StatusStuck {
		t.Fatalf("diverging execution ended %s: %s", e.Status, e.Error)
	}
	want[st.ID] = starbook.ReasonStuck

	cancelled, err := d.cli.Start(ctx, "waits", nil)
	if err != nil {
		t.Fatal(err)
	}
	d.awaitStatus(t, cancelled.ID, sbruntime.StatusWaiting)
	if _, err := d.cli.Cancel(ctx, cancelled.ID); err != nil {
		t.Fatal(err)
	}
	d.awaitEnd(t, cancelled.ID)

	// Two alerts for a runbook that runs one at a time and drops the rest,
	// and one that matches nothing.
	d.alert(t, firing("Storm", "aa01"), firing("Storm", "aa02"), firing("Nobody", "bb01"))

	got := d.deadLetters(t, starbook.DeadLetterFilter{})
	for id, reason := range want {
		dl := got[id]
		if dl == nil || dl.Reason != reason || dl.Kind != starbook.DeadExecution {
			t.Errorf("execution %s: dead letter %+v, want reason %s", id, dl, reason)
		}
	}
	for _, id := range []string{completed.ID, cancelled.ID} {
		if dl := got[id]; dl != nil {
			t.Errorf("execution %s (completed or cancelled by a user) is a dead letter: %+v", id, dl)
		}
	}
	var dropped, unmatched []*starbook.DeadLetter
	for _, dl := range got {
		switch dl.Reason {
		case starbook.ReasonDropped:
			dropped = append(dropped, dl)
		case starbook.ReasonNoRunbook:
			unmatched = append(unmatched, dl)
		}
	}
	if len(dropped) != 1 || dropped[0].Runbook != "storm" || !strings.HasPrefix(dropped[0].Error, "dropped: ") {
		t.Errorf("dropped dead letters: %+v, want the second Storm alert's run", dropped)
	}
	if len(unmatched) != 1 || unmatched[0].Kind != starbook.DeadEvent || unmatched[0].Fingerprint != "bb01" ||
		unmatched[0].Source != "alertmanager" {
		t.Fatalf("unmatched alert dead letters: %+v", unmatched)
	}
	var payload struct {
		Labels      map[string]string `json:"labels"`
		Fingerprint string            `json:"fingerprint"`
	}
	if err := json.Unmarshal(unmatched[0].Payload, &payload); err != nil || payload.Labels["alertname"] != "Nobody" || payload.Labels["pod"] != "api-1" {
		t.Errorf("unmatched alert payload %s (%v): want the alert", unmatched[0].Payload, err)
	}

	// Alertmanager repeats a firing alert: it is kept once.
	d.alert(t, firing("Nobody", "bb01"))
	if n := len(d.deadLetters(t, starbook.DeadLetterFilter{Reason: starbook.ReasonNoRunbook})); n != 1 {
		t.Errorf("%d dead letters for one unmatched alert sent twice, want 1", n)
	}
	// Filters.
	for id, dl := range d.deadLetters(t, starbook.DeadLetterFilter{Runbook: "fails"}) {
		if dl.Runbook != "fails" || want[id] != starbook.ReasonFailed {
			t.Errorf("runbook filter let through %+v", dl)
		}
	}
	if n := len(d.deadLetters(t, starbook.DeadLetterFilter{Reason: starbook.ReasonStuck})); n != 1 {
		t.Errorf("reason filter: %d stuck dead letters, want 1", n)
	}
}

// TestAckDeadLetter: an ack removes the dead letter and is audited with its
// comment; acking it again, or an unknown id, is a 404 that stores nothing.
func TestAckDeadLetter(t *testing.T) {
	d := startDLNode(t)
	d.apply(t, dlRunbooks)
	ctx := context.Background()
	e := d.run(t, "fails", `{}`)
	if d.deadLetters(t, starbook.DeadLetterFilter{})[e.ID] == nil {
		t.Fatalf("failed execution %s is no dead letter", e.ID)
	}
	dl, err := d.cli.AckDeadLetter(ctx, e.ID, "known flake")
	if err != nil {
		t.Fatal(err)
	}
	if dl.ID != e.ID || dl.Reason != starbook.ReasonFailed {
		t.Errorf("ack answered %+v", dl)
	}
	if got := d.deadLetters(t, starbook.DeadLetterFilter{}); got[e.ID] != nil {
		t.Errorf("dead letter %s still listed after its ack", e.ID)
	}
	recs, err := d.svc.Audit(ctx, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, rec := range recs {
		if rec.Action == "deadletter.ack" && rec.Execution == e.ID && rec.Outcome == starbook.AuditOK &&
			rec.Actor == "alice" && strings.Contains(rec.Detail, "known flake") && rec.Runbook == "fails" {
			found = true
		}
	}
	if !found {
		t.Errorf("no audit record of the ack among %d records", len(recs))
	}
	before := d.keysExceptAudit(t)
	for _, id := range []string{e.ID, "01JUNKNOWN00000000000000000"} {
		var ae *api.Error
		if _, err := d.cli.AckDeadLetter(ctx, id, ""); !errors.As(err, &ae) || ae.Status != 404 || !strings.Contains(ae.Message, "dead letter") {
			t.Errorf("ack of %s: %v, want a 404 naming the dead letter", id, err)
		}
	}
	assertUnchanged(t, before, d.keysExceptAudit(t))
}

func assertUnchanged(t *testing.T, before, after map[string]int64) {
	t.Helper()
	for k, rev := range before {
		if after[k] != rev {
			t.Errorf("key %s changed (revision %d -> %d)", k, rev, after[k])
		}
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			t.Errorf("key %s was created", k)
		}
	}
}

// flaky counts requests per Idempotency-Key and answers 500 on /b while
// failing is set.
type flaky struct {
	mu      sync.Mutex
	seen    map[string]int
	failing atomic.Bool
}

func (f *flaky) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.seen[r.Header.Get("Idempotency-Key")]++
	f.mu.Unlock()
	if r.URL.Path == "/b" && f.failing.Load() {
		http.Error(w, `{"error": "down"}`, http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"path": %q}`, r.URL.Path)
}

func (f *flaky) count(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.seen[key]
}

const threeSteps = `
def main(event):
    a = call(http.get, event.url + "/a")
    b = call(http.get, event.url + "/b")
    c = call(http.get, event.url + "/c")
    return [a.json["path"], b.json["path"], c.json["path"]]
`

// TestRedriveFromFailed: a run whose second of three HTTP steps failed is
// redriven from the failed step: the same execution completes, the first
// step is not repeated (one request with its Idempotency-Key), the failed
// one runs again and the third runs once; the attempt boundary is on the
// record, the earlier attempt's failed event is still in the history, and
// the dead letter is gone.
func TestRedriveFromFailed(t *testing.T) {
	d := startDLNode(t)
	d.apply(t, map[string]string{"three.star": threeSteps})
	fl := &flaky{seen: map[string]int{}}
	fl.failing.Store(true)
	srv := httptest.NewServer(fl)
	defer srv.Close()
	ctx := context.Background()

	e := d.run(t, "three", fmt.Sprintf(`{"url": %q}`, srv.URL))
	if e.Status != sbruntime.StatusFailed {
		t.Fatalf("first attempt ended %s, want failed", e.Status)
	}
	// A dry run says what would happen and changes nothing.
	before := d.keysExceptAudit(t)
	dry, err := d.cli.Redrive(ctx, e.ID, starbook.RedriveRequest{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if dry.Redrive.Attempt != 2 || dry.Redrive.Kept != 1 || strings.Join(dry.Redrive.Rerun, ",") != "2" || !dry.Redrive.DryRun {
		t.Errorf("dry run: %+v, want attempt 2 keeping 1 event and rerunning position 2", dry.Redrive)
	}
	assertUnchanged(t, before, d.keysExceptAudit(t))

	fl.failing.Store(false)
	res, err := d.cli.Redrive(ctx, e.ID, starbook.RedriveRequest{From: "failed"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Execution.ID != e.ID || res.Redrive.Attempt != 2 {
		t.Errorf("redrive answered %+v %+v", res.Redrive, res.Execution)
	}
	end := d.awaitEnd(t, e.ID)
	if end.Status != sbruntime.StatusCompleted || string(end.Result) != `["/a","/b","/c"]` {
		t.Fatalf("redriven execution ended %s %s %s", end.Status, end.Result, end.Error)
	}
	for pos, want := range map[string]int{"1": 1, "2": 2, "3": 1} {
		if got := fl.count(e.ID + "/" + pos); got != want {
			t.Errorf("requests with Idempotency-Key %s/%s: %d, want %d", e.ID, pos, got, want)
		}
	}
	if len(end.Redrives) != 1 || end.Redrives[0].Attempt != 2 || end.Redrives[0].Status != sbruntime.StatusFailed ||
		end.Redrives[0].By != "alice" || !strings.Contains(end.Redrives[0].Error, "400") {
		t.Errorf("attempt boundary %+v", end.Redrives)
	}
	_, history, err := d.cli.Execution(ctx, e.ID)
	if err != nil {
		t.Fatal(err)
	}
	var failedKept, rerun bool
	for _, ev := range history {
		if ev.Position == "2" && ev.Failed() && ev.Attempt == 0 {
			failedKept = true
		}
		if ev.Position == "2" && !ev.Failed() && ev.Attempt == 2 {
			rerun = true
		}
	}
	if !failedKept || !rerun || len(history) != 4 {
		t.Errorf("history (%d events) should keep the failed event at 2 and add attempt 2's: %+v", len(history), history)
	}
	if dl := d.deadLetters(t, starbook.DeadLetterFilter{})[e.ID]; dl != nil {
		t.Errorf("redriven, completed execution is still a dead letter: %+v", dl)
	}
}

// TestRedriveFromStart: a new execution with the same input, linked both
// ways; the original keeps its history and status.
func TestRedriveFromStart(t *testing.T) {
	d := startDLNode(t)
	d.apply(t, map[string]string{"three.star": threeSteps})
	fl := &flaky{seen: map[string]int{}}
	fl.failing.Store(true)
	srv := httptest.NewServer(fl)
	defer srv.Close()
	ctx := context.Background()
	input := fmt.Sprintf(`{"url": %q}`, srv.URL)
	e := d.run(t, "three", input)
	fl.failing.Store(false)
	res, err := d.cli.Redrive(ctx, e.ID, starbook.RedriveRequest{From: "start"})
	if err != nil {
		t.Fatal(err)
	}
	fresh := res.Redrive.New
	if fresh == "" || fresh == e.ID || res.Execution.ID != fresh || res.Execution.RedriveOf != e.ID {
		t.Fatalf("redrive from start answered %+v %+v", res.Redrive, res.Execution)
	}
	end := d.awaitEnd(t, fresh)
	if end.Status != sbruntime.StatusCompleted || end.RedriveOf != e.ID || end.Trigger.Attrs["redrive_of"] != e.ID {
		t.Errorf("new execution %+v", end)
	}
	var in, was map[string]any
	_ = json.Unmarshal(end.Input, &in)
	_ = json.Unmarshal([]byte(input), &was)
	if fmt.Sprint(in) != fmt.Sprint(was) {
		t.Errorf("new execution's input %s, want %s", end.Input, input)
	}
	old, _, err := d.cli.Execution(ctx, e.ID)
	if err != nil {
		t.Fatal(err)
	}
	if old.Status != sbruntime.StatusFailed || len(old.RedrivenAs) != 1 || old.RedrivenAs[0] != fresh {
		t.Errorf("original after redrive: %s, redriven_as %v", old.Status, old.RedrivenAs)
	}
	if fl.count(fresh+"/1") != 1 || fl.count(e.ID+"/1") != 1 {
		t.Errorf("each execution's first step ran once: %d, %d", fl.count(e.ID+"/1"), fl.count(fresh+"/1"))
	}
}

// TestRedriveRefusals: a run whose compensations ran refuses --from failed
// (and takes --from start); a waiting run, a completed run, an unknown id
// and bad options are 4xx naming why; none of them stores anything.
func TestRedriveRefusals(t *testing.T) {
	d := startDLNode(t)
	d.apply(t, dlRunbooks)
	ctx := context.Background()
	compensated := d.run(t, "undo_fails", `{}`)
	completed := d.run(t, "ok", `{}`)
	waiting, err := d.cli.Start(ctx, "waits", nil)
	if err != nil {
		t.Fatal(err)
	}
	d.awaitStatus(t, waiting.ID, sbruntime.StatusWaiting)
	failed := d.run(t, "fails", `{}`)

	before := d.keysExceptAudit(t)
	for _, tc := range []struct {
		id     string
		req    starbook.RedriveRequest
		status int
		says   string
	}{
		{compensated.ID, starbook.RedriveRequest{}, 409, "--from start"},
		{waiting.ID, starbook.RedriveRequest{From: "start"}, 409, "is waiting"},
		{completed.ID, starbook.RedriveRequest{}, 409, "completed"},
		{"01JUNKNOWN00000000000000000", starbook.RedriveRequest{}, 404, "not found"},
		{failed.ID, starbook.RedriveRequest{From: "middle"}, 400, "want failed or start"},
		{failed.ID, starbook.RedriveRequest{Version: "latest"}, 400, "want pinned or current"},
	} {
		var ae *api.Error
		_, err := d.cli.Redrive(ctx, tc.id, tc.req)
		if !errors.As(err, &ae) || ae.Status != tc.status || !strings.Contains(ae.Message, tc.says) {
			t.Errorf("redrive %s %+v: %v, want %d saying %q", tc.id, tc.req, err, tc.status, tc.says)
		}
	}
	assertUnchanged(t, before, d.keysExceptAudit(t))
	res, err := d.cli.Redrive(ctx, compensated.ID, starbook.RedriveRequest{From: "start"})
	if err != nil || res.Redrive.New == "" {
		t.Fatalf("compensated run from start: %v", err)
	}
}

// TestConcurrentRedrives: of several redrives of one failed execution at
// once, exactly one wins; the others get 409 and the execution runs one
// more attempt. The runbook's request fails the first time and then hangs
// until the test lets it go: the attempt the winner starts cannot fail again
// (and be redriven again, legitimately) before every request has read it.
func TestConcurrentRedrives(t *testing.T) {
	d := startDLNode(t)
	d.apply(t, dlRunbooks)
	d.apply(t, map[string]string{"fails_once.star": `
def main(event):
    return call(http.get, event.url, retries = 0)["status"]
`})
	var release atomic.Pointer[chan struct{}] // closed: the hanging requests answer
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if requests.Add(1) == 1 {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		select {
		case <-*release.Load():
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	for _, from := range []string{"failed", "start"} {
		requests.Store(0)
		ch := make(chan struct{})
		release.Store(&ch)
		e := d.run(t, "fails_once", fmt.Sprintf(`{"url": %q}`, srv.URL))
		if end := d.awaitEnd(t, e.ID); end.Status != sbruntime.StatusFailed {
			t.Fatalf("first run %s, want failed", end.Status)
		}
		const n = 6
		var wg sync.WaitGroup
		codes := make([]int, n)
		start := make(chan struct{})
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, err := d.cli.Redrive(ctx, e.ID, starbook.RedriveRequest{From: from})
				var ae *api.Error
				switch {
				case err == nil:
					codes[i] = 200
				case errors.As(err, &ae):
					codes[i] = ae.Status
				default:
					t.Error(err)
				}
			}()
		}
		close(start)
		wg.Wait()
		won, lost := 0, 0
		for _, c := range codes {
			switch c {
			case 200:
				won++
			case 409:
				lost++
			}
		}
		if won != 1 || lost != n-1 {
			t.Errorf("from %s: %d redrives won, %d got 409 (codes %v), want 1 and %d", from, won, lost, codes, n-1)
		}
		close(ch)
		end := d.awaitEnd(t, e.ID)
		if from == "failed" && len(end.Redrives) != 1 {
			t.Errorf("from failed: %d attempt boundaries, want 1", len(end.Redrives))
		}
		if from == "start" && len(end.RedrivenAs) != 1 {
			t.Errorf("from start: %d new executions, want 1", len(end.RedrivenAs))
		}
	}
}

// TestRedriveOnCurrentVersion: --version current re-pins a failed execution
// when its kept history replays on the current version, and is refused
// (409, nothing stored) when it does not.
func TestRedriveOnCurrentVersion(t *testing.T) {
	d := startDLNode(t)
	ctx := context.Background()
	d.apply(t, map[string]string{"fix.star": `
def one():
    return 1

def main(event):
    call(one)
    fail("bug")
`})
	e := d.run(t, "fix", `{}`)
	d.apply(t, map[string]string{"fix.star": `
def one():
    return 1

def other():
    return 2

def main(event):
    call(other)
    return "fixed"
`})
	before := d.keysExceptAudit(t)
	var ae *api.Error
	if _, err := d.cli.Redrive(ctx, e.ID, starbook.RedriveRequest{Version: "current"}); !errors.As(err, &ae) || ae.Status != 409 ||
		!strings.Contains(ae.Message, "does not replay") {
		t.Fatalf("redrive on an incompatible version: %v, want 409", err)
	}
	assertUnchanged(t, before, d.keysExceptAudit(t))
	rbs, err := d.cli.Apply(ctx, map[string]string{"fix.star": `
def one():
    return 1

def main(event):
    call(one)
    return "fixed"
`})
	if err != nil {
		t.Fatal(err)
	}
	res, err := d.cli.Redrive(ctx, e.ID, starbook.RedriveRequest{Version: "current"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Redrive.Version != rbs[0].Version || res.Redrive.Replay == "" {
		t.Errorf("redrive on current: %+v", res.Redrive)
	}
	end := d.awaitEnd(t, e.ID)
	if end.Status != sbruntime.StatusCompleted || end.Version != rbs[0].Version || end.Redrives[0].Version != e.Version {
		t.Errorf("re-pinned execution: %s on %s (boundary %+v)", end.Status, end.Version, end.Redrives)
	}
}

// TestDeadLettersPages pages through dead letters over HTTP with ?limit=
// and the ?after= cursor each page returns, and refuses bad values with
// 400 as the executions listing does.
func TestDeadLettersPages(t *testing.T) {
	d := startDLNode(t)
	d.apply(t, dlRunbooks)
	ctx := context.Background()
	for i := range 9 {
		d.alert(t, firing("Unmatched", fmt.Sprintf("f%03x", i)))
	}
	d.run(t, "fails", `{}`)
	all, next, err := d.cli.DeadLettersPage(ctx, starbook.DeadLetterFilter{Limit: api.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 10 || next != "" {
		t.Fatalf("%d dead letters, next %q; want 10 and none", len(all), next)
	}
	for _, f := range []starbook.DeadLetterFilter{{Limit: 3}, {Limit: 1}, {Limit: 10}, {Reason: starbook.ReasonNoRunbook, Limit: 4}} {
		t.Run(fmt.Sprintf("%s limit %d", f.Reason, f.Limit), func(t *testing.T) {
			var got, want []string
			for _, dl := range all {
				if f.Reason == "" || dl.Reason == f.Reason {
					want = append(want, dl.Cursor())
				}
			}
			for range len(all) + 1 {
				page, next, err := d.cli.DeadLettersPage(ctx, f)
				if err != nil {
					t.Fatal(err)
				}
				for _, dl := range page {
					got = append(got, dl.Cursor())
				}
				if next == "" {
					break
				}
				if next != page[len(page)-1].Cursor() {
					t.Fatalf("next %q is not the page's last %q", next, page[len(page)-1].Cursor())
				}
				f.After = next
			}
			if !slices.Equal(got, want) {
				t.Errorf("paged %q\nwant  %q", got, want)
			}
		})
	}
	t.Run("default", func(t *testing.T) {
		resp, err := http.Get(d.url + "/api/v1/dead-letters")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]json.RawMessage
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatal(err)
		}
		if _, ok := body["dead_letters"]; !ok || len(body) != 1 {
			t.Errorf("keys of %v: want dead_letters alone (one page, no next)", body)
		}
	})
	for _, q := range []string{"limit=0", "limit=1001", "limit=x", "after=x", "after=123.abc", "after=1234567890123.", "after=1234567890123.a/b"} {
		t.Run(q, func(t *testing.T) {
			resp, err := http.Get(d.url + "/api/v1/dead-letters?" + q)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("status %d, want 400", resp.StatusCode)
			}
		})
	}
}
