package builtins

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"go.starlark.net/starlark"

	sbruntime "github.com/starbook/starbook/runtime"
)

// RunbookStarter starts the child runbooks of run_runbook: the node's
// service, as for any start (input schema, budget, rollouts).
type RunbookStarter interface {
	// StartChild starts c.Runbook as a child of c.Parent's step c.Position
	// and returns its id; if that step started one already (it is running
	// again after a crash), it returns that one and starts nothing.
	StartChild(ctx context.Context, c ChildRequest) (string, error)
}

// RunbookStarterFunc is a RunbookStarter as a func: a node's service is
// made with the built-ins, and starts their children once it exists.
type RunbookStarterFunc func(ctx context.Context, c ChildRequest) (string, error)

// StartChild calls f.
func (f RunbookStarterFunc) StartChild(ctx context.Context, c ChildRequest) (string, error) {
	return f(ctx, c)
}

// ChildRequest is one run_runbook start.
type ChildRequest struct {
	Runbook  string
	Input    json.RawMessage
	Parent   string
	Position string
	Attempt  int
	Depth    int // the child's: 1 under a top-level run
}

// MaxChildDepth is how deep run_runbook nests: a child's child's ... child
// at this depth may not start another.
const MaxChildDepth = 8

// The names a child's record and its end use (see cluster/children.go).
const (
	childTrigger     = "runbook"
	childDepthAttr   = "depth"
	childSignalStart = "child."
)

// runRunbookBuiltin implements run_runbook(name, input = None, wait = True,
// timeout = None): start runbook name as a child execution in a durable
// step (its id recorded, so no replay starts a second one), then, with
// wait, park until it ends and return its result, or raise its error.
// Without wait, return its id at once.
func runRunbookBuiltin(starter RunbookStarter) func(*starlark.Thread, *starlark.Builtin, starlark.Tuple, []starlark.Tuple) (starlark.Value, error) {
	return func(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		var name string
		var input starlark.Value = starlark.None
		wait := true
		var timeout durationArg
		if err := starlark.UnpackArgs(b.Name(), args, kwargs, "name", &name, "input?", &input, "wait?", &wait, "timeout?", &timeout); err != nil {
			return nil, err
		}
		if name == "" {
			return nil, fmt.Errorf("%s: name must not be empty", b.Name())
		}
		if timeout.set && timeout.d == 0 {
			return nil, fmt.Errorf("%s: timeout must be positive", b.Name())
		}
		parent, attempt, trigger, ok := sbruntime.CurrentExecution(th)
		if !ok {
			return nil, fmt.Errorf("%s can only be called while main() runs", b.Name())
		}
		depth := 1
		if trigger.Type == childTrigger {
			d, _ := strconv.Atoi(trigger.Attrs[childDepthAttr])
			depth = d + 1
		}
		if depth > MaxChildDepth {
			return nil, fmt.Errorf("%s %s: runbooks nest at most %d deep (this run is at depth %d)", b.Name(), name, MaxChildDepth, depth-1)
		}
		var data json.RawMessage
		if input != starlark.None {
			var err error
			if data, err = sbruntime.Encode(input); err != nil {
				return nil, fmt.Errorf("%s: input: %w", b.Name(), err)
			}
		}
		started, err := sbruntime.Step(th, sbruntime.StepSpec{Kind: sbruntime.KindCall, Name: b.Name(),
			Args: starlark.Tuple{starlark.String(name), input}}, func(sc *sbruntime.StepContext) (starlark.Value, error) {
			if err := sc.Effect(sbruntime.Effect{Kind: "runbook", Runbook: name}); err != nil {
				return nil, err
			}
			if starter == nil {
				return nil, fmt.Errorf("%s: child runbooks are not available here", b.Name())
			}
			id, err := starter.StartChild(sc.Ctx, ChildRequest{Runbook: name, Input: data, Parent: parent,
				Position: sc.Position, Attempt: attempt, Depth: depth})
			if err != nil {
				return nil, fmt.Errorf("%s %s: %w", b.Name(), name, err)
			}
			d := starlark.NewDict(3)
			_ = d.SetKey(starlark.String("id"), starlark.String(id))
			_ = d.SetKey(starlark.String("runbook"), starlark.String(name))
			_ = d.SetKey(starlark.String("attempt"), starlark.MakeInt(attempt))
			return d, nil
		})
		if err != nil || !wait {
			return started, err
		}
		id, startedIn, err := childID(started)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", b.Name(), name, err)
		}
		recorded, ok := sbruntime.NextRecorded(th)
		switch {
		case ok && strings.HasPrefix(recorded, childSignalStart):
			// The wait is recorded (or pending): for the child it names,
			// which a redrive may have started after the step (below).
			id = strings.TrimPrefix(recorded, childSignalStart)
		case !ok && startedIn < attempt:
			// A redrive from the failed step: the wait for the child, failed
			// with it, runs again. It waits for a new child of this attempt
			// (started once per attempt, as the step does).
			if starter == nil {
				return nil, fmt.Errorf("%s: child runbooks are not available here", b.Name())
			}
			if id, err = starter.StartChild(sbruntime.Context(th), ChildRequest{Runbook: name, Input: data, Parent: parent,
				Position: sbruntime.LastPosition(th), Attempt: attempt, Depth: depth}); err != nil {
				return nil, fmt.Errorf("%s %s: %w", b.Name(), name, err)
			}
		}
		signal := childSignalStart + id
		ended, err := sbruntime.Await(th, sbruntime.WaitSpec{
			StepSpec: sbruntime.StepSpec{Kind: sbruntime.KindSignal, Name: signal},
			Timeout:  timeout.d, OnTimeout: sbruntime.SignalTimeout(signal),
		})
		if err != nil {
			return nil, err
		}
		return childOutcome(b.Name(), name, id, timeout.d, ended)
	}
}

