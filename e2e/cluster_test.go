package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	sbruntime "github.com/starbook/starbook/runtime"
)

const clusterRunbook = `
def main(event):
    for i in range(20):
        call(http.post, event.url + "/step", json = {"i": i})
        sleep("500ms")
    return "done"
`

// clusterNode is one starbook process of a cluster.
type clusterNode struct {
	id  string
	dir string
	d   *daemon
}

func startClusterNodes(t testing.TB, etcd *etcdCluster, n int, ttl string) []*clusterNode {
	t.Helper()
	var nodes []*clusterNode
	for i := range n {
		cn := &clusterNode{id: fmt.Sprintf("n%d", i+1), dir: t.TempDir() + "/node"}
		cn.d = startDaemon(t, cn.dir, "--etcd-endpoints", etcd.endpoints(), "--node-id", cn.id,
			"--session-ttl", ttl, "--stop-grace", "2s")
		nodes = append(nodes, cn)
	}
	return nodes
}

// claimsByNode counts the owners/ keys per node.
func claimsByNode(t testing.TB, cli *clientv3.Client) map[string]int {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, "/starbook/owners/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, kv := range resp.Kvs {
		out[string(kv.Value)]++
	}
	return out
}

func leaderOf(t testing.TB, cli *clientv3.Client) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, "/starbook/election/", clientv3.WithFirstCreate()...)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) == 0 {
		return ""
	}
	return string(resp.Kvs[0].Value)
}

