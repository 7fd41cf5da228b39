package observe

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/starbook/starbook/api"
	sbruntime "github.com/starbook/starbook/runtime"
)

// Observer is the engine's runtime.Observer: metrics for runs and steps, a
// span per run and per executed step. Metrics and Tracing may each be nil.
type Observer struct {
	Metrics *Metrics
	Tracing *Tracing
	Node    string
}

var _ sbruntime.Observer = (*Observer)(nil)

// StartRun implements runtime.Observer.
func (o *Observer) StartRun(ctx context.Context, r sbruntime.RunInfo) (context.Context, func(sbruntime.RunReport)) {
	e := r.Execution
	var span trace.Span
	if o.Tracing != nil {
		ctx, span = o.Tracing.startRun(ctx, e, r.Recorded, o.Node)
	}
	if m := o.Metrics; m != nil {
		m.running.Inc()
	}
	return ctx, func(rep sbruntime.RunReport) {
		outcome := string(rep.Outcome.Status)
		if outcome == "" {
			outcome = "aborted"
		}
		if m := o.Metrics; m != nil {
			m.running.Dec()
			m.runs.WithLabelValues(label(e.Runbook), outcome).Inc()
			m.replayed.WithLabelValues(label(e.Runbook)).Add(float64(rep.Replayed))
		}
		if span != nil {
			span.SetAttributes(attribute.String("starbook.outcome", outcome),
				attribute.Int("starbook.replayed_steps", rep.Replayed), attribute.Int("starbook.executed_steps", rep.Executed))
			switch {
			case rep.Outcome.Err != nil:
				span.SetStatus(codes.Error, "aborted: "+rep.Outcome.Err.Error())
			case rep.Outcome.Status == sbruntime.StatusFailed || rep.Outcome.Status == sbruntime.StatusStuck:
				span.SetStatus(codes.Error, api.ErrorLine(rep.Outcome.Error))
			}
			span.End()
		}
	}
}

// startRun starts a run's span in the execution's trace: a child of the
// request that created it, else a root with the execution's own trace id.
func (t *Tracing) startRun(ctx context.Context, e *sbruntime.Execution, recorded int, node string) (context.Context, trace.Span) {
	opts := []trace.SpanStartOption{trace.WithAttributes(
		attribute.String("starbook.execution", e.ID),
		attribute.String("starbook.runbook", e.Runbook),
		attribute.String("starbook.version", e.Version),
		attribute.String("starbook.trigger", e.Trigger.Type),
		attribute.String("starbook.node", node),
		attribute.Bool("starbook.replay", recorded > 0),
		attribute.Int("starbook.recorded_events", recorded),
	)}
	parent := trace.SpanContext{}
	if e.TraceParent != "" {
		pctx := propagator.Extract(ctx, propagation.MapCarrier{"traceparent": e.TraceParent})
		if parent = trace.SpanContextFromContext(pctx); parent.IsValid() {
			ctx = pctx
		}
	}
	if !parent.IsValid() {
		tid, err := trace.TraceIDFromHex(e.TraceID())
		if err == nil {
			ctx = context.WithValue(ctx, wantTraceID{}, tid)
		}
		opts = append(opts, trace.WithNewRoot())
	}
	return t.tracer.Start(ctx, "run "+e.Runbook, opts...)
}

// StartStep implements runtime.Observer. A step gets a span when its run's
// span is recorded; a span that no sampler would record is not worth its
// cost on every step, and without it the step's context carries the run's
// span (so its trace id still reaches log lines and outgoing traceparents).
func (o *Observer) StartStep(ctx context.Context, s sbruntime.StepInfo) (context.Context, func(*sbruntime.Event, error)) {
	var span trace.Span
	if o.Tracing != nil && trace.SpanFromContext(ctx).IsRecording() {
		name := s.Kind
		if s.Name != "" {
			name += " " + s.Name
		}
		ctx, span = o.Tracing.tracer.Start(ctx, name, trace.WithAttributes(
			attribute.String("starbook.position", s.Position),
			attribute.String("starbook.kind", s.Kind),
			attribute.String("starbook.step", s.Name)))
		if s.Kind == sbruntime.KindFanOut {
			span.SetAttributes(attribute.Int("starbook.fan_out.items", s.Items))
		}
	}
	m := o.Metrics
	if m == nil && span == nil {
		return ctx, func(*sbruntime.Event, error) {}
	}
	runbook, kind, name, items := s.Execution.Runbook, s.Kind, s.Name, s.Items
	return ctx, func(ev *sbruntime.Event, err error) {
		if m != nil && ev != nil {
			m.stepDone(runbook, kind, name, items, ev)
		}
		if span == nil {
			return
		}
		switch {
		case ev == nil:
			span.SetStatus(codes.Error, "not recorded: "+errText(err))
		case ev.Failed():
			span.SetAttributes(attribute.Int("starbook.attempts", ev.Attempts))
			span.SetStatus(codes.Error, api.ErrorLine(ev.Error))
		default:
			span.SetAttributes(attribute.Int("starbook.attempts", ev.Attempts))
		}
		span.End()
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