// childID is the id in a run_runbook step's result, and the attempt that
// started it.
func childID(v starlark.Value) (string, int, error) {
	m, ok := v.(starlark.Mapping)
	if !ok {
		return "", 0, fmt.Errorf("the step's result is a %s, not the child", v.Type())
	}
	id, found, err := m.Get(starlark.String("id"))
	if err != nil || !found {
		return "", 0, fmt.Errorf("the step's result names no child")
	}
	s, _ := starlark.AsString(id)
	attempt := 1
	if a, found, _ := m.Get(starlark.String("attempt")); found {
		if n, err := starlark.AsInt32(a); err == nil {
			attempt = n
		}
	}
	return s, attempt, nil
}

// childOutcome turns the signal a child's end was delivered as into
// run_runbook's value: the child's result, or its error raised.
func childOutcome(fn, runbook, id string, timeout fmt.Stringer, signal starlark.Value) (starlark.Value, error) {
	m, ok := signal.(starlark.Mapping)
	if !ok {
		return nil, fmt.Errorf("%s %s: the child's end is a %s", fn, runbook, signal.Type())
	}
	get := func(v starlark.Mapping, key string) starlark.Value {
		x, found, _ := v.Get(starlark.String(key))
		if !found {
			return starlark.None
		}
		return x
	}
	if get(m, "timed_out") == starlark.True {
		return nil, fmt.Errorf("%s %s: child %s did not end within %s (it goes on: cancel it with starbook cancel %s)", fn, runbook, id, timeout, id)
	}
	end, ok := get(m, "data").(starlark.Mapping)
	if !ok {
		return nil, fmt.Errorf("%s %s: child %s ended without an outcome", fn, runbook, id)
	}
	status, _ := starlark.AsString(get(end, "status"))
	if status != string(sbruntime.StatusCompleted) {
		msg, _ := starlark.AsString(get(end, "error"))
		return nil, fmt.Errorf("%s %s: child %s ended %s: %s", fn, runbook, id, status, msg)
	}
	return get(end, "result"), nil
}
