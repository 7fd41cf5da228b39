package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/starbook/starbook/cluster"
	sbruntime "github.com/starbook/starbook/runtime"
)

// keyCounter counts requests per Idempotency-Key; each takes a few
// milliseconds so that kills land while steps are in flight.
type keyCounter struct {
	mu      sync.Mutex
	seen    map[string]int
	first   map[string]time.Time // when the first request with the key arrived
	last    map[string]time.Time // when the latest request with the key arrived
	total   int
	latency time.Duration // default 25ms
}

func (kc *keyCounter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	latency := kc.latency
	if latency == 0 {
		latency = 25 * time.Millisecond
	}
	arrived := time.Now()
	time.Sleep(latency) // the remote system's latency, not synchronisation
	kc.mu.Lock()
	key := r.Header.Get("Idempotency-Key")
	kc.seen[key]++
	if kc.last == nil {
		kc.first, kc.last = map[string]time.Time{}, map[string]time.Time{}
	}
	if _, ok := kc.first[key]; !ok {
		kc.first[key] = arrived
	}
	kc.last[key] = arrived
	kc.total++
	kc.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprint(w, `{"ok": true}`)
}

func (kc *keyCounter) count() int {
	kc.mu.Lock()
	defer kc.mu.Unlock()
	return kc.total
}

const crashRunbook = `
def main(event):
    for i in range(50):
        call(http.post, event.url + "/seq", json = {"i": i})
    hosts = ["h%d" % i for i in range(20)]
    codes = fan_out(lambda h: call(http.get, event.url + "/fan/" + h)["status"], hosts, max_concurrency = 5)
    return {"steps": 50, "fan_out": len(codes)}
`

// TestCrashRecovery kills the daemon with SIGKILL at five random moments while
// executions run, restarts it each time, and checks that every execution
// completes, positions are contiguous and written once, and no effect ran
// again but once per kill that cut it off (only a step in flight at a kill
// may repeat).
func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test runs the real binary")
	}
	kc := &keyCounter{seen: map[string]int{}}
	srv := httptest.NewServer(kc)
	defer srv.Close()

	dataDir := t.TempDir() + "/node"
	d := startDaemon(t, dataDir)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if _, err := d.Client.Apply(ctx, map[string]string{"crash.star": crashRunbook}); err != nil {
		t.Fatal(err)
	}
	const executions = 4
	var ids []string
	for range executions {
		e, err := d.Client.Start(ctx, "crash", json.RawMessage(fmt.Sprintf(`{"url": %q}`, srv.URL)))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, e.ID)
	}
	const expected = executions * (50 + 20)
	killedMidway := 0
	var kills []outage
	for kill := 1; kill <= 5; kill++ {
		time.Sleep(time.Duration(100+rand.IntN(300)) * time.Millisecond) // a random moment to kill at
		if kc.count() < expected {
			killedMidway++
		}
		killed := time.Now()
		d.kill(t)
		t.Logf("kill %d after %d requests", kill, kc.count())
		d = startDaemon(t, dataDir)
		kills = append(kills, outage{killed: killed, ready: time.Now()})
	}
	if killedMidway < 3 {
		t.Fatalf("only %d of 5 kills landed mid-run; the test proves too little", killedMidway)
	}
	for _, id := range ids {
		e, _, err := d.Client.Wait(ctx, id, 2*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if e.Status != sbruntime.StatusCompleted {
			t.Fatalf("execution %s ended %s: %s", id, e.Status, e.Error)
		}
		_, history, err := d.Client.Execution(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		checkContiguous(t, id, history)
		checkNotRedone(t, kc, id, history)
		for pos := 1; pos <= 50; pos++ {
			checkKey(t, kc, fmt.Sprintf("%s/%d", id, pos), kills)
		}
		for i := range 20 {
			checkKey(t, kc, fmt.Sprintf("%s/51/%d/1", id, i), kills)
		}
	}
	t.Logf("%d requests for %d steps across %d kills (%d mid-run)", kc.count(), expected, 5, killedMidway)

	// With the daemon stopped, read etcd directly: every history key was
	// written exactly once (etcd's per-key version counts writes).
	d.stop(t)
	emb, err := cluster.StartEmbedded(ctx, cluster.EmbeddedConfig{Dir: dataDir, Fast: true})
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Close()
	resp, err := emb.Client.Get(ctx, "/starbook/history/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != executions*(50+1+20) {
		t.Errorf("%d history keys, want %d", len(resp.Kvs), executions*(50+1+20))
	}
	for _, kv := range resp.Kvs {
		if kv.Version != 1 {
			t.Errorf("history key %s written %d times", kv.Key, kv.Version)
		}
	}
}

// checkNotRedone asserts that no step of the history was run again once it
// had finished: no request with its idempotency key arrived after the
// recorded event's end (the nodes and this test share the host's clock).
// That is the guarantee; how often a step that never finished may repeat
// depends on how many disruptions cut it off.
func checkNotRedone(t *testing.T, kc *keyCounter, id string, history []*sbruntime.Event) {
	t.Helper()
	kc.mu.Lock()
	defer kc.mu.Unlock()
	for _, ev := range history {
		key := id + "/" + ev.Position
		if last, ok := kc.last[key]; ok && last.After(ev.EndedAt) {
			t.Errorf("step %s ran again %s after it finished (%d requests)", key, last.Sub(ev.EndedAt), kc.seen[key])
		}
	}
}

// outage is one kill of the daemon: when it was killed and when the
// restarted one was ready.
type outage struct{ killed, ready time.Time }

// checkKey asserts that the step with key ran, and ran again only after a
// kill cut it off: once more at most per kill that its first run could
// have come before (on a loaded machine a restarted run can be killed
// again in the same step). The server sees a request when its handler
// runs, which can be after the kill of the process that sent it: a first
// run seen before the restarted daemon was ready may be the killed one's.
func checkKey(t *testing.T, kc *keyCounter, key string, kills []outage) {
	t.Helper()
	kc.mu.Lock()
	n, first, last := kc.seen[key], kc.first[key], kc.last[key]
	kc.mu.Unlock()
	between := 0
	for _, k := range kills {
		if first.Before(k.ready) && k.killed.Before(last) {
			between++
		}
	}
	if n < 1 || n > 1+between {
		t.Errorf("idempotency key %s seen %d times, want 1, or once more per kill between its runs (%d)", key, n, between)
	}
}

// checkContiguous asserts main positions 1..51 and fan_out children 51/i/1.
func checkContiguous(t *testing.T, id string, history []*sbruntime.Event) {
	t.Helper()
	var want []string
	for pos := 1; pos <= 51; pos++ {
		want = append(want, fmt.Sprint(pos))
		if pos == 51 {
			for i := range 20 {
				want = append(want, fmt.Sprintf("51/%d/1", i))
			}
		}
	}
	var got []string
	for _, ev := range history {
		got = append(got, ev.Position)
	}
	// History is sorted with ComparePositions: "51" < "51/0/1" < ...
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("execution %s positions\n got %v\nwant %v", id, got, want)
	}
}
