package builtins

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
	sltime "go.starlark.net/lib/time"
	"go.starlark.net/starlark"
	"golang.org/x/sync/errgroup"

	"github.com/starbook/starbook/downstream"
	sbruntime "github.com/starbook/starbook/runtime"
)

// callOptions are call()'s own keyword arguments; the rest go to fn.
type callOptions struct {
	retry   *RetryPolicy
	timeout time.Duration
	name    string
}

// splitCallKwargs takes retry=, timeout= and name= out of kwargs.
func splitCallKwargs(kwargs []starlark.Tuple) (callOptions, []starlark.Tuple, error) {
	opts := callOptions{retry: noRetry}
	var rest []starlark.Tuple
	for _, kv := range kwargs {
		key := string(kv[0].(starlark.String))
		switch key {
		case "retry":
			if kv[1] == starlark.None {
				continue
			}
			p, ok := kv[1].(*RetryPolicy)
			if !ok {
				if n, isInt := kv[1].(starlark.Int); isInt {
					attempts, _ := n.Int64()
					if attempts < 1 || attempts > 100 {
						return opts, nil, fmt.Errorf("retry=%d: attempts must be between 1 and 100", attempts)
					}
					p = &RetryPolicy{Attempts: int(attempts), Initial: time.Second, Max: time.Minute, Multiplier: 2, Jitter: 0.2}
				} else {
					return opts, nil, fmt.Errorf("retry= wants retry(...) or a number of attempts, got %s", kv[1].Type())
				}
			}
			opts.retry = p
		case "timeout":
			var d durationArg
			if err := d.Unpack(kv[1]); err != nil {
				return opts, nil, fmt.Errorf("timeout=: %w", err)
			}
			opts.timeout = d.d
		case "name":
			s, ok := starlark.AsString(kv[1])
			if !ok {
				return opts, nil, fmt.Errorf("name= wants a string, got %s", kv[1].Type())
			}
			opts.name = s
		default:
			rest = append(rest, kv)
		}
	}
	return opts, rest, nil
}

// callBuiltin implements call(fn, *args, retry=, timeout=, name=, **kwargs):
// run fn(*args, **kwargs) once as a durable step.
func callBuiltin(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if len(args) == 0 {
		return nil, fmt.Errorf("call: missing the function to call: call(fn, *args)")
	}
	fn, ok := args[0].(starlark.Callable)
	if !ok {
		return nil, fmt.Errorf("call: first argument must be callable, got %s", args[0].Type())
	}
	opts, fnKwargs, err := splitCallKwargs(kwargs)
	if err != nil {
		return nil, fmt.Errorf("call: %w", err)
	}
	name := opts.name
	if name == "" {
		name = fn.Name()
	}
	spec := sbruntime.StepSpec{Kind: sbruntime.KindCall, Name: name, Args: args[1:], Kwargs: fnKwargs}
	return sbruntime.Step(th, spec, runStep(fn, args[1:], fnKwargs, opts))
}

// runStep returns the work of a step that calls fn in a step thread, with the
// options' timeout per attempt and retries between attempts.
func runStep(fn starlark.Callable, args starlark.Tuple, kwargs []starlark.Tuple, opts callOptions) sbruntime.StepFunc {
	return func(sc *sbruntime.StepContext) (starlark.Value, error) {
		var last error
		for attempt := 1; ; attempt++ {
			sc.Attempts = attempt
			v, err := attemptStep(sc, fn, args, kwargs, opts.timeout)
			if err == nil {
				return v, nil
			}
			var spent *downstream.RetryBudgetError
			if last != nil && errors.As(err, &spent) {
				// The host's retry budget refused this retry: the step
				// fails with the error it would have retried.
				if attempt > 2 {
					return nil, fmt.Errorf("after %d attempts: %w (%v)", attempt-1, last, spent)
				}
				return nil, fmt.Errorf("%w (not retried: %v)", last, spent)
			}
			last = err
			if sc.Ctx.Err() != nil || attempt >= opts.retry.Attempts || !opts.retry.Retryable(err) || sbruntime.IsPolicyError(err) {
				if attempt > 1 {
					return nil, fmt.Errorf("after %d attempts: %w", attempt, err)
				}
				return nil, err
			}
			if err := sc.Sleep(opts.retry.Delay(attempt, err)); err != nil {
				return nil, err
			}
		}
	}
}

