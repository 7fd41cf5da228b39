package node_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/starbook/starbook/cluster"
	"github.com/starbook/starbook/triggers"
)

func TestZZProbeKeys(t *testing.T) {
	env := startTriggerEnv(t, t.TempDir(), true, nil)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "fail") { w.WriteHeader(500); return }
		w.Write([]byte("ok"))
	}))
	defer srv.Close()
	env.apply(t, map[string]string{"one.star": `
trigger.alert(alertname = "Probe")
def main(event):
    r = call(http.get, "` + srv.URL + `/" + event.labels["pod"], retry = retry(attempts = 1))
    return r.status
`})
	ctx := context.Background()
	const n = 200
	for i := 0; i < n; i++ {
		pod := fmt.Sprintf("p%d", i)
		if i%10 == 0 { pod = "fail" + pod }
		payload := fmt.Sprintf(`{"version":"4","status":"firing","receiver":"x","groupKey":"g","alerts":[{"status":"firing","labels":{"alertname":"Probe","pod":%q,"namespace":"prod","severity":"critical"},"annotations":{"summary":"pod is crashlooping in prod"},"startsAt":"2026-12-07T10:00:00Z","endsAt":"0001-01-01T00:00:00Z","generatorURL":"http://prometheus:9090/graph?g0.expr=up","fingerprint":"%016x"}]}`, pod, i)
		nt, err := triggers.DecodeNotification([]byte(payload))
		if err != nil { t.Fatal(err) }
		if _, err := env.d.Alertmanager(ctx, nt); err != nil { t.Fatal(err) }
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		r, _ := env.store.Client().Get(ctx, "/t/runnable/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		o, _ := env.store.Client().Get(ctx, "/t/owners/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		if r.Count == 0 && o.Count == 0 { break }
		time.Sleep(100 * time.Millisecond)
	}
	resp, _ := env.store.Client().Get(ctx, "/t/", clientv3.WithPrefix())
	fam := map[string][2]int{}
	raw := 0
	for _, kv := range resp.Kvs {
		f := strings.SplitN(strings.TrimPrefix(string(kv.Key), "/t/"), "/", 2)[0]
		v := fam[f]; v[0]++; v[1] += len(kv.Key) + len(kv.Value); fam[f] = v
		if f == "executions" { j, _ := cluster.RecordJSON(kv.Value); raw += len(j) }
	}
	var names []string
	for f := range fam { names = append(names, f) }
	sort.Strings(names)
	tot := [2]int{}
	for _, f := range names { tot[0] += fam[f][0]; tot[1] += fam[f][1]; t.Logf("%-14s keys/exec %.2f bytes/exec %.0f", f, float64(fam[f][0])/n, float64(fam[f][1])/n) }
	t.Logf("total keys/exec %.2f bytes/exec %.0f; records inflated %d bytes/exec", float64(tot[0])/n, float64(tot[1])/n, raw/n)
}

