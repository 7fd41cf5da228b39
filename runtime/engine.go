package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	sltime "go.starlark.net/lib/time"
	"go.starlark.net/starlark"
	"go.starlark.net/syntax"
)

// Journal is the durable history of one claimed execution. Every write is
// fenced on the claim: once the claim is lost, writes fail with ErrNotOwner.
type Journal interface {
	// Append records ev at ev.Position; durable on return. It fails with
	// ErrPositionTaken if the position holds an event.
	Append(ctx context.Context, ev *Event) error
	// Wait registers w (and its timer, if it has a deadline); durable on
	// return. If the wait is satisfied at once (a signal sent before the
	// script reached it), the journal records the event at w.Position instead
	// and returns it.
	Wait(ctx context.Context, w *Wait) (*Event, error)
	// SetStatus records a non-terminal status change, such as compensating.
	SetStatus(ctx context.Context, s Status) error
}

// Limits bound what one execution may do. Zero fields take the defaults.
type Limits struct {
	MaxSteps             uint64 `json:"max_starlark_steps"`      // Starlark steps per run, replay included
	MaxResultBytes       int    `json:"max_result_bytes"`        // encoded size of one step result
	MaxHistory           int    `json:"max_history"`             // events per execution
	MaxFanOutItems       int    `json:"max_fan_out_items"`       // items of one fan_out
	MaxFanOutConcurrency int    `json:"max_fan_out_concurrency"` // parallel items of one fan_out
}

// MaxResultBytesCap is the largest MaxResultBytes a node accepts: a step
// event must stay well under etcd's 1.5 MiB request limit.
const MaxResultBytesCap = 1 << 20

// Validate reports a limit that cannot work.
func (l Limits) Validate() error {
	if l.MaxResultBytes > MaxResultBytesCap {
		return fmt.Errorf("max_result_bytes %d is over %d: etcd refuses requests over 1.5 MiB", l.MaxResultBytes, MaxResultBytesCap)
	}
	return nil
}

// DefaultLimits are the limits a node applies unless configured otherwise.
var DefaultLimits = Limits{
	MaxSteps:             50_000_000,
	MaxResultBytes:       512 << 10,
	MaxHistory:           100_000,
	MaxFanOutItems:       10_000,
	MaxFanOutConcurrency: 200,
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits
	if l.MaxSteps > 0 {
		d.MaxSteps = l.MaxSteps
	}
	if l.MaxResultBytes > 0 {
		d.MaxResultBytes = l.MaxResultBytes
	}
	if l.MaxHistory > 0 {
		d.MaxHistory = l.MaxHistory
	}
	if l.MaxFanOutItems > 0 {
		d.MaxFanOutItems = l.MaxFanOutItems
	}
	if l.MaxFanOutConcurrency > 0 {
		d.MaxFanOutConcurrency = l.MaxFanOutConcurrency
	}
	return d
}

// Engine runs executions by replay. It is safe for concurrent use.
type Engine struct {
	Builtins starlark.StringDict // predeclared names, from package builtins
	Limits   Limits
	Now      func() time.Time // the clock; time.Now when nil
	// Sleep waits d between a step's attempts (retry backoff), or until ctx
	// is done; a real timer when nil. Offline runs advance a virtual clock.
	Sleep    func(ctx context.Context, d time.Duration) error
	Logger   *slog.Logger
	Observer Observer // metrics and traces; nil for none
}

// Run is one attempt to run an execution: its record, the history loaded at
// claim time, its pending waits and the journal fenced on the claim.
type Run struct {
	Execution *Execution
	History   map[string]*Event
	Waits     map[string]*Wait
	Journal   Journal
	// Drain, when closed, stops the run before its next step starts (steps in
	// flight finish and are recorded); the outcome is then an abort.
	Drain <-chan struct{}
	// DeferCheckpoint lets the engine hold a main-thread step's event while
	// the script computes, for at most a few milliseconds, so that it goes
	// with the run's next write: it is appended before the next step starts
	// or a wait registers, or returned in Outcome.Checkpoint when the run
	// ends first, and the caller records it with the outcome. A run whose
	// last step is followed only by computing then ends in one write, not two.
	DeferCheckpoint bool
	// Gate, when set, admits each new step (budgets); nil admits all.
	Gate Gate
	// Policy, when set, is asked before each effect of a new step; nil
	// allows all.
	Policy Policy
}

// Outcome is how a run ended. Status is empty when the run was aborted (claim
// lost, node stopping, storage failing): nothing is to be written and the
// execution stays runnable; Err says why.
type Outcome struct {
	Status Status
	Result json.RawMessage
	Error  string
	Err    error
	// Divergence is why a stuck run is stuck.
	Divergence *NondeterminismError
	// Checkpoint is a step's event not yet in the journal (Run.DeferCheckpoint):
	// the caller records it with the outcome, aborted or not.
	Checkpoint *Event
}

