package builtins

import (
	"fmt"
	"time"

	"go.starlark.net/starlark"

	"github.com/starbook/starbook/triggers"
)

// sloBuiltin implements slo(success, latency={}, window="28d"), declared at
// top level:
//
//	slo(success = 0.99, latency = {"p95": "10m"}, window = "28d")
//
// Like trigger.*, it records the objective when apply runs the top level
// (CollectTriggers) and is a no-op returning None while an execution runs.
func sloBuiltin(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	set, where := collecting(th)
	if set == nil {
		return starlark.None, nil
	}
	fail := func(err error) (starlark.Value, error) { return declError(where, b, err) }
	var success starlark.Value
	var latency *starlark.Dict
	var window starlark.Value = starlark.None
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "success", &success, "latency?", &latency, "window?", &window); err != nil {
		return fail(err)
	}
	ratio, ok := starlark.AsFloat(success)
	if !ok {
		return fail(fmt.Errorf("success: want a ratio such as 0.99, got %s", success.Type()))
	}
	targets := map[string]time.Duration{}
	if latency != nil {
		for _, item := range latency.Items() {
			name, ok := starlark.AsString(item[0])
			if !ok {
				return fail(fmt.Errorf("latency: want percentile keys such as \"p95\", got %s", item[0].Type()))
			}
			d, err := sloDuration(item[1])
			if err != nil {
				return fail(fmt.Errorf("latency %s: %w", name, err))
			}
			if d <= 0 {
				return fail(fmt.Errorf("latency %s=%s: want a positive duration such as \"10m\"", name, item[1]))
			}
			targets[name] = d
		}
	}
	var win time.Duration
	if window != starlark.None {
		d, err := sloDuration(window)
		if err != nil {
			return fail(fmt.Errorf("window: %w", err))
		}
		if d <= 0 {
			return fail(fmt.Errorf("window=%s: want a positive duration such as \"28d\"", window))
		}
		win = d
	}
	o, err := triggers.NewSLO(ratio, targets, win)
	if err != nil {
		return fail(err)
	}
	if err := set.SetSLO(o, where); err != nil {
		return fail(err)
	}
	return starlark.None, nil
}

// sloDuration reads a duration as ParseDuration does, and also strings of
// days with hours after them ("1d12h").
func sloDuration(v starlark.Value) (time.Duration, error) {
	if s, ok := v.(starlark.String); ok {
		return triggers.ParseDuration(string(s))
	}
	return ParseDuration(v)
}
