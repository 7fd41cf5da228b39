package observe

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Tracing creates the spans of one node. Without an exporter it still gives
// spans valid ids (not sampled, not recorded), so trace ids reach logs and
// outgoing traceparent headers either way.
type Tracing struct {
	provider  *sdktrace.TracerProvider
	tracer    trace.Tracer
	exporting bool
}

// propagator reads and writes W3C traceparent headers.
var propagator = propagation.TraceContext{}

// NewTracing returns the tracing of node; opts add span processors (an
// exporter's batcher, a test's recorder). With none, nothing is exported.
func NewTracing(node string, res *resource.Resource, opts ...sdktrace.TracerProviderOption) *Tracing {
	all := []sdktrace.TracerProviderOption{sdktrace.WithIDGenerator(idGenerator{})}
	if res != nil {
		all = append(all, sdktrace.WithResource(res))
	}
	if len(opts) == 0 {
		// Follow a sampled caller (its trace must not get holes), create
		// nothing that is recorded otherwise.
		all = append(all, sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.NeverSample())))
	}
	p := sdktrace.NewTracerProvider(append(all, opts...)...)
	return &Tracing{provider: p, tracer: p.Tracer("github.com/starbook/starbook"), exporting: len(opts) > 0}
}

// TracingFromEnv configures tracing from the standard variables: traces are
// exported when OTEL_TRACES_EXPORTER is otlp (OTLP over HTTP, or gRPC when
// OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL is grpc) or console (stderr), or when it
// is unset and OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
// is set. The exporter reads its own OTEL_EXPORTER_OTLP_* settings; the
// sampler is OTEL_TRACES_SAMPLER's; OTEL_SERVICE_NAME defaults to starbook.
func TracingFromEnv(ctx context.Context, node string) (*Tracing, error) {
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", "starbook"), attribute.String("service.instance.id", node)),
		resource.WithFromEnv(), resource.WithTelemetrySDK())
	if err != nil {
		return nil, fmt.Errorf("tracing resource: %w", err)
	}
	kind := strings.ToLower(strings.TrimSpace(os.Getenv("OTEL_TRACES_EXPORTER")))
	if kind == "" && (os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "") {
		kind = "otlp"
	}
	var exp sdktrace.SpanExporter
	switch kind {
	case "", "none":
		return NewTracing(node, res), nil
	case "otlp":
		protocol := os.Getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
		if protocol == "" {
			protocol = os.Getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
		}
		switch protocol {
		case "", "http/protobuf":
			exp, err = otlptracehttp.New(ctx)
		case "grpc":
			exp, err = otlptracegrpc.New(ctx)
		default:
			return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL=%s: want http/protobuf or grpc", protocol)
		}
	case "console":
		exp, err = stdouttrace.New(stdouttrace.WithWriter(os.Stderr))
	default:
		return nil, fmt.Errorf("OTEL_TRACES_EXPORTER=%s: want otlp, console or none", kind)
	}
	if err != nil {
		return nil, fmt.Errorf("trace exporter %s: %w", kind, err)
	}
	return NewTracing(node, res, sdktrace.WithBatcher(exp)), nil
}

// Exporting reports whether spans leave the node.
func (t *Tracing) Exporting() bool { return t.exporting }

// Shutdown flushes and stops the exporter.
func (t *Tracing) Shutdown(ctx context.Context) error { return t.provider.Shutdown(ctx) }

// Tracer returns the node's tracer.
func (t *Tracing) Tracer() trace.Tracer { return t.tracer }

// wantTraceID carries the trace id a new root span must get.
type wantTraceID struct{}

// idGenerator gives a root span the trace id its context asks for (every run
// of an execution shares one), random ids otherwise.
type idGenerator struct{}

func (g idGenerator) NewIDs(ctx context.Context) (trace.TraceID, trace.SpanID) {
	tid, ok := ctx.Value(wantTraceID{}).(trace.TraceID)
	for !ok || !tid.IsValid() {
		_, _ = rand.Read(tid[:])
		ok = true
	}
	return tid, g.NewSpanID(ctx, tid)
}

func (idGenerator) NewSpanID(context.Context, trace.TraceID) trace.SpanID {
	var sid trace.SpanID
	for !sid.IsValid() {
		_, _ = rand.Read(sid[:])
	}
	return sid
}

// Inject writes ctx's span as a W3C traceparent into h (unless h has one).
func Inject(ctx context.Context, h http.Header) {
	if h.Get("traceparent") == "" {
		propagator.Inject(ctx, propagation.HeaderCarrier(h))
	}
}

// Middleware continues the trace of an incoming request's traceparent (the
// hooks and the API) with a server span; executions created under it record
// it, so their runs join the caller's trace.
func (t *Tracing) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := propagator.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		p := r.URL.Path
		if !strings.HasPrefix(p, "/api/") && !strings.HasPrefix(p, "/hooks/") && !strings.HasPrefix(p, "/slack/") {
			next.ServeHTTP(w, r.WithContext(ctx)) // metrics, UI assets, health: no span
			return
		}
		ctx, span := t.tracer.Start(ctx, "HTTP "+r.Method, trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(attribute.String("http.request.method", r.Method), attribute.String("url.path", p)))
		defer span.End()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sw, r.WithContext(ctx))
		span.SetAttributes(attribute.Int("http.response.status_code", sw.status))
		if sw.status >= 500 {
			span.SetStatus(codes.Error, http.StatusText(sw.status))
		}
	})
}

// statusWriter remembers the status; Unwrap lets http.ResponseController
// reach the Flusher of the writer it wraps (log streams flush).
type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// LogHandler wraps h so that every line logged with a context that holds a
// span carries its trace_id and span_id (lines about an execution carry the
// execution's trace_id already; they get the span_id).
func LogHandler(h slog.Handler) slog.Handler { return &traceHandler{h: h} }

type traceHandler struct {
	h        slog.Handler
	hasTrace bool
}

func (t *traceHandler) Enabled(ctx context.Context, l slog.Level) bool { return t.h.Enabled(ctx, l) }

func (t *traceHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		if !t.hasTrace {
			r.AddAttrs(slog.String("trace_id", sc.TraceID().String()))
		}
		r.AddAttrs(slog.String("span_id", sc.SpanID().String()))
	}
	return t.h.Handle(ctx, r)
}

func (t *traceHandler) WithAttrs(as []slog.Attr) slog.Handler {
	has := t.hasTrace
	for _, a := range as {
		has = has || a.Key == "trace_id"
	}
	return &traceHandler{h: t.h.WithAttrs(as), hasTrace: has}
}

func (t *traceHandler) WithGroup(name string) slog.Handler {
	return &traceHandler{h: t.h.WithGroup(name), hasTrace: t.hasTrace}
}
