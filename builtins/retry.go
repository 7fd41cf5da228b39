package builtins

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"time"

	"go.starlark.net/starlark"
)

// RetryPolicy is the value retry(...) returns: exponential backoff with jitter.
type RetryPolicy struct {
	Attempts     int
	Initial      time.Duration
	Max          time.Duration
	Multiplier   float64
	Jitter       float64  // fraction of each delay randomised, 0..1
	NonRetryable []string // error substrings that stop retrying
}

// noRetry is the policy of a call without retry=: one attempt.
var noRetry = &RetryPolicy{Attempts: 1}

// undoRetry is the policy of compensations: undos must try hard.
var undoRetry = &RetryPolicy{Attempts: 5, Initial: time.Second, Max: 30 * time.Second, Multiplier: 2, Jitter: 0.2}

var _ starlark.Value = (*RetryPolicy)(nil)

func (p *RetryPolicy) String() string {
	return fmt.Sprintf("retry(attempts=%d, initial=%q, max=%q, multiplier=%g, jitter=%g)",
		p.Attempts, p.Initial, p.Max, p.Multiplier, p.Jitter)
}
func (p *RetryPolicy) Type() string          { return "retry" }
func (p *RetryPolicy) Freeze()               {}
func (p *RetryPolicy) Truth() starlark.Bool  { return true }
func (p *RetryPolicy) Hash() (uint32, error) { return starlark.String(p.String()).Hash() }

// Delay is the wait before attempt n+1 after attempt n failed with err.
// A server's Retry-After hint is honoured up to Max.
func (p *RetryPolicy) Delay(n int, err error) time.Duration {
	d := float64(p.Initial) * math.Pow(p.Multiplier, float64(n-1))
	if p.Max > 0 && d > float64(p.Max) {
		d = float64(p.Max)
	}
	if p.Jitter > 0 {
		d += d * p.Jitter * (2*rand.Float64() - 1)
	}
	delay := time.Duration(d)
	var hinted interface{ RetryAfterHint() time.Duration }
	if errors.As(err, &hinted) {
		if h := hinted.RetryAfterHint(); h > delay {
			delay = h
			if p.Max > 0 && delay > p.Max {
				delay = p.Max
			}
		}
	}
	return delay
}

// Retryable reports whether err may be retried under p.
func (p *RetryPolicy) Retryable(err error) bool {
	msg := err.Error()
	for _, s := range p.NonRetryable {
		if strings.Contains(msg, s) {
			return false
		}
	}
	return true
}

// retryBuiltin implements retry(attempts=3, initial="1s", max="1m",
// multiplier=2.0, jitter=0.2, non_retryable=[]).
func retryBuiltin(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	p := &RetryPolicy{Attempts: 3, Initial: time.Second, Max: time.Minute, Multiplier: 2, Jitter: 0.2}
	initial, max := durationArg{d: p.Initial}, durationArg{d: p.Max}
	multiplier, jitter := starlark.Float(p.Multiplier), starlark.Float(p.Jitter)
	var nonRetryable *starlark.List
	if err := starlark.UnpackArgs(b.Name(), args, kwargs,
		"attempts?", &p.Attempts, "initial?", &initial, "max?", &max,
		"multiplier?", &multiplier, "jitter?", &jitter, "non_retryable?", &nonRetryable); err != nil {
		return nil, err
	}
	p.Initial, p.Max, p.Multiplier, p.Jitter = initial.d, max.d, float64(multiplier), float64(jitter)
	switch {
	case p.Attempts < 1 || p.Attempts > 100:
		return nil, fmt.Errorf("%s: attempts must be between 1 and 100, got %d", b.Name(), p.Attempts)
	case p.Multiplier < 1:
		return nil, fmt.Errorf("%s: multiplier must be >= 1, got %g", b.Name(), p.Multiplier)
	case p.Jitter < 0 || p.Jitter > 1:
		return nil, fmt.Errorf("%s: jitter must be between 0 and 1, got %g", b.Name(), p.Jitter)
	case p.Max < p.Initial:
		return nil, fmt.Errorf("%s: max %s is below initial %s", b.Name(), p.Max, p.Initial)
	}
	if nonRetryable != nil {
		for i := 0; i < nonRetryable.Len(); i++ {
			s, ok := starlark.AsString(nonRetryable.Index(i))
			if !ok {
				return nil, fmt.Errorf("%s: non_retryable[%d] is a %s, want string", b.Name(), i, nonRetryable.Index(i).Type())
			}
			p.NonRetryable = append(p.NonRetryable, s)
		}
	}
	return p, nil
}
