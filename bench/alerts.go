package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"time"

	"github.com/starbook/starbook/api"
	"github.com/starbook/starbook/cluster"
	"github.com/starbook/starbook/service"
	"github.com/starbook/starbook/triggers"
)

const alertRunbook = `
trigger.alert(alertname = "BenchAlert")

def main(event):
    return event.labels.instance
`

const coalescedRunbook = `
trigger.alert(alertname = "BenchStorm", group_by = ["alertname", "service"], coalesce = True)

def main(event):
    wait_for_signal("done")
`

// coalescedGroups is how many groups the coalesced figure's alerts fall in.
const coalescedGroups = 20

// alertPayload is an Alertmanager v4 webhook of n firing alerts with new
// fingerprints, named alertname, in groups services (label service).
func alertPayload(seq int64, n int, alertname string, services int) []byte {
	type alert struct {
		Status       string            `json:"status"`
		Labels       map[string]string `json:"labels"`
		Annotations  map[string]string `json:"annotations"`
		StartsAt     string            `json:"startsAt"`
		EndsAt       string            `json:"endsAt"`
		GeneratorURL string            `json:"generatorURL"`
		Fingerprint  string            `json:"fingerprint"`
	}
	alerts := make([]alert, n)
	for i := range alerts {
		alerts[i] = alert{Status: "firing",
			Labels: map[string]string{"alertname": alertname, "instance": fmt.Sprintf("i-%d-%d", seq, i),
				"service": fmt.Sprintf("svc-%d", (int(seq)*n+i)%services)},
			Annotations: map[string]string{}, StartsAt: "2026-11-25T10:00:00Z", EndsAt: "0001-01-01T00:00:00Z",
			GeneratorURL: "http://prometheus/graph", Fingerprint: fmt.Sprintf("%08x%08x", seq, i)}
	}
	b, _ := json.Marshal(map[string]any{
		"version": "4", "groupKey": `{}:{alertname="` + alertname + `"}`, "status": "firing", "receiver": "starbook",
		"groupLabels": map[string]string{"alertname": alertname}, "commonLabels": map[string]string{"alertname": alertname},
		"commonAnnotations": map[string]string{}, "externalURL": "http://alertmanager", "truncatedAlerts": 0, "alerts": alerts,
	})
	return b
}

// alerts returns alerts per second ingested through POST /hooks/alertmanager:
// payloads of 10 alerts from 16 concurrent clients, each answered only once
// its executions (and their dedup keys) are durable.
func (e *env) alerts(ctx context.Context, payloads int) float64 {
	return e.postAlerts(ctx, e.store, e.svc, payloads, "BenchAlert", 1)
}

// alertsCoalesced is alerts for a runbook that coalesces them by service:
// the alerts fall in coalescedGroups groups, so nearly all are delivered as
// "alert" signals to their group's parked run rather than starting one.
func (e *env) alertsCoalesced(ctx context.Context, payloads int) float64 {
	return e.postAlerts(ctx, e.store, e.svc, payloads, "BenchStorm", coalescedGroups)
}

// alertsIngestOnly is alerts on a prefix no node serves: the same endpoint,
// with the created executions left pending instead of competing for the CPU.
func (e *env) alertsIngestOnly(ctx context.Context, payloads int) float64 {
	store := cluster.NewStore(e.cli, "/ingest/", cluster.WithMaxTxnOps(cluster.EmbeddedMaxTxnOps))
	defer store.Close()
	return e.postAlerts(ctx, store, service.New(store, e.svc.Builtins), payloads, "BenchAlert", 1)
}

func (e *env) postAlerts(ctx context.Context, store *cluster.Store, svc *service.Service, payloads int, alertname string, services int) float64 {
	if _, err := svc.Apply(ctx, map[string]string{"bench.star": benchRunbooks, "alerts.star": alertRunbook,
		"coalesced.star": coalescedRunbook}); err != nil {
		e.fail(err)
		return 0
	}
	tr := cluster.NewTriggers(store, nil, nil)
	tr.RunOn(svc.Node) // as serve does: nil for the ingest-only store
	srv := httptest.NewServer(api.NewHandler(svc, nil, api.WithHooks(
		&triggers.Dispatcher{Index: tr.Index(), Starter: tr, Resolver: tr}, api.AlertmanagerAuth{})))
	defer srv.Close()
	const perPayload, clients = 10, 16
	var next atomic.Int64
	base := time.Now().UnixNano() & 0xffffff
	var wg sync.WaitGroup
	start := time.Now()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1); i <= int64(payloads); i = next.Add(1) {
				resp, err := http.Post(srv.URL+"/hooks/alertmanager", "application/json",
					bytes.NewReader(alertPayload(base+i, perPayload, alertname, services)))
				if err != nil {
					e.fail(err)
					return
				}
				resp.Body.Close()
				if resp.StatusCode/100 != 2 {
					e.fail(fmt.Errorf("POST /hooks/alertmanager: %s", resp.Status))
					return
				}
			}
		}()
	}
	wg.Wait()
	return float64(payloads*perPayload) / time.Since(start).Seconds()
}
