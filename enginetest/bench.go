package enginetest

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/starbook/starbook/builtins"
	"github.com/starbook/starbook/runtime"
)

// NoopRunbook runs event.steps no-op call() steps: the workload of the
// step benchmarks here and in package cluster.
const NoopRunbook = `
def noop():
    return None

def main(event):
    for i in range(event.steps):
        call(noop)
`

// benchBatch bounds one execution's history, so that a long benchmark does
// not measure a growing map.
const benchBatch = 1000

// BenchSequentialCalls measures the engine's own cost of a durable step: b.N
// no-op call(noop) steps, one at a time, against a MemBackend (no storage
// latency), with obs as the engine's observer (nil for none). One op is one
// step; the run's start and end are amortised over up to 1000 steps.
func BenchSequentialCalls(b *testing.B, obs runtime.Observer) {
	// A node's runs have a context that can be cancelled, and cancellable
	// contexts cost each step thread a registration: measure with one.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	bi := builtins.New(builtins.Options{})
	files := map[string]string{"noop.star": NoopRunbook}
	bundle := &runtime.Bundle{Name: "noop", Main: "noop.star", Files: files, Version: runtime.BundleVersion(files)}
	prog, err := runtime.Compile(bundle, bi)
	if err != nil {
		b.Fatal(err)
	}
	eng := &runtime.Engine{Builtins: bi, Observer: obs}
	mem := NewMem()
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; {
		n := min(b.N-done, benchBatch)
		b.StopTimer()
		id, err := mem.Create(ctx, bundle, json.RawMessage(fmt.Sprintf(`{"steps": %d}`, n)))
		if err != nil {
			b.Fatal(err)
		}
		r, err := mem.Claim(ctx, id)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		o := eng.Execute(ctx, prog, r)
		b.StopTimer()
		if o.Status != runtime.StatusCompleted {
			b.Fatalf("execution %s: %s %s %v", id, o.Status, o.Error, o.Err)
		}
		if _, err := mem.Finish(ctx, r, o); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		done += n
	}
}
