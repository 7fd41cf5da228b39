package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"testing"
	"time"
)

// BenchmarkFailover measures, with a 5 s session TTL, the time from SIGKILL of
// the node running an execution to the first step of that execution on the
// other node:
//
//	go test ./e2e -run '^$' -bench Failover -benchtime 5x
func BenchmarkFailover(b *testing.B) {
	etcd := startEtcdCluster(b, 1)
	cli := etcd.client()
	arrived := make(chan time.Time, 1024)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered := time.Now()
		time.Sleep(10 * time.Millisecond) // a remote call's latency
		select {
		case arrived <- entered:
		default:
		}
		fmt.Fprint(w, "ok")
	}))
	defer srv.Close()
	nodes := startClusterNodes(b, etcd, 2, "5s")
	ctx := context.Background()
	if _, err := nodes[0].d.Client.Apply(ctx, map[string]string{"forever.star": `
def main(event):
    for i in range(1000000):
        call(http.post, event.url)
`}); err != nil {
		b.Fatal(err)
	}
	if _, err := nodes[0].d.Client.Start(ctx, "forever", json.RawMessage(fmt.Sprintf(`{"url": %q}`, srv.URL))); err != nil {
		b.Fatal(err)
	}
	var times []time.Duration
	b.ResetTimer()
	for range b.N {
		owner := ""
		waitUntil(b, time.Minute, "an owner", func() bool {
			for id, n := range claimsByNode(b, cli) {
				if n > 0 {
					owner = id
				}
			}
			return owner != ""
		})
		var victim *clusterNode
		for i, n := range nodes {
			if n.id == owner {
				victim = nodes[i]
			}
		}
		victim.d.kill(b)
		killed := time.Now()
		// The other node's first step starts after it claimed the execution
		// (requests the victim sent before dying may still arrive).
		var claimed time.Time
		waitUntil(b, time.Minute, "the other node's claim", func() bool {
			for id, n := range claimsByNode(b, cli) {
				if n > 0 && id != victim.id {
					claimed = time.Now()
					return true
				}
			}
			return false
		})
		var first time.Time
		for first.IsZero() || first.Before(claimed.Add(-25*time.Millisecond)) {
			first = <-arrived
		}
		times = append(times, first.Sub(killed))
		victim.d = startDaemon(b, victim.dir, "--etcd-endpoints", etcd.endpoints(), "--node-id", victim.id,
			"--session-ttl", "5s", "--stop-grace", "2s")
	}
	b.StopTimer()
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	b.ReportMetric(float64(times[len(times)/2].Milliseconds()), "ms/failover-median")
	b.Logf("fail-over times: %v", times)
}