func attemptStep(sc *sbruntime.StepContext, fn starlark.Callable, args starlark.Tuple, kwargs []starlark.Tuple, timeout time.Duration) (starlark.Value, error) {
	ctx := sc.Ctx
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, timeout, fmt.Errorf("step timed out after %s", timeout))
		defer cancel()
	}
	th, stop := sc.Thread(ctx, fn.Name())
	defer stop()
	v, err := starlark.Call(th, fn, args, kwargs)
	if err != nil && ctx.Err() != nil && sc.Ctx.Err() == nil {
		return nil, context.Cause(ctx) // the timeout, not the thread's cancellation message
	}
	return v, err
}

// fanOutBuiltin implements fan_out(fn, items, max_concurrency=10, fail_fast=True):
// fn(item) for every item, in parallel threads, results in item order.
func fanOutBuiltin(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var fn starlark.Callable
	var itemsArg starlark.Iterable
	maxConcurrency, failFast := 10, true
	if err := starlark.UnpackArgs(b.Name(), args, kwargs,
		"fn", &fn, "items", &itemsArg, "max_concurrency?", &maxConcurrency, "fail_fast?", &failFast); err != nil {
		return nil, err
	}
	limits := sbruntime.LimitsOf(th)
	items := collect(itemsArg, limits.MaxFanOutItems+1)
	switch {
	case len(items) > limits.MaxFanOutItems:
		return nil, &sbruntime.LimitError{Limit: "max_fan_out_items", Msg: fmt.Sprintf(
			"fan_out: more than %d items; split the work or raise the limit", limits.MaxFanOutItems)}
	case maxConcurrency < 1:
		return nil, fmt.Errorf("fan_out: max_concurrency must be at least 1, got %d", maxConcurrency)
	case maxConcurrency > limits.MaxFanOutConcurrency:
		return nil, &sbruntime.LimitError{Limit: "max_fan_out_concurrency", Msg: fmt.Sprintf(
			"fan_out: max_concurrency %d is over the cap of %d", maxConcurrency, limits.MaxFanOutConcurrency)}
	}
	list := starlark.NewList(items)
	spec := sbruntime.StepSpec{Kind: sbruntime.KindFanOut, Name: fn.Name(), Args: starlark.Tuple{list}, Items: len(items)}
	return sbruntime.Step(th, spec, func(sc *sbruntime.StepContext) (starlark.Value, error) {
		// Threads share fn and the items: freeze them before any goroutine starts.
		fn.Freeze()
		list.Freeze()
		return runFanOut(sc, fn, items, maxConcurrency, failFast)
	})
}

func runFanOut(sc *sbruntime.StepContext, fn starlark.Callable, items []starlark.Value, limit int, failFast bool) (starlark.Value, error) {
	ctx, cancel := context.WithCancelCause(sc.Ctx)
	defer cancel(nil)
	results := make([]starlark.Value, len(items))
	errs := make([]error, len(items))
	var mu sync.Mutex
	var firstFailure error
	var g errgroup.Group
	g.SetLimit(limit)
	for i, item := range items {
		g.Go(func() error {
			if ctx.Err() != nil {
				return nil
			}
			th, stop := sc.Fork(ctx, i)
			defer stop()
			v, err := starlark.Call(th, fn, starlark.Tuple{item}, nil)
			if err != nil {
				if !isControl(err) && ctx.Err() == nil {
					err = fmt.Errorf("fan_out item %d (%s): %w", i, shortRepr(item), err)
					mu.Lock()
					if firstFailure == nil {
						firstFailure = err
					}
					mu.Unlock()
					if failFast {
						cancel(err)
					}
				}
				errs[i] = err
				return nil
			}
			results[i] = v
			return nil
		})
	}
	_ = g.Wait()
	if cause := context.Cause(sc.Ctx); cause != nil {
		return nil, cause
	}
	// Control flow outranks failures: a divergence, a lost claim or a wait
	// means this fan_out's outcome is not final yet.
	var suspended error
	for _, err := range errs {
		switch {
		case err == nil:
		case errors.Is(err, sbruntime.ErrSuspended):
			suspended = err
		case isControl(err):
			return nil, err
		}
	}
	if firstFailure != nil {
		if !failFast {
			failed := 0
			for _, err := range errs {
				if err != nil && !isControl(err) {
					failed++
				}
			}
			return nil, fmt.Errorf("%d of %d items failed, first: %w", failed, len(items), firstFailure)
		}
		return nil, firstFailure
	}
	if suspended != nil {
		return nil, suspended
	}
	return starlark.NewList(results), nil
}