// TestClusterFailover runs 100 executions of a 20-step runbook with sleeps on
// three starbook processes against a three-member etcd cluster, and on the
// way: stops one etcd member, SIGKILLs the node holding the most claims, then
// the leader, then stops every etcd member for 10 s. Every execution must
// complete, every history position be written once, and no step repeat
// except those in flight at a kill.
func TestClusterFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test runs real processes")
	}
	etcd := startEtcdCluster(t, 3)
	cli := etcd.client()
	kc := &keyCounter{seen: map[string]int{}}
	kc.latency = time.Millisecond
	srv := httptest.NewServer(kc)
	defer srv.Close()

	nodes := startClusterNodes(t, etcd, 3, "3s")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if _, err := nodes[0].d.Client.Apply(ctx, map[string]string{"cluster.star": clusterRunbook}); err != nil {
		t.Fatal(err)
	}
	const executions, steps = 100, 20
	t0 := time.Now()
	t.Logf("applied")
	var ids []string
	for i := range executions {
		e, err := nodes[i%3].d.Client.Start(ctx, "cluster", json.RawMessage(fmt.Sprintf(`{"url": %q}`, srv.URL)))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, e.ID)
	}
	t.Logf("started %d executions at %d requests after %s", executions, kc.count(), time.Since(t0))
	total := executions * steps
	alive := map[string]*clusterNode{}
	for _, n := range nodes {
		alive[n.id] = n
	}
	inFlightBound := 0 // steps that may repeat: one per execution a killed node held

	waitUntil(t, 2*time.Minute, "20% progress", func() bool { return kc.count() >= total/5 })
	t.Logf("stopping etcd member m2 at %d requests", kc.count())
	etcd.stop(2)

	waitUntil(t, 2*time.Minute, "35% progress", func() bool { return kc.count() >= 35*total/100 })
	claims := claimsByNode(t, cli)
	busiest := ""
	for id := range alive {
		if busiest == "" || claims[id] > claims[busiest] {
			busiest = id
		}
	}
	inFlightBound += claims[busiest]
	t.Logf("killing %s holding %d claims at %d requests", busiest, claims[busiest], kc.count())
	alive[busiest].d.kill(t)
	delete(alive, busiest)

	etcd.restartAll() // m2 back, so that the full stop below leaves data to restart from
	waitUntil(t, 2*time.Minute, "50% progress", func() bool { return kc.count() >= total/2 })
	waitUntil(t, time.Minute, "a live leader", func() bool { return alive[leaderOf(t, cli)] != nil })
	leader := leaderOf(t, cli)
	inFlightBound += claimsByNode(t, cli)[leader]
	t.Logf("killing leader %s at %d requests", leader, kc.count())
	alive[leader].d.kill(t)
	delete(alive, leader)

	var survivor *clusterNode
	for _, n := range alive {
		survivor = n
	}
	waitUntil(t, 2*time.Minute, "60% progress", func() bool { return kc.count() >= 3*total/5 })
	t.Logf("stopping every etcd member at %d requests", kc.count())
	etcd.stopAll()
	time.Sleep(10 * time.Second) // the outage being tested, not synchronisation
	etcd.restartAll()
	t.Logf("etcd back at %d requests", kc.count())

	for _, id := range ids {
		e, _, err := survivor.d.Client.Wait(ctx, id, 3*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if e.Status != sbruntime.StatusCompleted {
			t.Fatalf("execution %s ended %s: %s", id, e.Status, e.Error)
		}
		_, history, err := survivor.d.Client.Execution(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		checkNotRedone(t, kc, id, history)
	}
	resp, err := cli.Get(ctx, "/starbook/history/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if want := executions * steps * 2; len(resp.Kvs) != want {
		t.Errorf("%d history keys, want %d", len(resp.Kvs), want)
	}
	for _, kv := range resp.Kvs {
		if kv.Version != 1 {
			t.Errorf("history key %s written %d times", kv.Key, kv.Version)
		}
	}
	// A step that never finished may run again once per disruption that
	// cut it off: the two kills, the outage, and the leader changes of the
	// member stop and restart (a checkpoint can fail on one). checkNotRedone
	// above holds every step to the guarantee itself: none ran again once
	// finished.
	const disruptions = 5
	repeated := 0
	for key, n := range kc.seen {
		if n > 1+disruptions {
			t.Errorf("idempotency key %s seen %d times", key, n)
		}
		repeated += n - 1
	}
	for _, id := range ids {
		for pos := 1; pos <= 2*steps; pos += 2 {
			if kc.seen[fmt.Sprintf("%s/%d", id, pos)] == 0 {
				t.Errorf("step %s/%d never ran", id, pos)
			}
		}
	}
	// Steps in flight at the two kills may repeat, and so may steps cut off by
	// the full etcd outage (their checkpoint failed): at most one per execution.
	if repeated > inFlightBound+executions {
		t.Errorf("%d repeated runs of steps; at most %d were in flight at the kills and the outage", repeated, inFlightBound+executions)
	}
	t.Logf("%d requests for %d steps; %d repeated runs", kc.count(), total, repeated)
}

// TestPausedNodeCannotWrite stops a node with SIGSTOP while one of its steps
// is in flight, past its lease TTL, lets another node take the execution over
// and finish that step, then resumes the paused node: its late result must
// not be recorded.
func TestPausedNodeCannotWrite(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test runs real processes")
	}
	etcd := startEtcdCluster(t, 3)
	cli := etcd.client()
	var mu sync.Mutex
	first := make(chan string, 1) // the idempotency key of the held request
	release := make(chan struct{})
	held := ""
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get("Idempotency-Key")
		mu.Lock()
		hold := held == ""
		if hold {
			held = key
		}
		mu.Unlock()
		if hold {
			first <- key
			<-release
			fmt.Fprint(w, `"paused node"`)
			return
		}
		fmt.Fprint(w, `"new owner"`)
	}))
	defer srv.Close()
	defer close(release)

	nodes := startClusterNodes(t, etcd, 2, "2s")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := nodes[0].d.Client.Apply(ctx, map[string]string{"pause.star": `
def main(event):
    r = call(http.get, event.url)
    return r.body
`}); err != nil {
		t.Fatal(err)
	}
	e, err := nodes[0].d.Client.Start(ctx, "pause", json.RawMessage(fmt.Sprintf(`{"url": %q}`, srv.URL)))
	if err != nil {
		t.Fatal(err)
	}
	<-first
	paused, other := splitByOwner(t, cli, nodes)
	if err := paused.d.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	end, _, err := other.d.Client.Wait(ctx, e.ID, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if end.Status != sbruntime.StatusCompleted || string(end.Result) != `"\"new owner\""` {
		t.Fatalf("execution %s %s result %s, want completed by the new owner", e.ID, end.Status, end.Result)
	}
	// Resume the paused node and let its held step return: its checkpoint
	// must be refused, leaving the new owner's result in place.
	if err := paused.d.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	release <- struct{}{}
	waitUntil(t, 30*time.Second, "the paused node to notice", func() bool {
		log, _ := readFile(paused.dir + ".log")
		return strings.Contains(log, "claim lost") || strings.Contains(log, "session expired")
	})
	resp, err := cli.Get(ctx, "/starbook/history/"+e.ID+"/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range resp.Kvs {
		if kv.Version != 1 || strings.Contains(string(kv.Value), "paused node") {
			t.Errorf("history %s = %s (version %d): the paused node wrote after losing its claim", kv.Key, kv.Value, kv.Version)
		}
	}
	final, _, err := other.d.Client.Execution(ctx, e.ID)
	if err != nil || string(final.Result) != `"\"new owner\""` {
		t.Fatalf("after resume: %+v, %v", final, err)
	}
}

