package builtins

import (
	"errors"
	"fmt"
	"strings"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"

	"github.com/starbook/starbook/triggers"
)

// TriggerModule is the trigger module runbooks declare their triggers with,
// at top level:
//
//	trigger.alert(alertname="KubePodCrashLooping", matchers=['pod=~"api-.*"'], max_concurrent=3)
//	trigger.alert(alertname="HighLatency", group_by=["alertname", "service"], coalesce=True)
//	trigger.cron("*/5 * * * *", tz="Europe/Paris", catch_up="last")
//	trigger.webhook("deploy-done", secret_env="DEPLOY_HOOK_SECRET")
//
// While an execution runs, its functions do nothing and return None. When a
// runbook is applied, the host runs its top level in a thread prepared with
// CollectTriggers, and each call validates its arguments and records the
// declaration with its file:line.
var TriggerModule = &starlarkstruct.Module{
	Name: "trigger",
	Members: starlark.StringDict{
		"alert":   starlark.NewBuiltin("trigger.alert", alertTrigger),
		"cron":    starlark.NewBuiltin("trigger.cron", cronTrigger),
		"webhook": starlark.NewBuiltin("trigger.webhook", webhookTrigger),
	},
}

const triggerSetKey = "starbook.triggers"

// CollectTriggers makes the trigger.* calls th runs record into set.
func CollectTriggers(th *starlark.Thread, set *triggers.Set) { th.SetLocal(triggerSetKey, set) }

// DeclarationError is a trigger declaration that does not validate, with the
// file:line of the call.
type DeclarationError struct {
	Where string // file:line:col of the trigger call
	Func  string // trigger.alert, trigger.cron or trigger.webhook
	Err   error
}

func (e *DeclarationError) Error() string { return fmt.Sprintf("%s: %s: %v", e.Where, e.Func, e.Err) }
func (e *DeclarationError) Unwrap() error { return e.Err }

// collecting returns the set to record into, or nil during an execution.
func collecting(th *starlark.Thread) (*triggers.Set, string) {
	set, _ := th.Local(triggerSetKey).(*triggers.Set)
	if set == nil {
		return nil, ""
	}
	where := "?"
	if th.CallStackDepth() > 1 {
		where = th.CallFrame(1).Pos.String()
	}
	return set, where
}

func declError(where string, b *starlark.Builtin, err error) (starlark.Value, error) {
	// UnpackArgs names the function too: say it once.
	if msg, ok := strings.CutPrefix(err.Error(), b.Name()+": "); ok {
		err = errors.New(msg)
	}
	return nil, &DeclarationError{Where: where, Func: b.Name(), Err: err}
}

// policyArgs are the arguments every trigger takes to bound its runs.
type policyArgs struct {
	maxConcurrent int
	rate          string
	onExcess      string
}

func (p *policyArgs) pairs() []any {
	return []any{"max_concurrent?", &p.maxConcurrent, "rate?", &p.rate, "on_excess?", &p.onExcess}
}

func (p *policyArgs) policy() (triggers.Policy, error) {
	return triggers.NewPolicy(p.maxConcurrent, p.rate, p.onExcess)
}

