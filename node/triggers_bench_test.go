package node_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/starbook/starbook/builtins"
	"github.com/starbook/starbook/cluster"
	"github.com/starbook/starbook/service"
	"github.com/starbook/starbook/triggers"
)

var ingestSeq atomic.Int64

// BenchmarkAlertIngest delivers Alertmanager notifications of 100 alerts, each
// matching one runbook, through the dispatcher into etcd (fsync on): "new"
// creates 100 executions and dedup keys per notification, "repeat" re-sends
// a delivered one (Alertmanager's repeat_interval). Compare alerts/s with
// BenchmarkFloorTxn of the same run.
func BenchmarkAlertIngest(b *testing.B) {
	emb := benchEtcd(b)
	prefix := fmt.Sprintf("/ingest-%d/", time.Now().UnixNano())
	store := cluster.NewStore(emb.Client, prefix)
	defer store.Close()
	svc := service.New(store, builtins.New(builtins.Options{}))
	if _, err := svc.Apply(context.Background(), map[string]string{
		"storm.star": "trigger.alert(alertname = \"StormAlert\")\ndef main(event):\n    pass\n"}); err != nil {
		b.Fatal(err)
	}
	tr := cluster.NewTriggers(store, nil, nil)
	d := &triggers.Dispatcher{Index: tr.Index(), Starter: tr, Resolver: tr}
	const perNotification = 100
	notification := func() *triggers.Notification {
		n := stormNotification(perNotification)
		base := ingestSeq.Add(1) << 20
		for i, a := range n.Alerts {
			a.Fingerprint = fmt.Sprintf("%016x", base+int64(i))
		}
		return n
	}
	ctx := context.Background()
	for _, repeat := range []bool{false, true} {
		name := map[bool]string{false: "new", true: "repeat"}[repeat]
		b.Run(name, func(b *testing.B) {
			n := notification()
			if repeat {
				if _, err := d.Alertmanager(ctx, n); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			for range b.N {
				if !repeat {
					n = notification()
				}
				res, err := d.Alertmanager(ctx, n)
				if err != nil {
					b.Fatal(err)
				}
				want := triggers.StatusStarted
				if repeat {
					want = triggers.StatusDuplicate
				}
				if len(res.Executions) != perNotification || res.Executions[0].Status != want {
					b.Fatalf("%d executions, first %+v", len(res.Executions), res.Executions[0])
				}
			}
			b.ReportMetric(float64(b.N*perNotification)/b.Elapsed().Seconds(), "alerts/s")
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/notification")
		})
	}
}

// benchEtcd starts an embedded etcd with fsync on, as a node runs it,
// stopped when b ends.
func benchEtcd(b *testing.B) *cluster.Embedded {
	b.Helper()
	emb, err := cluster.StartEmbedded(context.Background(), cluster.EmbeddedConfig{Dir: b.TempDir(), Fast: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(emb.Close)
	return emb
}
