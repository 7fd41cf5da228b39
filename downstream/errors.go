package downstream

import (
	"fmt"
	"time"
)

// OpenError fails a request fast, without sending it, while its host's
// circuit is open (or half-open with a probe in flight). It is retryable
// later: RetryAfterHint is the time left until a probe may go.
type OpenError struct {
	Host    string
	Until   time.Time
	Probing bool          // half-open: another request probes the host
	Wait    time.Duration // until Until, when the error was made
}

func (e *OpenError) Error() string {
	if e.Probing {
		return fmt.Sprintf("circuit half-open for %s: a probe is in flight until %s", e.Host, e.Until.UTC().Format(time.RFC3339))
	}
	return fmt.Sprintf("circuit open for %s until %s", e.Host, e.Until.UTC().Format(time.RFC3339))
}

// RetryAfterHint is the wait before the circuit may let a probe through.
func (e *OpenError) RetryAfterHint() time.Duration { return e.Wait }

// RetryBudgetError refuses a retry: retries to Host already reach Ratio of
// its requests. A retrying step fails with its last error instead.
type RetryBudgetError struct {
	Host  string
	Ratio float64
}

func (e *RetryBudgetError) Error() string {
	return fmt.Sprintf("retry budget of %s spent: retries are at most %g%% of its requests", e.Host, e.Ratio*100)
}

// ThrottleError is a request whose wait for its host's rate limit would
// outlast its deadline.
type ThrottleError struct {
	Host string
	Rate string
	Err  error
}

func (e *ThrottleError) Error() string {
	return fmt.Sprintf("rate limit %s of %s: %v", e.Rate, e.Host, e.Err)
}

func (e *ThrottleError) Unwrap() error { return e.Err }
