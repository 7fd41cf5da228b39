// Package observe makes a node visible: Prometheus metrics on its own
// registry, OpenTelemetry traces configured by the standard OTEL_* variables,
// and slog lines that carry trace ids.
//
// It adapts the engine's [runtime.Observer] hooks (runs and steps), the
// etcd client (request latency and errors) and the store's change watch
// (execution outcomes, approval latency) into metrics and spans. runtime
// itself imports neither Prometheus nor OpenTelemetry. It reads storage
// only through the interfaces it defines (Store, RolloutSource), which
// *cluster.Store implements: observe imports no cluster.
//
// Which node counts what: series about work a node does (runs, steps, etcd
// requests, leadership) come from every node; cluster-wide series (executions
// started and ended, waits, queue depth, claims, approval latency) come from
// the leader alone, so that summing over nodes counts each once. A new
// leader's counters start where it took over.
//
// Traces: every run of an execution is a span ("run <runbook>") and every
// step it executes a child span, when the run's span is recorded; runs that replay history carry
// starbook.replay=true and the number of replayed steps. All runs of one
// execution share a trace id ([runtime.Execution.TraceID]): the one of the
// request that started it, or one derived from its id. Outgoing http.* calls
// carry a W3C traceparent; incoming requests' traceparent is honoured.
package observe
