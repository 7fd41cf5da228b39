package builtins

import (
	"fmt"

	"go.starlark.net/starlark"

	"github.com/starbook/starbook/downstream"
)

// httpLimitBuiltin implements http_limit(host, rate=, concurrency=,
// failures=5, cooldown="30s", retry_ratio=0.2), declared at a runbook's
// top level, once per host. It protects host cluster-wide (package
// downstream): a rate ("N/s" or "N/m") and a concurrency shared out between
// the nodes, a circuit breaker that opens after failures consecutive
// failures for cooldown, and a retry budget of retry_ratio retries per
// request. Like budget(), it records the declaration when the runbook is
// applied and does nothing during an execution.
func httpLimitBuiltin(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	set, where := collecting(th)
	if set == nil {
		return starlark.None, nil
	}
	fail := func(err error) (starlark.Value, error) { return declError(where, b, err) }
	var host, rate string
	concurrency, failures := 0, downstream.DefaultFailures
	cooldown := durationArg{d: downstream.DefaultCooldown}
	ratio := starlark.Value(starlark.Float(downstream.DefaultRetryRatio))
	var concurrencyArg starlark.Value
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "host", &host, "rate?", &rate,
		"concurrency?", &concurrencyArg, "failures?", &failures, "cooldown?", &cooldown, "retry_ratio?", &ratio); err != nil {
		return fail(err)
	}
	if concurrencyArg != nil {
		n, err := starlark.AsInt32(concurrencyArg)
		if err != nil {
			return fail(fmt.Errorf("concurrency: want an integer, got %s", concurrencyArg.Type()))
		}
		if n < 1 {
			return fail(fmt.Errorf("concurrency=%d: want at least 1", n))
		}
		concurrency = n
	}
	r, ok := starlark.AsFloat(ratio)
	if !ok {
		return fail(fmt.Errorf("retry_ratio: want a number between 0 and 1, got %s", ratio.Type()))
	}
	l, err := downstream.NewLimit(host, rate, concurrency, failures, cooldown.d, r)
	if err != nil {
		return fail(err)
	}
	if err := set.AddHTTPLimit(l, where); err != nil {
		return fail(err)
	}
	return starlark.None, nil
}
