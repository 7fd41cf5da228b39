package enginetest

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"go.starlark.net/starlark"

	"github.com/starbook/starbook/builtins"
	"github.com/starbook/starbook/runtime"
)

//go:embed testdata/*.star
var scripts embed.FS

// ErrKilled is the cause Faults cancel a run with: a simulated crash.
var ErrKilled = errors.New("enginetest: run killed")

// Options configure a Fixture.
type Options struct {
	Limits  runtime.Limits
	Secrets map[string]string // what secret(name) finds
}

// Fixture runs scripts on a backend with the real built-ins and effect(), a
// stepping clock and a captured log. It runs one run at a time.
type Fixture struct {
	T       *testing.T
	Backend Backend
	Engine  *runtime.Engine
	Effects *Effects
	// Predeclared are the names scripts see: builtins.New plus effect.
	Predeclared starlark.StringDict
	// Gate, when set, admits the runs' new steps (runtime.Run.Gate).
	Gate runtime.Gate

	ctx  context.Context
	logs syncBuffer

	mu      sync.Mutex
	current *runState // the run in progress, if any
}

// Faults say what goes wrong during a run. Zero fields never fire.
type Faults struct {
	// KillAtEffect cancels the run as its n-th effect invocation starts: the
	// effect happens but its step is never checkpointed.
	KillAtEffect int
	// KillAfterAppend cancels the run once its n-th append is durable.
	KillAfterAppend int
	// ExpireAfterAppend expires the run's claim once its n-th append is
	// durable, without telling the run: its next write must be refused.
	ExpireAfterAppend int
	// DrainAfterAppend closes the run's Drain channel once its n-th append is
	// durable: the node is stopping gracefully.
	DrainAfterAppend int
	// FireWaits resolves each wait as soon as the run registers it, before
	// the run finishes: a timer that fires at once.
	FireWaits bool
	// Cause is the cancellation cause of a kill; ErrKilled when nil.
	Cause error
}

// RunResult is how one run went.
type RunResult struct {
	Outcome   runtime.Outcome
	Execution *runtime.Execution // as stored after Finish
	Appends   int                // events the run recorded, with its outcome included
	Statuses  []runtime.Status   // SetStatus calls the run made
}

type runState struct {
	faults  Faults
	cancel  context.CancelCauseFunc
	drain   chan struct{}
	effects int
}