// alertTrigger implements trigger.alert(**labels, matchers=[], group_by=[],
// coalesce=False, max_concurrent=, rate=, on_excess=): keyword arguments
// other than those are labels matched exactly.
func alertTrigger(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	set, where := collecting(th)
	if set == nil {
		return starlark.None, nil
	}
	fail := func(err error) (starlark.Value, error) { return declError(where, b, err) }
	if len(args) > 0 {
		return fail(fmt.Errorf("takes keyword arguments only: labels (alertname=\"...\") and matchers=[...]"))
	}
	labels := map[string]string{}
	var matchers, groupBy []string
	var pol policyArgs
	var coalesce bool
	var known []starlark.Tuple
	for _, kv := range kwargs {
		name := string(kv[0].(starlark.String))
		switch name {
		case "max_concurrent", "rate", "on_excess":
			known = append(known, kv)
		case "coalesce":
			b, ok := kv[1].(starlark.Bool)
			if !ok {
				return fail(fmt.Errorf("coalesce: want True or False, got %s", kv[1].Type()))
			}
			coalesce = bool(b)
		case "group_by":
			var list starlark.Indexable
			switch v := kv[1].(type) {
			case *starlark.List:
				list = v
			case starlark.Tuple:
				list = v
			default: // a string is indexable too: refuse it
				return fail(fmt.Errorf("group_by: want a list of label names, got %s", kv[1].Type()))
			}
			groupBy = make([]string, 0, list.Len())
			for i := 0; i < list.Len(); i++ {
				s, ok := starlark.AsString(list.Index(i))
				if !ok {
					return fail(fmt.Errorf("group_by[%d]: want a label name (a string), got %s", i, list.Index(i).Type()))
				}
				groupBy = append(groupBy, s)
			}
		case "matchers":
			list, ok := kv[1].(starlark.Indexable)
			if !ok {
				return fail(fmt.Errorf("matchers: want a list of matcher strings, got %s", kv[1].Type()))
			}
			for i := 0; i < list.Len(); i++ {
				s, ok := starlark.AsString(list.Index(i))
				if !ok {
					return fail(fmt.Errorf("matchers[%d]: want a string such as 'pod=~\"api-.*\"', got %s", i, list.Index(i).Type()))
				}
				matchers = append(matchers, s)
			}
		default:
			s, ok := starlark.AsString(kv[1])
			if !ok {
				return fail(fmt.Errorf("label %s: want a string, got %s", name, kv[1].Type()))
			}
			labels[name] = s
		}
	}
	if err := starlark.UnpackArgs(b.Name(), nil, known, pol.pairs()...); err != nil {
		return fail(err)
	}
	t, err := triggers.NewAlert(labels, matchers)
	if err != nil {
		return fail(err)
	}
	if t.Policy, err = pol.policy(); err != nil {
		return fail(err)
	}
	if err := t.SetGrouping(groupBy, coalesce); err != nil {
		return fail(err)
	}
	if err := set.AddAlert(t, where); err != nil {
		return fail(err)
	}
	return starlark.None, nil
}

// cronTrigger implements trigger.cron(spec, tz=, catch_up=, max_catch_up=,
// max_concurrent=, rate=, on_excess=).
func cronTrigger(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	set, where := collecting(th)
	if set == nil {
		return starlark.None, nil
	}
	fail := func(err error) (starlark.Value, error) { return declError(where, b, err) }
	var spec, tz, catchUp string
	var maxCatchUp int
	var pol policyArgs
	pairs := append([]any{"spec", &spec, "tz?", &tz, "catch_up?", &catchUp, "max_catch_up?", &maxCatchUp}, pol.pairs()...)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, pairs...); err != nil {
		return fail(err)
	}
	t, err := triggers.NewCron(spec, tz, catchUp, maxCatchUp)
	if err != nil {
		return fail(err)
	}
	if t.Policy, err = pol.policy(); err != nil {
		return fail(err)
	}
	if err := set.AddCron(t, where); err != nil {
		return fail(err)
	}
	return starlark.None, nil
}

// webhookTrigger implements trigger.webhook(name, secret_env=, token_env=,
// max_body_bytes=, max_concurrent=, rate=, on_excess=).
func webhookTrigger(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	set, where := collecting(th)
	if set == nil {
		return starlark.None, nil
	}
	fail := func(err error) (starlark.Value, error) { return declError(where, b, err) }
	var name, secretEnv, tokenEnv string
	var maxBody int
	var pol policyArgs
	pairs := append([]any{"name", &name, "secret_env?", &secretEnv, "token_env?", &tokenEnv, "max_body_bytes?", &maxBody}, pol.pairs()...)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, pairs...); err != nil {
		return fail(err)
	}
	t, err := triggers.NewWebhook(name, secretEnv, tokenEnv, int64(maxBody))
	if err != nil {
		return fail(err)
	}
	if t.Policy, err = pol.policy(); err != nil {
		return fail(err)
	}
	if err := set.AddWebhook(t, where); err != nil {
		return fail(err)
	}
	return starlark.None, nil
}
