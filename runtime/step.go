package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"go.starlark.net/starlark"
)

// StepSpec names a durable call for recording and for the determinism check.
type StepSpec struct {
	Kind   string
	Name   string
	Args   starlark.Tuple
	Kwargs []starlark.Tuple
	// Items is a fan_out's item count: recorded with its event and counted
	// by budgets before it starts.
	Items int
}

// StepContext is what a step's work sees: its context, position and
// idempotency key, and the ways to start threads under it.
type StepContext struct {
	Ctx      context.Context
	Position string
	Key      string // idempotency key: <execution>/<position>
	Attempts int    // set by the step function when it retries
	run      *run
	logs     atomic.Int64 // log lines written by the step's threads
	http     atomic.Int64 // HTTP requests sent; see CountHTTP
}

// CountHTTP counts one HTTP request the step sent (each retry is one):
// recorded with its event, for usage and budgets.
func (sc *StepContext) CountHTTP() { sc.http.Add(1) }

// StepFunc performs a step whose position has no recorded event. Its result
// is encoded, checkpointed and decoded before the script sees it.
type StepFunc func(sc *StepContext) (starlark.Value, error)

// Step is the one gate every durable built-in goes through. It assigns th's
// next position; if history holds an event there it checks that the event was
// made by the same call and returns its result (or raises its error) with no
// side effect. Otherwise it runs fn, appends the outcome to the journal and
// returns it. A failed step is recorded and raised as a *StepError. With
// Run.DeferCheckpoint, a main-thread step's event is held until the run's
// next write (see hold) rather than appended at once.
func Step(th *starlark.Thread, spec StepSpec, fn StepFunc) (starlark.Value, error) {
	f, pos, err := nextPosition(th, spec.Kind)
	if err != nil {
		return nil, err
	}
	rs := f.run
	spec.Name = rs.secrets.Scrub(spec.Name) // it is stored, logged and a metric label
	hash := ArgsHash(spec.Kind, spec.Name, spec.Args, spec.Kwargs)
	if ev, ok := rs.history[pos]; ok {
		if err := match(th, pos, ev.Kind, ev.Name, ev.ArgsHash, spec, hash, CodeMismatch); err != nil {
			return nil, err
		}
		rs.obs.replayed.Add(1)
		return eventValue(ev)
	}
	if w, ok := rs.waits[pos]; ok {
		return nil, match(th, pos, w.Kind, w.Name, w.ArgsHash, spec, hash, CodeWaitMismatch)
	}
	if spec.Kind != KindUndo && rs.events.Load() >= int64(rs.limits.MaxHistory) {
		return nil, &LimitError{Limit: "max_history", Msg: fmt.Sprintf("history is full: %d events", rs.limits.MaxHistory)}
	}

	if err := rs.flushHeld(); err != nil {
		return nil, err // the previous step's event: record it before this step starts
	}
	if rs.draining() {
		return nil, ErrStopping
	}
	if cause := context.Cause(f.ctx); cause != nil {
		return nil, cause // the run or the fan_out item was stopped: start nothing
	}
	if rs.gate != nil {
		refused, err := rs.admit(f, pos, rs.callSite(th), spec, hash, rs.deferCheckpoint && f.prefix == "")
		if err != nil {
			return nil, err
		}
		if refused != nil {
			return eventValue(refused)
		}
	}
	stepCtx, stepDone := rs.startStep(f.ctx, pos, spec)
	sc := &StepContext{Ctx: stepCtx, Position: pos, Key: IdempotencyKey(rs.exec.ID, pos), run: rs}
	started := rs.engine.now()
	value, runErr := fn(sc)
	if runErr != nil && abort(runErr) {
		stepDone(nil, runErr)
		return nil, runErr
	}
	if cause := context.Cause(f.ctx); cause != nil {
		// The run or the fan_out item was stopped while the step ran: record nothing.
		stepDone(nil, cause)
		return nil, cause
	}
	ev := &Event{Position: pos, Kind: spec.Kind, Name: spec.Name, ArgsHash: hash,
		Attempts: sc.Attempts, HTTPCalls: int(sc.http.Load()), StartedAt: started, EndedAt: rs.engine.now(), Where: rs.callSite(th),
		Attempt: stamp(rs.exec.Attempt())}
	if spec.Kind == KindFanOut {
		ev.Items = spec.Items
	}
	if runErr == nil {
		data, encErr := Encode(value)
		switch {
		case encErr != nil:
			runErr = fmt.Errorf("%s result: %w", spec.Kind, encErr)
		case len(data) > rs.limits.MaxResultBytes:
			runErr = &LimitError{Limit: "max_result_bytes", Msg: fmt.Sprintf(
				"step result is %d bytes, over the %d-byte limit", len(data), rs.limits.MaxResultBytes)}
		default:
			ev.Result = rs.secrets.scrubJSON(data)
		}
	}
	if runErr != nil {
		ev.Error = truncate(rs.secrets.Scrub(errorText(runErr)), maxErrorBytes)
	}
	if rs.gate != nil {
		rs.gate.Spent(ev)
	}
	if rs.deferCheckpoint && f.prefix == "" {
		rs.hold(ev) // recorded with the run's next write
	} else if err := rs.record(ev); err != nil {
		stepDone(nil, err)
		return nil, err
	}
	rs.events.Add(1)
	rs.remember(ev)
	stepDone(ev, nil)
	return eventValue(ev)
}

