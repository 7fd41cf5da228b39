package observe

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/starbook/starbook/builtins"
	"github.com/starbook/starbook/cluster"
	"github.com/starbook/starbook/node"
	sbruntime "github.com/starbook/starbook/runtime"
	"github.com/starbook/starbook/service"
)

// TestChildSpansUnderParentStep: a child runbook's run is traced in its
// parent's trace, under the parent's run_runbook step.
func TestChildSpansUnderParentStep(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	emb, err := cluster.StartEmbedded(ctx, cluster.EmbeddedConfig{Dir: t.TempDir(), Fast: true, NoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Close()
	rec := tracetest.NewSpanRecorder()
	tracing := NewTracing("n1", nil, sdktrace.WithSpanProcessor(rec))
	var starter atomic.Pointer[service.Service]
	bi := builtins.New(builtins.Options{Runbooks: builtins.RunbookStarterFunc(func(ctx context.Context, c builtins.ChildRequest) (string, error) {
		return starter.Load().StartChild(ctx, c)
	})})
	store := cluster.NewStore(emb.Client, "/c/")
	defer store.Close()
	worker, err := node.New(ctx, store, node.Config{ID: "n1", Builtins: bi, SessionTTL: 2 * time.Second,
		StopGrace: time.Second, Observer: &Observer{Metrics: NewMetrics(), Tracing: tracing, Node: "n1"},
		LeaderTasks: []func(context.Context){store.ChildEndsTask(20*time.Millisecond, nil)}})
	if err != nil {
		t.Fatal(err)
	}
	nodeCtx, stopNode := context.WithCancel(ctx)
	nodeDone := make(chan error, 1)
	go func() { nodeDone <- worker.Run(nodeCtx) }()
	defer func() { stopNode(); <-nodeDone }()
	svc := service.New(store, bi)
	starter.Store(svc)
	if _, err := svc.Apply(ctx, map[string]string{
		"up.star":   "def main(event):\n    return run_runbook(\"down\")\n",
		"down.star": "def main(event):\n    return call(lambda: \"deep\")\n",
	}); err != nil {
		t.Fatal(err)
	}
	e, err := svc.Start(ctx, "up", nil, sbruntime.Trigger{Type: "manual"})
	if err != nil {
		t.Fatal(err)
	}
	if end, err := svc.AwaitEnd(ctx, e.ID); err != nil || end.Status != sbruntime.StatusCompleted || string(end.Result) != `"deep"` {
		t.Fatalf("parent: %+v, %v", end, err)
	}
	var step, childRun sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		switch {
		case s.Name() == "call run_runbook":
			step = s
		case s.Name() == "run down" && childRun == nil:
			childRun = s
		}
	}
	if step == nil || childRun == nil {
		var names []string
		for _, s := range rec.Ended() {
			names = append(names, s.Name())
		}
		t.Fatalf("spans %s: want the parent's run_runbook step and the child's run", strings.Join(names, ", "))
	}
	if childRun.SpanContext().TraceID() != step.SpanContext().TraceID() || childRun.Parent().SpanID() != step.SpanContext().SpanID() {
		t.Errorf("the child's run is in trace %s under %s, want trace %s under the step %s",
			childRun.SpanContext().TraceID(), childRun.Parent().SpanID(), step.SpanContext().TraceID(), step.SpanContext().SpanID())
	}
}