// isControl reports errors that are not a script's failure: suspension,
// divergence, a lost claim, storage trouble or cancellation.
func isControl(err error) bool {
	var nd *sbruntime.NondeterminismError
	return errors.Is(err, sbruntime.ErrSuspended) || errors.Is(err, sbruntime.ErrNotOwner) ||
		errors.As(err, &nd) || errors.Is(err, context.Canceled) || errors.Is(err, sbruntime.ErrCancelled) ||
		errors.Is(err, sbruntime.ErrStore)
}

// compensateBuiltin implements compensate(fn, *args, **kwargs): register an
// undo that runs as a durable step if the execution fails.
func compensateBuiltin(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if len(args) == 0 {
		return nil, fmt.Errorf("compensate: missing the undo function: compensate(fn, *args)")
	}
	fn, ok := args[0].(starlark.Callable)
	if !ok {
		return nil, fmt.Errorf("compensate: first argument must be callable, got %s", args[0].Type())
	}
	opts, fnKwargs, err := splitCallKwargs(kwargs)
	if err != nil {
		return nil, fmt.Errorf("compensate: %w", err)
	}
	if opts.retry == noRetry {
		opts.retry = undoRetry
	}
	name := opts.name
	if name == "" {
		name = fn.Name()
	}
	fnArgs := args[1:]
	spec := sbruntime.StepSpec{Kind: sbruntime.KindCompensate, Name: name, Args: fnArgs, Kwargs: fnKwargs}
	if _, err := sbruntime.Step(th, spec, func(*sbruntime.StepContext) (starlark.Value, error) {
		return starlark.None, nil
	}); err != nil {
		return nil, err
	}
	sbruntime.AddUndo(th, sbruntime.LastPosition(th), func(cth *starlark.Thread) error {
		undo := spec
		undo.Kind = sbruntime.KindUndo
		_, err := sbruntime.Step(cth, undo, runStep(fn, fnArgs, fnKwargs, opts))
		return err
	})
	return starlark.None, nil
}

// sleepBuiltin implements sleep(duration) as a durable timer: the execution
// parks and holds no goroutine until the timer fires.
func sleepBuiltin(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var d durationArg
	if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 1, &d); err != nil {
		return nil, err
	}
	spec := sbruntime.WaitSpec{
		StepSpec: sbruntime.StepSpec{Kind: sbruntime.KindSleep, Args: args},
		Timeout:  max(d.d, time.Millisecond),
	}
	if _, err := sbruntime.Await(th, spec); err != nil {
		return nil, err
	}
	return starlark.None, nil
}

// nowBuiltin implements now(): the time, recorded once.
func nowBuiltin(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 0); err != nil {
		return nil, err
	}
	v, err := sbruntime.Step(th, sbruntime.StepSpec{Kind: sbruntime.KindNow}, func(*sbruntime.StepContext) (starlark.Value, error) {
		return starlark.String(sbruntime.Now(th).UTC().Format(time.RFC3339Nano)), nil
	})
	if err != nil {
		return nil, err
	}
	t, err := time.Parse(time.RFC3339Nano, string(v.(starlark.String)))
	if err != nil {
		return nil, fmt.Errorf("now: recorded time: %w", err)
	}
	return sltime.Time(t), nil
}

// uuidBuiltin implements uuid(): a random UUID, recorded once.
func uuidBuiltin(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 0); err != nil {
		return nil, err
	}
	return sbruntime.Step(th, sbruntime.StepSpec{Kind: sbruntime.KindUUID}, func(*sbruntime.StepContext) (starlark.Value, error) {
		return starlark.String(uuid.NewString()), nil
	})
}

// idempotencyKeyBuiltin implements idempotency_key(): the running step's key.
func idempotencyKeyBuiltin(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 0); err != nil {
		return nil, err
	}
	sc := sbruntime.InStep(th)
	if sc == nil {
		return nil, fmt.Errorf("idempotency_key: only inside a step (a function run by call)")
	}
	return starlark.String(sc.Key), nil
}

func collect(it starlark.Iterable, max int) []starlark.Value {
	iter := it.Iterate()
	defer iter.Done()
	var items []starlark.Value
	var x starlark.Value
	for len(items) < max && iter.Next(&x) {
		items = append(items, x)
	}
	return items
}

func shortRepr(v starlark.Value) string {
	s := v.String()
	if len(s) > 60 {
		s = s[:57] + "..."
	}
	return s
}