// run is the state shared by every thread of one run.
type run struct {
	ctx     context.Context
	engine  *Engine
	limits  Limits
	exec    *Execution
	history map[string]*Event
	waits   map[string]*Wait
	journal Journal
	gate    Gate   // nil: every step is admitted
	policy  Policy // nil: every effect is allowed
	doneMu  sync.Mutex
	done    []*Event // recorded by this run, kept only with a policy (historySoFar)
	// sorted is history and done[:sortedDone] in position order (historySoFar).
	sorted     []*Event
	sortedDone int
	drain      <-chan struct{}
	logger     *slog.Logger
	secrets    Scrubber
	events     atomic.Int64 // history length, for MaxHistory
	obs        *observed
	mainAt     string // file:line:col of main, for errors about what it returned

	mu    sync.Mutex
	undos []undo

	deferCheckpoint bool        // Run.DeferCheckpoint
	heldMu          sync.Mutex  // held and heldTimer; held while recording
	held            *Event      // a step's event not yet recorded (see hold)
	heldTimer       *time.Timer // flushes held after checkpointHold

	sitesMu sync.Mutex
	sites   map[syntax.Position]string // call sites, as callSite renders them
}

type undo struct {
	position string
	run      func(th *starlark.Thread) error
	where    string // file:line of the compensate() that registered it
}

// frame is a thread's place in the execution: the position prefix its durable
// calls get and the count so far. Step threads carry the step they run.
type frame struct {
	run    *run
	ctx    context.Context // the run's, or a fan_out item's
	prefix string
	next   int
	step   *StepContext
	logs   int // log lines since the latest durable call, outside steps
}

const frameKey = "starbook.frame"

func frameOf(th *starlark.Thread) *frame {
	f, _ := th.Local(frameKey).(*frame)
	return f
}

func (e *Engine) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

// Execute runs r's execution of prog from the top against its history until it
// completes, fails, parks on a wait, gets stuck or is aborted. Every step it
// performs is durable when Execute returns, but the one it may leave in
// Outcome.Checkpoint (Run.DeferCheckpoint). Cancel ctx with cause ErrCancelled
// to cancel the execution; any other cancellation aborts the run.
func (e *Engine) Execute(ctx context.Context, prog *Program, r *Run) Outcome {
	logger := e.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ctx, obs, runDone := e.startRun(ctx, r)
	rs := &run{
		ctx: ctx, engine: e, limits: e.Limits.withDefaults(), exec: r.Execution,
		history: r.History, waits: r.Waits, journal: r.Journal, gate: r.Gate, policy: r.Policy, drain: r.Drain, obs: obs, deferCheckpoint: r.DeferCheckpoint,
		logger: logger.With("execution", r.Execution.ID, "runbook", r.Execution.Runbook, "trace_id", r.Execution.TraceID()),
	}
	if rs.history == nil {
		rs.history = map[string]*Event{}
	}
	if rs.waits == nil {
		rs.waits = map[string]*Wait{}
	}
	rs.events.Store(int64(len(rs.history)))
	main := &frame{run: rs, ctx: ctx}
	th := rs.newThread("main", main)
	stop := context.AfterFunc(ctx, func() { th.Cancel("run stopped") })
	defer stop()

	value, err := rs.callMain(th, prog)
	out := rs.finish(th, main, value, err)
	out.Checkpoint = rs.takeHeld()
	runDone(out)
	return out
}

// newThread returns a thread for f with the run's limits, logging and loader.
func (rs *run) newThread(name string, f *frame) *starlark.Thread {
	th := &starlark.Thread{Name: name}
	th.SetLocal(frameKey, f)
	th.SetMaxExecutionSteps(rs.limits.MaxSteps)
	th.Print = func(th *starlark.Thread, msg string) { Log(th, slog.LevelInfo, msg) }
	sltime.SetNow(th, func() (time.Time, error) {
		return time.Time{}, errors.New("time.now() would make replay nondeterministic: use now(), a durable step")
	})
	return th
}

func (rs *run) callMain(th *starlark.Thread, prog *Program) (starlark.Value, error) {
	modules := map[string]starlark.StringDict{}
	var loading []string
	var load func(th *starlark.Thread, from, file string) (starlark.StringDict, error)
	load = func(th *starlark.Thread, from, file string) (starlark.StringDict, error) {
		if g, ok := modules[file]; ok {
			if g == nil {
				return nil, fmt.Errorf("load cycle: %s", strings.Join(append(loading, file), " -> "))
			}
			return g, nil
		}
		p, ok := prog.files[file]
		if !ok {
			return nil, fmt.Errorf("load %s: not in runbook %s", file, prog.Bundle.Name)
		}
		modules[file] = nil
		loading = append(loading, file)
		mt := &starlark.Thread{Name: "load " + file}
		mt.SetMaxExecutionSteps(rs.limits.MaxSteps)
		// A secret read at top level is scrubbed like one read in main.
		mt.SetLocal(scrubberKey, &rs.secrets)
		sltime.SetNow(mt, func() (time.Time, error) {
			return time.Time{}, errors.New("time.now() at top level would make replay nondeterministic: use now() in main")
		})
		mt.Print = func(_ *starlark.Thread, msg string) { rs.logger.Debug(rs.secrets.Scrub(msg), "top_level", file) }
		mt.Load = func(t *starlark.Thread, module string) (starlark.StringDict, error) {
			name, err := ResolveLoad(file, module, prog.Bundle.Files)
			if err != nil {
				return nil, err
			}
			return load(t, file, name)
		}
		g, err := p.Init(mt, rs.engine.Builtins)
		loading = loading[:len(loading)-1]
		if err != nil {
			return nil, err
		}
		g.Freeze()
		modules[file] = g
		return g, nil
	}
	globals, err := load(th, "", prog.Bundle.Main)
	if err != nil {
		return nil, err
	}
	mainFn, ok := globals["main"].(starlark.Callable)
	if !ok {
		return nil, fmt.Errorf("%s: no main(event) function", prog.Bundle.Main)
	}
	rs.mainAt = prog.Bundle.Main
	if fn, ok := mainFn.(*starlark.Function); ok {
		rs.mainAt = fn.Position().String()
	}
	input, err := Decode(rs.exec.Input)
	if err != nil {
		return nil, fmt.Errorf("execution input: %w", err)
	}
	return starlark.Call(th, mainFn, starlark.Tuple{input}, nil)
}