// NewFixture returns a fixture on b. Runs give up after 30 seconds.
func NewFixture(t *testing.T, b Backend, opts Options) *Fixture {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	f := &Fixture{T: t, Backend: b, ctx: ctx}
	f.Effects = NewEffects(f.onEffect)
	secrets := opts.Secrets
	f.Predeclared = builtins.New(builtins.Options{Secrets: func(name string) (string, bool) {
		v, ok := secrets[name]
		return v, ok
	}})
	f.Predeclared["effect"] = f.Effects.Builtin()
	f.Engine = &runtime.Engine{
		Builtins: f.Predeclared,
		Limits:   opts.Limits,
		Now:      newClock(),
		Logger:   slog.New(slog.NewTextHandler(&f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	return f
}

// Context returns the fixture's context, done when the test ends or times out.
func (f *Fixture) Context() context.Context { return f.ctx }

// newClock returns a clock that moves one second on every reading, so a value
// read twice instead of replayed shows.
func newClock() func() time.Time {
	var mu sync.Mutex
	t := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		t = t.Add(time.Second)
		return t
	}
}

func (f *Fixture) onEffect(Invocation) {
	f.mu.Lock()
	defer f.mu.Unlock()
	rs := f.current
	if rs == nil {
		return
	}
	rs.effects++
	if rs.effects == rs.faults.KillAtEffect {
		rs.cancel(rs.faults.cause())
	}
}

// dueAt reports whether a fault strikes after the nth append.
func (k Faults) dueAt(n int) bool {
	return n == k.ExpireAfterAppend || n == k.KillAfterAppend || n == k.DrainAfterAppend
}

func (k Faults) cause() error {
	if k.Cause != nil {
		return k.Cause
	}
	return ErrKilled
}

// Script compiles testdata/<name>.star as a one-file runbook.
func (f *Fixture) Script(name string) *runtime.Program {
	f.T.Helper()
	src, err := scripts.ReadFile("testdata/" + name + ".star")
	if err != nil {
		f.T.Fatal(err)
	}
	return f.Source(name, string(src))
}

// Source compiles src as the runbook name, in file <name>.star.
func (f *Fixture) Source(name, src string) *runtime.Program {
	f.T.Helper()
	files := map[string]string{name + ".star": src}
	b := &runtime.Bundle{Name: name, Main: name + ".star", Files: files, Version: runtime.BundleVersion(files)}
	p, err := runtime.Compile(b, f.Predeclared)
	if err != nil {
		f.T.Fatalf("compile %s: %v", name, err)
	}
	return p
}

// Start creates an execution of p with input (JSON; "" for none).
func (f *Fixture) Start(p *runtime.Program, input string) string {
	f.T.Helper()
	var raw json.RawMessage
	if input != "" {
		raw = json.RawMessage(input)
	}
	id, err := f.Backend.Create(f.ctx, p.Bundle, raw)
	if err != nil {
		f.T.Fatalf("create execution: %v", err)
	}
	return id
}

// Run claims id, executes p on it, crashing as kill says, and finishes the run
// with its outcome.
func (f *Fixture) Run(id string, p *runtime.Program, faults Faults) RunResult {
	f.T.Helper()
	ctx, cancel := context.WithCancelCause(f.ctx)
	defer cancel(nil)
	r, err := f.Backend.Claim(ctx, id)
	if err != nil {
		f.T.Fatalf("claim %s: %v", id, err)
	}
	rs := &runState{faults: faults, cancel: cancel, drain: make(chan struct{})}
	j := &journal{Journal: r.Journal, f: f, id: id, run: rs}
	run := *r
	run.Journal = j
	if r.Drain == nil {
		run.Drain = rs.drain
	}
	if f.Gate != nil {
		run.Gate = f.Gate
	}
	f.mu.Lock()
	if f.current != nil {
		f.mu.Unlock()
		f.T.Fatal("Fixture.Run: a run is already in progress")
	}
	f.current = rs
	f.mu.Unlock()

	o := f.Engine.Execute(ctx, p, &run)
	if o.Checkpoint != nil && faults.dueAt(j.count()+1) {
		// A fault is due right after this event: record it alone, as the
		// engine does when the script computes past its hold, so that the
		// fault strikes between the event and the outcome.
		if err := j.Append(ctx, o.Checkpoint); err == nil {
			o.Checkpoint = nil
		}
		if cause := context.Cause(ctx); cause != nil {
			o = runtime.Outcome{Err: cause, Checkpoint: o.Checkpoint}
		}
	}

	f.mu.Lock()
	f.current = nil
	f.mu.Unlock()
	e, err := f.Backend.Finish(f.ctx, r, o)
	if err != nil && !errors.Is(err, runtime.ErrNotOwner) { // a lost claim finishes nothing
		f.T.Fatalf("finish %s: %v", id, err)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if err == nil && o.Checkpoint != nil {
		j.appends++ // recorded with the outcome
	}
	return RunResult{Outcome: o, Execution: e, Appends: j.appends, Statuses: j.statuses}
}

// RunToEnd runs id without crashing it and fails the test unless the
// execution ends in want.
func (f *Fixture) RunToEnd(id string, p *runtime.Program, want runtime.Status) RunResult {
	f.T.Helper()
	res := f.Run(id, p, Faults{})
	if res.Outcome.Status != want {
		f.T.Fatalf("execution %s ended %q (err %v, error %q), want %s",
			id, res.Outcome.Status, res.Outcome.Err, res.Outcome.Error, want)
	}
	return res
}

// History reads id's stored history back.
func (f *Fixture) History(id string) *History {
	f.T.Helper()
	h, err := f.Backend.History(f.ctx, id)
	if err != nil {
		f.T.Fatalf("history %s: %v", id, err)
	}
	return h
}

// Logs returns what the engine has logged so far.
func (f *Fixture) Logs() string { return f.logs.String() }

// journal wraps a run's journal to count its writes and crash the run.
type journal struct {
	runtime.Journal
	f   *Fixture
	id  string
	run *runState

	mu       sync.Mutex
	appends  int
	statuses []runtime.Status
}

// count returns how many events the run appended so far.
func (j *journal) count() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.appends
}

func (j *journal) Append(ctx context.Context, ev *runtime.Event) error {
	if err := j.Journal.Append(ctx, ev); err != nil {
		return err
	}
	j.mu.Lock()
	j.appends++
	n := j.appends
	j.mu.Unlock()
	k := j.run.faults
	if n == k.ExpireAfterAppend {
		if err := j.f.Backend.Expire(j.f.ctx, j.id); err != nil {
			j.f.T.Errorf("expire %s: %v", j.id, err)
		}
	}
	if n == k.KillAfterAppend {
		j.run.cancel(k.cause())
	}
	if n == k.DrainAfterAppend {
		close(j.run.drain)
	}
	return nil
}

func (j *journal) Wait(ctx context.Context, w *runtime.Wait) (*runtime.Event, error) {
	ev, err := j.Journal.Wait(ctx, w)
	if err != nil || ev != nil {
		return ev, err
	}
	if j.run.faults.FireWaits {
		if _, err := j.f.Backend.FireWaits(j.f.ctx, j.id); err != nil {
			j.f.T.Errorf("fire waits of %s: %v", j.id, err)
		}
	}
	return nil, nil
}

func (j *journal) SetStatus(ctx context.Context, s runtime.Status) error {
	j.mu.Lock()
	j.statuses = append(j.statuses, s)
	j.mu.Unlock()
	return j.Journal.SetStatus(ctx, s)
}

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// countLines counts the log records whose message is msg.
func countLines(logs, msg string) int {
	return strings.Count(logs, "msg="+quoteLog(msg)+" ")
}

func quoteLog(s string) string {
	if strings.ContainsAny(s, " =\"") {
		b, _ := json.Marshal(s)
		return string(b)
	}
	return s
}
