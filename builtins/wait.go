package builtins

import (
	"fmt"

	"go.starlark.net/starlark"

	sbruntime "github.com/starbook/starbook/runtime"
)

// waitForSignalBuiltin implements wait_for_signal(name, timeout=None): park
// until the signal is delivered (starbook signal, the API, a resolved alert)
// and return {"name", "data", "by", "at", "timed_out": False}; if timeout
// passes first, {"name", "data": None, "timed_out": True}. A signal sent
// before the script gets here is kept and returned at once.
func waitForSignalBuiltin(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var name string
	var timeout durationArg
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "name", &name, "timeout?", &timeout); err != nil {
		return nil, err
	}
	if name == "" {
		return nil, fmt.Errorf("%s: name must not be empty", b.Name())
	}
	spec := sbruntime.WaitSpec{
		StepSpec:  sbruntime.StepSpec{Kind: sbruntime.KindSignal, Name: name},
		Timeout:   timeout.d,
		OnTimeout: sbruntime.SignalTimeout(name),
	}
	if timeout.set && timeout.d == 0 {
		return nil, fmt.Errorf("%s: timeout must be positive", b.Name())
	}
	return sbruntime.Await(th, spec)
}
