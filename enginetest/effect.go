package enginetest

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"go.starlark.net/starlark"

	"github.com/starbook/starbook/runtime"
)

// Effects counts the invocations of the test built-in
//
//	effect(name, value=None, fail=None, block=False, size=0, reveal=False)
//
// per idempotency key. effect is an effect: it runs only inside a step. It
// returns value (revealed, if it is a secret and reveal is set), or a string
// of size bytes, or name; it raises fail (a string or secret) instead when
// fail is set, and with block it waits until its context is done and raises
// the context's cause.
type Effects struct {
	mu       sync.Mutex
	counts   map[string]int
	calls    []Invocation
	inflight int
	peak     int
	hook     func(Invocation) // called as each invocation starts
}

// Invocation is one call of effect, in the order calls started.
type Invocation struct {
	Seq   int    // 1-based, over the fixture's lifetime
	Key   string // the step's idempotency key
	Name  string
	Value string // value's repr (its placeholder for a secret)
}

// NewEffects returns an empty counter; hook, if not nil, sees each invocation
// as it starts.
func NewEffects(hook func(Invocation)) *Effects {
	return &Effects{counts: map[string]int{}, hook: hook}
}

// Builtin returns the effect built-in that counts into e.
func (e *Effects) Builtin() *starlark.Builtin {
	return starlark.NewBuiltin("effect", e.call)
}

func (e *Effects) call(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		name          string
		value, fail   starlark.Value = starlark.None, starlark.None
		block, reveal bool
		size          int
	)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "name", &name, "value?", &value,
		"fail?", &fail, "block?", &block, "size?", &size, "reveal?", &reveal); err != nil {
		return nil, err
	}
	sc := runtime.InStep(th)
	if sc == nil {
		return nil, fmt.Errorf("effect %s: only inside a step (call it with call(effect, ...))", name)
	}
	e.mu.Lock()
	e.counts[sc.Key]++
	inv := Invocation{Seq: len(e.calls) + 1, Key: sc.Key, Name: name, Value: value.String()}
	e.calls = append(e.calls, inv)
	e.inflight++
	e.peak = max(e.peak, e.inflight)
	hook := e.hook
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		e.inflight--
		e.mu.Unlock()
	}()
	if hook != nil {
		hook(inv)
	}

	if fail != starlark.None {
		msg, err := runtime.RevealString(fail)
		if err != nil {
			return nil, fmt.Errorf("effect %s: fail=: %w", name, err)
		}
		if msg != "" {
			return nil, fmt.Errorf("%s", msg)
		}
	}
	if block {
		ctx := runtime.Context(th)
		<-ctx.Done()
		return nil, context.Cause(ctx)
	}
	switch {
	case size > 0:
		return starlark.String(strings.Repeat("x", size)), nil
	case value != starlark.None:
		if s, ok := value.(*runtime.Secret); ok && reveal {
			return starlark.String(s.Reveal()), nil
		}
		return value, nil
	}
	return starlark.String(name), nil
}

// Count returns how many times effect ran under the idempotency key.
func (e *Effects) Count(key string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.counts[key]
}

// Counts returns a copy of the invocation count per idempotency key.
func (e *Effects) Counts() map[string]int {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]int, len(e.counts))
	for k, v := range e.counts {
		out[k] = v
	}
	return out
}

// Calls returns every invocation so far, in start order.
func (e *Effects) Calls() []Invocation {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]Invocation(nil), e.calls...)
}

// Total returns the number of invocations so far.
func (e *Effects) Total() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.calls)
}

// Peak returns the most invocations that were running at once.
func (e *Effects) Peak() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.peak
}
