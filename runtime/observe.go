package runtime

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"go.starlark.net/starlark"
	"go.starlark.net/syntax"
)

// Observer watches an engine's runs and steps: metrics and traces hang off it
// (package observe implements it with Prometheus and OpenTelemetry). Its
// methods run on the run's goroutines, so they must be quick and not block.
type Observer interface {
	// StartRun is called as a run starts. The context it returns becomes the
	// run's (a tracer puts its span in it); end is called once with the report.
	StartRun(ctx context.Context, r RunInfo) (_ context.Context, end func(RunReport))
	// StartStep is called before a step's work runs; never for a step that
	// replay returns from history. The context it returns is the step's.
	// end is called once, with the recorded event, or with the error that
	// stopped the step before it was recorded.
	StartStep(ctx context.Context, s StepInfo) (_ context.Context, end func(*Event, error))
}

// RunInfo describes a run that starts.
type RunInfo struct {
	Execution *Execution
	Recorded  int // events in the history at the start: > 0 means a replay
}

// RunReport is how a run ended.
type RunReport struct {
	Outcome  Outcome
	Replayed int // durable calls answered from history
	Executed int // steps run and recorded by this run
}

// StepInfo describes a step about to run.
type StepInfo struct {
	Execution *Execution
	Position  string
	Kind      string
	Name      string
	Items     int // fan_out: the number of items
}

// LogWriter is implemented by a Journal that keeps the lines an execution
// logs next to its history. A line is identified by (After, Index), the same
// on every run, so a line written again after a crash is stored once.
type LogWriter interface {
	// WriteLog stores l unless a line with its identity is stored.
	WriteLog(ctx context.Context, l *LogLine) error
}

// LogLine is one line an execution logged with log() or print().
type LogLine struct {
	// Seq orders the lines of an execution; set by the store.
	Seq       int64     `json:"seq"`
	Execution string    `json:"execution"`
	Time      time.Time `json:"time"`
	Level     string    `json:"level"`
	Msg       string    `json:"msg"`
	// Position is the durable call the line follows in its thread (the step it
	// runs in, inside a step); "0" before the first, "4/1/0" at the start of
	// fan_out item 1 of call 4.
	Position string            `json:"position"`
	Index    int               `json:"index"` // the line's number after Position, from 1
	Attrs    map[string]string `json:"attrs,omitempty"`
}

// Key is the line's identity within its execution: Position and Index.
func (l *LogLine) Key() string { return fmt.Sprintf("%s#%d", l.Position, l.Index) }

// TraceID returns the W3C trace id (32 hex digits) of e's runs: the one of
// e.TraceParent if set, else one derived from e's id, so that every run of
// an execution, on any node, belongs to one trace and log lines name it
// whether or not traces are exported.
func (e *Execution) TraceID() string {
	// traceparent: version "-" trace-id "-" parent-id "-" flags
	if parts := strings.Split(e.TraceParent, "-"); len(parts) == 4 && len(parts[1]) == 32 &&
		parts[1] != strings.Repeat("0", 32) {
		if _, err := hex.DecodeString(parts[1]); err == nil {
			return strings.ToLower(parts[1])
		}
	}
	sum := sha256.Sum256([]byte("starbook/" + e.ID))
	return hex.EncodeToString(sum[:16])
}

// observed is a run's view of its engine's observer: the calls are no-ops
// when the engine has none.
type observed struct {
	o        Observer
	replayed atomic.Int64
	executed atomic.Int64
}

func (e *Engine) startRun(ctx context.Context, r *Run) (context.Context, *observed, func(Outcome)) {
	ob := &observed{o: e.Observer}
	if ob.o == nil {
		return ctx, ob, func(Outcome) {}
	}
	ctx, end := ob.o.StartRun(ctx, RunInfo{Execution: r.Execution, Recorded: len(r.History)})
	return ctx, ob, func(o Outcome) {
		end(RunReport{Outcome: o, Replayed: int(ob.replayed.Load()), Executed: int(ob.executed.Load())})
	}
}

func (rs *run) startStep(ctx context.Context, pos string, spec StepSpec) (context.Context, func(*Event, error)) {
	if rs.obs.o == nil {
		return ctx, func(*Event, error) {}
	}
	info := StepInfo{Execution: rs.exec, Position: pos, Kind: spec.Kind, Name: spec.Name}
	if spec.Kind == KindFanOut && len(spec.Args) > 0 {
		if items, ok := spec.Args[0].(starlark.Sequence); ok {
			info.Items = items.Len()
		}
	}
	ctx, end := rs.obs.o.StartStep(ctx, info)
	return ctx, func(ev *Event, err error) {
		if ev != nil {
			rs.obs.executed.Add(1)
		}
		end(ev, err)
	}
}

// storeLog keeps a log() line in the journal's log, if it keeps one.
func (f *frame) storeLog(level slog.Level, msg, pos string, attrs []any) {
	lw, ok := f.run.journal.(LogWriter)
	if !ok {
		return
	}
	var index int
	if f.step != nil {
		index = int(f.step.logs.Add(1))
	} else {
		f.logs++
		index = f.logs
	}
	l := &LogLine{Execution: f.run.exec.ID, Time: f.run.engine.now().UTC(), Level: level.String(),
		Msg: msg, Position: pos, Index: index}
	for i := 0; i+1 < len(attrs); i += 2 {
		if l.Attrs == nil {
			l.Attrs = map[string]string{}
		}
		l.Attrs[f.run.secrets.Scrub(fmt.Sprint(attrs[i]))] = f.run.secrets.Scrub(fmt.Sprint(attrs[i+1]))
	}
	if err := lw.WriteLog(f.run.ctx, l); err != nil && f.run.ctx.Err() == nil {
		f.run.logger.Warn("store log line", "position", pos, "err", err)
	}
}

// callSite is the file:line:col of the Starlark call to the durable built-in
// running in th.
func callSite(th *starlark.Thread) string {
	if th.CallStackDepth() < 2 {
		return ""
	}
	return th.CallFrame(1).Pos.String() // frame 0 is the durable built-in itself
}

// callSite is callSite(th), remembered per call site: every step records
// where it was called, and a loop calls from one place many times.
func (rs *run) callSite(th *starlark.Thread) string {
	if th.CallStackDepth() < 2 {
		return ""
	}
	pos := th.CallFrame(1).Pos
	rs.sitesMu.Lock()
	defer rs.sitesMu.Unlock()
	s, ok := rs.sites[pos]
	if !ok {
		if rs.sites == nil {
			rs.sites = map[syntax.Position]string{}
		}
		s = pos.String()
		rs.sites[pos] = s
	}
	return s
}