// finish turns main's return into an outcome, running compensations on failure.
func (rs *run) finish(th *starlark.Thread, main *frame, value starlark.Value, err error) Outcome {
	if cause := context.Cause(rs.ctx); cause != nil {
		if errors.Is(cause, ErrCancelled) {
			return Outcome{Status: StatusCancelled, Error: "cancelled"}
		}
		return Outcome{Err: cause}
	}
	var nd *NondeterminismError
	switch {
	case err == nil:
		data, encErr := Encode(value)
		if encErr != nil {
			err = fmt.Errorf("main (%s) returned a value that cannot be stored: %w", rs.mainAt, encErr)
			break
		}
		return Outcome{Status: StatusCompleted, Result: json.RawMessage(rs.secrets.Scrub(string(data)))}
	case errors.Is(err, ErrSuspended):
		return Outcome{Status: StatusWaiting}
	case errors.As(err, &nd):
		return Outcome{Status: StatusStuck, Error: nd.Report(), Divergence: nd}
	case errors.Is(err, ErrNotOwner), errors.Is(err, ErrStore), errors.Is(err, ErrStopping):
		return Outcome{Err: err}
	}
	msg := rs.secrets.Scrub(describe(err, rs.limits))
	if undoErr := rs.compensate(main); undoErr != nil {
		if o, aborted := rs.aborted(undoErr); aborted {
			return o
		}
		return Outcome{Status: StatusFailed, Error: "compensation_failed: " +
			rs.secrets.Scrub(describe(undoErr, rs.limits)) + "\noriginal error: " + msg}
	}
	return Outcome{Status: StatusFailed, Error: msg}
}

func (rs *run) aborted(err error) (Outcome, bool) {
	if cause := context.Cause(rs.ctx); cause != nil {
		if errors.Is(cause, ErrCancelled) {
			return Outcome{Status: StatusCancelled, Error: "cancelled"}, true
		}
		return Outcome{Err: cause}, true
	}
	var nd *NondeterminismError
	if errors.As(err, &nd) {
		return Outcome{Status: StatusStuck, Error: nd.Report(), Divergence: nd}, true
	}
	if errors.Is(err, ErrNotOwner) || errors.Is(err, ErrStore) || errors.Is(err, ErrSuspended) || errors.Is(err, ErrStopping) {
		return Outcome{Err: err}, true
	}
	return Outcome{}, false
}

// compensate runs the registered undos last-in first-out, each a durable step
// continuing the main thread's positions. It stops at the first failing undo.
func (rs *run) compensate(main *frame) error {
	rs.mu.Lock()
	undos := append([]undo(nil), rs.undos...)
	rs.mu.Unlock()
	if len(undos) == 0 {
		return nil
	}
	sort.SliceStable(undos, func(i, j int) bool { return ComparePositions(undos[i].position, undos[j].position) > 0 })
	if err := rs.flushHeld(); err != nil {
		return err
	}
	if err := rs.journal.SetStatus(rs.ctx, StatusCompensating); err != nil {
		return wrapStore(err)
	}
	th := rs.newThread("compensate", main)
	stop := context.AfterFunc(rs.ctx, func() { th.Cancel("run stopped") })
	defer stop()
	for _, u := range undos {
		if err := u.run(th); err != nil {
			if u.where != "" {
				return fmt.Errorf("compensate() at %s: %w", u.where, err)
			}
			return err
		}
	}
	return nil
}

// describe renders a script error with its Starlark backtrace and names the
// step budget when that is what stopped it.
func describe(err error, limits Limits) string {
	var ee *starlark.EvalError
	if errors.As(err, &ee) {
		if strings.Contains(ee.Msg, "too many steps") {
			return (&LimitError{Limit: "max_starlark_steps", Msg: fmt.Sprintf(
				"step budget exceeded: the runbook ran more than %d Starlark steps (an endless loop?)", limits.MaxSteps)}).Error() +
				"\n" + ee.Backtrace()
		}
		return ee.Backtrace()
	}
	return err.Error()
}