// WaitSpec describes a durable wait.
type WaitSpec struct {
	StepSpec
	Timeout time.Duration // 0: no timer
	// OnTimeout is the result the timer records. Like TimeoutError it is
	// kept on the wait only when Timeout > 0: without a deadline nothing
	// reads it.
	OnTimeout json.RawMessage
	// TimeoutError, when set, is recorded as the wait's error at the deadline.
	TimeoutError string
	Detail       json.RawMessage
}

// Await is the gate for waits. If th's next position holds an event (the wait
// was resolved) it returns the recorded value; otherwise it registers the wait
// once, durably, and returns ErrSuspended so the execution parks.
func Await(th *starlark.Thread, spec WaitSpec) (starlark.Value, error) {
	f, pos, err := nextPosition(th, spec.Kind)
	if err != nil {
		return nil, err
	}
	rs := f.run
	// Everything a wait stores is shown (UI, Slack): scrub it like a result.
	spec.Name = rs.secrets.Scrub(spec.Name)
	spec.TimeoutError = rs.secrets.Scrub(spec.TimeoutError)
	if len(spec.Detail) > 0 {
		spec.Detail = json.RawMessage(rs.secrets.Scrub(string(spec.Detail)))
	}
	if len(spec.OnTimeout) > 0 {
		spec.OnTimeout = json.RawMessage(rs.secrets.Scrub(string(spec.OnTimeout)))
	}
	hash := ArgsHash(spec.Kind, spec.Name, spec.Args, spec.Kwargs)
	if ev, ok := rs.history[pos]; ok {
		if err := match(th, pos, ev.Kind, ev.Name, ev.ArgsHash, spec.StepSpec, hash, CodeMismatch); err != nil {
			return nil, err
		}
		rs.obs.replayed.Add(1)
		return eventValue(ev)
	}
	if w, ok := rs.waits[pos]; ok {
		if err := match(th, pos, w.Kind, w.Name, w.ArgsHash, spec.StepSpec, hash, CodeWaitMismatch); err != nil {
			return nil, err
		}
		return nil, ErrSuspended
	}
	if err := rs.flushHeld(); err != nil {
		return nil, err
	}
	if rs.draining() {
		return nil, ErrStopping
	}
	if rs.gate != nil {
		refused, err := rs.admit(f, pos, callSite(th), spec.StepSpec, hash, false)
		if err != nil {
			return nil, err
		}
		if refused != nil {
			return eventValue(refused)
		}
	}
	now := rs.engine.now()
	w := &Wait{Execution: rs.exec.ID, Position: pos, Kind: spec.Kind, Name: spec.Name,
		ArgsHash: hash, Since: now, Detail: spec.Detail, Where: callSite(th), Attempt: stamp(rs.exec.Attempt())}
	// The timeout outcome is only read when the deadline passes: a wait
	// without one does not store it (every parked wait's bytes count).
	if spec.Timeout > 0 {
		d := now.Add(spec.Timeout)
		w.Deadline = &d
		w.OnTimeout, w.TimeoutError = spec.OnTimeout, spec.TimeoutError
	}
	ev, err := rs.journal.Wait(rs.ctx, w)
	if err != nil {
		if errors.Is(err, ErrNotOwner) {
			return nil, err
		}
		return nil, wrapStore(fmt.Errorf("register wait %s: %w", pos, err))
	}
	if ev != nil {
		rs.events.Add(1)
		rs.remember(ev)
		return eventValue(ev)
	}
	return nil, ErrSuspended
}

