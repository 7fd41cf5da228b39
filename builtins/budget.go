package builtins

import (
	"fmt"

	"go.starlark.net/starlark"

	"github.com/starbook/starbook/triggers"
)

// budgetBuiltin implements budget(runs_per_day=, steps_per_run=,
// steps_per_day=, http_calls_per_day=, fan_out_items_per_day=), declared
// once at a runbook's top level: every argument optional, a positive
// integer, at least one. Like trigger.*, it records the declaration when a
// runbook is applied (CollectTriggers) and does nothing during an execution.
func budgetBuiltin(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	set, where := collecting(th)
	if set == nil {
		return starlark.None, nil
	}
	fail := func(err error) (starlark.Value, error) { return declError(where, b, err) }
	if len(args) > 0 {
		return fail(fmt.Errorf("takes keyword arguments only, such as steps_per_day=10000"))
	}
	values := make([]starlark.Value, len(triggers.BudgetNames))
	pairs := make([]any, 0, 2*len(values))
	for i, name := range triggers.BudgetNames {
		pairs = append(pairs, name+"?", &values[i])
	}
	if err := starlark.UnpackArgs(b.Name(), nil, kwargs, pairs...); err != nil {
		return fail(err)
	}
	limits := map[string]int64{}
	for i, v := range values {
		if v == nil {
			continue
		}
		name := triggers.BudgetNames[i]
		n, ok := v.(starlark.Int)
		if !ok {
			return fail(fmt.Errorf("%s: want a positive integer, got %s", name, v.Type()))
		}
		i64, ok := n.Int64()
		if !ok {
			return fail(fmt.Errorf("%s=%s: too large", name, n))
		}
		limits[name] = i64
	}
	budget, err := triggers.NewBudget(limits)
	if err != nil {
		return fail(err)
	}
	if err := set.SetBudget(budget, where); err != nil {
		return fail(err)
	}
	return starlark.None, nil
}
