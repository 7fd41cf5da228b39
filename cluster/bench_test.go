package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/oklog/ulid/v2"
	"github.com/starbook/starbook/builtins"
	"github.com/starbook/starbook/enginetest"
	sbruntime "github.com/starbook/starbook/runtime"
)

// The benchmarks share one embedded etcd with fsync on, so every figure is
// measured against the floor on the same disk in the same run:
//
//	go test ./cluster -run '^$' -bench . -benchtime 2000x
var (
	benchOnce sync.Once
	benchEmb  *Embedded
	benchDir  string
)

func benchEtcd(b *testing.B) *Embedded {
	benchOnce.Do(func() {
		dir, err := os.MkdirTemp("", "starbook-bench-")
		if err != nil {
			b.Fatal(err)
		}
		benchDir = dir
		benchEmb, err = StartEmbedded(context.Background(), EmbeddedConfig{Dir: dir, Fast: true})
		if err != nil {
			b.Fatal(err)
		}
	})
	return benchEmb
}

// fencedTxn is the floor of one step: a checkpoint put fenced on an owner
// key's create revision and on the position being empty.
func fencedTxn(ctx context.Context, cli *clientv3.Client, owner string, ownerRev int64, key string) error {
	resp, err := cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(owner), "=", ownerRev),
			clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, `{"position":"1","kind":"call","name":"noop","result":null}`)).
		Commit()
	if err == nil && !resp.Succeeded {
		err = fmt.Errorf("txn %s did not succeed", key)
	}
	return err
}

func floorOwner(b *testing.B, cli *clientv3.Client, name string) int64 {
	resp, err := cli.Put(context.Background(), "/floor/owners/"+name, "bench")
	if err != nil {
		b.Fatal(err)
	}
	return resp.Header.Revision
}

// BenchmarkFloorTxn is one fenced checkpoint txn at a time.
func BenchmarkFloorTxn(b *testing.B) {
	cli := benchEtcd(b).Client
	owner := fmt.Sprintf("seq-%d", time.Now().UnixNano())
	rev := floorOwner(b, cli, owner)
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := fencedTxn(ctx, cli, "/floor/owners/"+owner, rev, fmt.Sprintf("/floor/h/%s/%d", owner, i)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/txn")
}

// BenchmarkFloorTxn50 is fenced checkpoint txns with 50 writers in flight.
func BenchmarkFloorTxn50(b *testing.B) {
	cli := benchEtcd(b).Client
	run := fmt.Sprintf("par-%d", time.Now().UnixNano())
	ctx := context.Background()
	var next atomic.Int64
	var wg sync.WaitGroup
	revs := make([]int64, 50)
	for w := range revs {
		revs[w] = floorOwner(b, cli, fmt.Sprintf("%s-%d", run, w))
	}
	b.ResetTimer()
	for w := 0; w < 50; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			owner := fmt.Sprintf("/floor/owners/%s-%d", run, w)
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				if err := fencedTxn(ctx, cli, owner, revs[w], fmt.Sprintf("/floor/h/%s/%d", run, i)); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "txn/s")
}

func benchSetup(b *testing.B) (*Store, *sbruntime.Engine, *benchStarter, *sbruntime.Program) {
	emb := benchEtcd(b)
	bi := builtins.New(builtins.Options{})
	store := NewStore(emb.Client, fmt.Sprintf("/bench-%d/", time.Now().UnixNano()))
	ctx := context.Background()
	files := map[string]string{"noop.star": enginetest.NoopRunbook}
	bundle := &sbruntime.Bundle{Name: "noop", Version: sbruntime.BundleVersion(files), Main: "noop.star", Files: files}
	if _, _, err := store.PutBundles(ctx, []*sbruntime.Bundle{bundle}); err != nil {
		b.Fatal(err)
	}
	prog, err := sbruntime.Compile(bundle, bi)
	if err != nil {
		b.Fatal(err)
	}
	return store, &sbruntime.Engine{Builtins: bi}, &benchStarter{store: store}, prog
}

// benchStarter starts executions of the current version as a manual start
// through the service does (one create txn), with no node to claim them.
type benchStarter struct{ store *Store }

func (s *benchStarter) Start(ctx context.Context, runbook string, input json.RawMessage, trigger sbruntime.Trigger) (*sbruntime.Execution, error) {
	now := time.Now().UTC()
	return s.store.StartCurrent(ctx, runbook, nil, func(version string) *sbruntime.Execution {
		return &sbruntime.Execution{ID: ulid.Make().String(), Runbook: runbook, Version: version,
			Status: sbruntime.StatusPending, Trigger: trigger, Input: input, CreatedAt: now, UpdatedAt: now}
	})
}

// runOne claims and runs an execution to its end on the engine.
func runOne(ctx context.Context, store *Store, eng *sbruntime.Engine, prog *sbruntime.Program, id string, lease clientv3.LeaseID) error {
	claim, err := store.Claim(ctx, id, "bench", lease)
	if err != nil {
		return err
	}
	o := eng.Execute(ctx, prog, &sbruntime.Run{Execution: claim.Execution, History: claim.History, Waits: claim.Waits, Journal: claim})
	if o.Status != sbruntime.StatusCompleted {
		return fmt.Errorf("execution %s: %s %s %v", id, o.Status, o.Error, o.Err)
	}
	_, err = claim.Finish(ctx, o)
	return err
}

func grant(b *testing.B, cli *clientv3.Client) clientv3.LeaseID {
	l, err := cli.Grant(context.Background(), 60)
	if err != nil {
		b.Fatal(err)
	}
	return l.ID
}

// BenchmarkSequentialStep is one execution of b.N no-op call() steps: the
// cost of a durable step, to compare with BenchmarkFloorTxn.
func BenchmarkSequentialStep(b *testing.B) {
	store, eng, svc, prog := benchSetup(b)
	ctx := context.Background()
	e, err := svc.Start(ctx, "noop", json.RawMessage(fmt.Sprintf(`{"steps": %d}`, b.N)), sbruntime.Trigger{Type: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	lease := grant(b, store.cli)
	b.ResetTimer()
	if err := runOne(ctx, store, eng, prog, e.ID, lease); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/step")
}

// BenchmarkThroughput50 runs b.N executions of 5 no-op steps with 50 in
// flight (create, claim, 5 steps, finish each), to compare with
// BenchmarkFloorTxn50.
func BenchmarkThroughput50(b *testing.B) {
	store, eng, svc, prog := benchSetup(b)
	ctx := context.Background()
	lease := grant(b, store.cli)
	input := json.RawMessage(`{"steps": 5}`)
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	for w := 0; w < 50; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				e, err := svc.Start(ctx, "noop", input, sbruntime.Trigger{Type: "bench"})
				if err == nil {
					err = runOne(ctx, store, eng, prog, e.ID, lease)
				}
				if err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "executions/s")
	b.ReportMetric(float64(5*b.N)/b.Elapsed().Seconds(), "steps/s")
}