func nextPosition(th *starlark.Thread, kind string) (*frame, string, error) {
	f := frameOf(th)
	if f == nil {
		return nil, "", fmt.Errorf("%s can only be called while main() runs, not at load time", kind)
	}
	if f.step != nil {
		return nil, "", fmt.Errorf("%s cannot be called inside a step: steps do not nest; call it from main() or a fan_out item", kind)
	}
	f.next++
	f.logs = 0
	return f, f.prefix + strconv.Itoa(f.next), nil
}

func match(th *starlark.Thread, pos, kind, name, hash string, spec StepSpec, got, code string) error {
	if kind == spec.Kind && name == spec.Name && hash == got {
		return nil
	}
	where, trace := "?", ""
	if cs := th.CallStack(); len(cs) > 1 {
		where = cs.At(1).Pos.String() // At(0) is the durable built-in itself
		trace = strings.TrimRight(cs[:len(cs)-1].String(), "\n")
	}
	return &NondeterminismError{Code: code, Position: pos,
		Expected: describeCall(kind, name, hash), Actual: describeCall(spec.Kind, spec.Name, got), Where: where,
		Backtrace: trace}
}

func describeCall(kind, name, hash string) string {
	s := kind
	if name != "" {
		s += " " + name
	}
	return s + " (args " + hash + ")"
}

// eventValue is a recorded event as the script sees it.
func eventValue(ev *Event) (starlark.Value, error) {
	if ev.Failed() {
		return nil, &StepError{Position: ev.Position, Kind: ev.Kind, Name: ev.Name, Msg: ev.Error}
	}
	v, err := Decode(ev.Result)
	if err != nil {
		return nil, fmt.Errorf("history %s: %w", ev.Position, err)
	}
	return v, nil
}

// errorText is the message recorded for a failed step: for Starlark errors,
// the message with its backtrace.
func errorText(err error) string {
	var ee *starlark.EvalError
	if !errors.As(err, &ee) {
		return err.Error()
	}
	if err == error(ee) {
		return ee.Backtrace()
	}
	// A Go error wrapping a script's error: keep the wrapper's context (which
	// fan_out item failed, after how many attempts) and the script's backtrace.
	if prefix, ok := strings.CutSuffix(err.Error(), ee.Error()); ok {
		return prefix + ee.Backtrace()
	}
	return err.Error() + "\n" + ee.Backtrace()
}

// Thread returns a new thread for the step's own Starlark code: effects are
// allowed in it and durable calls are not. It is cancelled when ctx is done;
// call the returned stop when the thread is no longer used.
func (sc *StepContext) Thread(ctx context.Context, name string) (*starlark.Thread, func()) {
	th := sc.run.newThread(name, &frame{run: sc.run, ctx: ctx, step: sc})
	stopAfter := context.AfterFunc(ctx, func() { th.Cancel("step stopped: " + context.Cause(ctx).Error()) })
	return th, func() { stopAfter() }
}

// Fork returns the thread for item i of the fan_out this step is: its durable
// calls get positions <position>/<i>/<k> and stop when ctx is done. Call stop
// when the thread is no longer used.
func (sc *StepContext) Fork(ctx context.Context, i int) (th *starlark.Thread, stop func()) {
	th = sc.run.newThread(fmt.Sprintf("fan_out %s item %d", sc.Position, i),
		&frame{run: sc.run, ctx: ctx, prefix: Position(sc.Position).Child(i)})
	stopAfter := context.AfterFunc(ctx, func() { th.Cancel("fan_out item stopped: " + context.Cause(ctx).Error()) })
	return th, func() { stopAfter() }
}