// TestGracefulStopHandsOver sends SIGTERM to the node running an execution:
// the in-flight step finishes and is recorded, the claim is released at once,
// and the other node carries on well before the 10 s lease TTL would allow.
func TestGracefulStopHandsOver(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test runs real processes")
	}
	etcd := startEtcdCluster(t, 1)
	cli := etcd.client()
	kc := &keyCounter{seen: map[string]int{}, latency: 20 * time.Millisecond}
	srv := httptest.NewServer(kc)
	defer srv.Close()
	nodes := startClusterNodes(t, etcd, 2, "10s")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := nodes[0].d.Client.Apply(ctx, map[string]string{"long.star": `
def main(event):
    for i in range(150):
        call(http.post, event.url)
    return "done"
`}); err != nil {
		t.Fatal(err)
	}
	e, err := nodes[0].d.Client.Start(ctx, "long", json.RawMessage(fmt.Sprintf(`{"url": %q}`, srv.URL)))
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, time.Minute, "some progress", func() bool { return kc.count() >= 20 })
	stopping, other := splitByOwner(t, cli, nodes)
	stopped := time.Now()
	stopping.d.stop(t)
	handover := time.Duration(0)
	waitUntil(t, 8*time.Second, "the other node's claim (well before the 10 s TTL)", func() bool {
		if claimsByNode(t, cli)[other.id] > 0 {
			handover = time.Since(stopped)
			return true
		}
		return false
	})
	end, _, err := other.d.Client.Wait(ctx, e.ID, time.Minute)
	if err != nil || end.Status != sbruntime.StatusCompleted {
		t.Fatalf("execution after hand-over: %+v, %v", end, err)
	}
	for key, n := range kc.seen {
		if n > 1 {
			t.Errorf("step %s ran %d times: a graceful stop must finish and record its in-flight step", key, n)
		}
	}
	t.Logf("hand-over %s after SIGTERM", handover)
}

// splitByOwner waits until one of two nodes owns an execution and returns
// that node and the other one.
func splitByOwner(t testing.TB, cli *clientv3.Client, nodes []*clusterNode) (owner, other *clusterNode) {
	id := ""
	waitUntil(t, 10*time.Second, "an owner", func() bool {
		for node, n := range claimsByNode(t, cli) {
			if n > 0 {
				id = node
			}
		}
		return id != ""
	})
	for _, n := range nodes {
		if n.id == id {
			owner = n
		} else {
			other = n
		}
	}
	return owner, other
}