// Sleep waits d on the engine's clock (a retry's backoff), or until the
// step's context is done, and then returns its cause.
func (sc *StepContext) Sleep(d time.Duration) error {
	if sleep := sc.run.engine.Sleep; sleep != nil {
		return sleep(sc.Ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-sc.Ctx.Done():
		return context.Cause(sc.Ctx)
	case <-t.C:
		return nil
	}
}

// LimitsOf returns the limits of th's execution (the defaults outside one).
func LimitsOf(th *starlark.Thread) Limits {
	if f := frameOf(th); f != nil {
		return f.run.limits
	}
	return DefaultLimits
}

// Context returns the context th's work runs under: the step attempt's inside
// a step (so call(timeout=) bounds effects), the run's or fan_out item's
// otherwise, and context.Background outside an execution.
func Context(th *starlark.Thread) context.Context {
	if f := frameOf(th); f != nil && f.ctx != nil {
		return f.ctx
	}
	return context.Background()
}

// InStep returns the step th runs, or nil outside a step. Effects use it to
// refuse to run outside call().
func InStep(th *starlark.Thread) *StepContext {
	if f := frameOf(th); f != nil {
		return f.step
	}
	return nil
}

// AddUndo registers an undo for th's execution, to run if it fails. position
// orders undos: they run last-registered first.
func AddUndo(th *starlark.Thread, position string, fn func(th *starlark.Thread) error) {
	if f := frameOf(th); f != nil {
		f.run.mu.Lock()
		f.run.undos = append(f.run.undos, undo{position: position, run: fn, where: callSite(th)})
		f.run.mu.Unlock()
	}
}

// LastPosition returns the position th's latest durable call got.
func LastPosition(th *starlark.Thread) string {
	f := frameOf(th)
	if f == nil || f.next == 0 {
		return ""
	}
	return f.prefix + strconv.Itoa(f.next)
}

// NextRecorded returns the name of the event or wait recorded at th's next
// position, and whether there is one.
func NextRecorded(th *starlark.Thread) (string, bool) {
	f := frameOf(th)
	if f == nil || f.step != nil {
		return "", false
	}
	next := f.prefix + strconv.Itoa(f.next+1)
	if ev, ok := f.run.history[next]; ok {
		return ev.Name, true
	}
	if w, ok := f.run.waits[next]; ok {
		return w.Name, true
	}
	return "", false
}

// Replaying reports whether th is re-running recorded history: its next
// position is already recorded or waited on. log() is silent then.
func Replaying(th *starlark.Thread) bool {
	f := frameOf(th)
	if f == nil {
		return false
	}
	if f.step != nil {
		return false
	}
	next := f.prefix + strconv.Itoa(f.next+1)
	if _, ok := f.run.history[next]; ok {
		return true
	}
	_, ok := f.run.waits[next]
	return ok
}

// Log writes msg to the execution's log unless th is replaying, with secrets
// scrubbed and the execution's attributes attached.
func Log(th *starlark.Thread, level slog.Level, msg string, attrs ...any) {
	f := frameOf(th)
	if f == nil {
		slog.Default().Log(context.Background(), level, msg, attrs...)
		return
	}
	if Replaying(th) {
		return
	}
	pos := f.prefix + strconv.Itoa(f.next)
	if f.step != nil {
		pos = f.step.Position
	}
	msg = f.run.secrets.Scrub(msg)
	for i := range attrs {
		if s, ok := attrs[i].(string); ok {
			attrs[i] = f.run.secrets.Scrub(s) // keys too: log(**{k: v}) takes any string key
		}
	}
	f.run.logger.Log(f.run.ctx, level, msg, append(attrs, "position", pos)...)
	f.storeLog(level, msg, pos, attrs)
}

// ExecutionID returns the id of th's execution, or "" outside one.
func ExecutionID(th *starlark.Thread) string {
	if f := frameOf(th); f != nil {
		return f.run.exec.ID
	}
	return ""
}

// CurrentExecution returns th's execution's id, attempt and trigger, as
// the run began; ok is false outside one.
func CurrentExecution(th *starlark.Thread) (id string, attempt int, trigger Trigger, ok bool) {
	if f := frameOf(th); f != nil {
		e := f.run.exec
		return e.ID, e.Attempt(), e.Trigger, true
	}
	return "", 0, Trigger{}, false
}

// Now returns the engine clock's time for th (for recording, not for scripts).
func Now(th *starlark.Thread) time.Time {
	if f := frameOf(th); f != nil {
		return f.run.engine.now()
	}
	return time.Now()
}

func (rs *run) draining() bool {
	select {
	case <-rs.drain:
		return true
	default:
		return false
	}
}

// maxErrorBytes bounds a recorded error message: errors are for people.
const maxErrorBytes = 16 << 10

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + fmt.Sprintf("... (%d more bytes)", len(s)-n)
}
