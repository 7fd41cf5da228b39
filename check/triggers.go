package check

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"time"

	sltime "go.starlark.net/lib/time"
	"go.starlark.net/starlark"
	"go.starlark.net/syntax"

	"github.com/starbook/starbook/builtins"
	sbruntime "github.com/starbook/starbook/runtime"
	"github.com/starbook/starbook/triggers"
)

// collectSteps bounds the top level run at apply time.
const collectSteps = 10_000_000

// Triggers runs the top level of prog's files with a recording trigger
// module and returns the declarations, or nil if the runbook declares none.
// Only runbooks that mention trigger have their top level run. A bad
// declaration is an *InputError with the file:line of its call.
func Triggers(prog *sbruntime.Program, predeclared starlark.StringDict) (json.RawMessage, error) {
	raw, _, err := topLevel(prog, predeclared, false)
	return raw, err
}

// topLevel is Triggers that also returns the main file's globals; it runs
// the top level when always is set (the runbook assigns input_schema) even
// if no declarer is mentioned, and returns nil globals when it did not run.
func topLevel(prog *sbruntime.Program, predeclared starlark.StringDict, always bool) (json.RawMessage, starlark.StringDict, error) {
	if !always && !mentionsTrigger(prog.Bundle) {
		return nil, nil, nil
	}
	set := &triggers.Set{}
	globals, err := prog.Init(predeclared, func(th *starlark.Thread) {
		th.SetMaxExecutionSteps(collectSteps)
		sltime.SetNow(th, func() (time.Time, error) {
			return time.Time{}, errors.New("time.now() at top level would differ between apply and every run")
		})
		builtins.CollectTriggers(th, set)
	})
	if err != nil {
		var de *builtins.DeclarationError
		if errors.As(err, &de) {
			return nil, nil, &sbruntime.InputError{Msg: de.Error()}
		}
		msg := err.Error()
		var ee *starlark.EvalError
		if errors.As(err, &ee) {
			msg = ee.Backtrace()
		}
		return nil, nil, sbruntime.Inputf("runbook %s: its top level failed while its triggers were collected: %s", prog.Bundle.Name, msg)
	}
	if set.Empty() && set.SLO == nil && set.Budget == nil && len(set.HTTPLimits) == 0 {
		return nil, globals, nil
	}
	raw, err := json.Marshal(set)
	return raw, globals, err
}

// declarers are the names whose top level calls declare something: only
// runbooks that use one have their top level run at apply time.
var declarers = []string{"trigger", "slo", "budget", "http_limit"}

// mentionsTrigger reports whether any file of b uses a name of declarers.
func mentionsTrigger(b *sbruntime.Bundle) bool {
	for name, src := range b.Files {
		if !slices.ContainsFunc(declarers, func(d string) bool { return strings.Contains(src, d) }) {
			continue
		}
		f, err := sbruntime.FileOptions.Parse(name, src, 0)
		if err != nil {
			return true // Compile reports it
		}
		found := false
		syntax.Walk(f, func(n syntax.Node) bool {
			if id, ok := n.(*syntax.Ident); ok && slices.Contains(declarers, id.Name) {
				found = true
			}
			return !found
		})
		if found {
			return true
		}
	}
	return false
}

// literalTriggers checks the trigger declarations of a runbook that does not
// compile, whose top level Triggers cannot run: each trigger.* call made as a
// top level statement with constant arguments is made as apply would make
// it, the files in load order. A declaration with a computed argument waits
// until the runbook compiles; the runbook's top level failing before a
// declaration is not foreseen.
func (s *scanner) literalTriggers() {
	th := &starlark.Thread{Name: "check triggers"}
	th.SetMaxExecutionSteps(collectSteps)
	builtins.CollectTriggers(th, &triggers.Set{})
	env := starlark.StringDict{}
	for _, d := range declarers {
		env[d] = s.c.opts.Builtins[d]
	}
	done := map[string]bool{}
	var visit func(name string)
	visit = func(name string) {
		u := s.units[name]
		if u == nil || done[name] {
			return
		}
		done[name] = true
		for _, st := range u.file.Stmts {
			if l, ok := st.(*syntax.LoadStmt); ok {
				if target, ok := moduleOf(name, l.ModuleName(), s.b.Files); ok {
					visit(target)
				}
			}
		}
		declares := map[string]bool{}
		for _, d := range declarers {
			declares[d] = s.builtin(u, nil, d)
		}
		for _, st := range u.file.Stmts {
			es, ok := st.(*syntax.ExprStmt)
			if !ok {
				continue
			}
			ce, ok := es.X.(*syntax.CallExpr)
			if !ok || !declares[declarerOf(ce)] || slices.ContainsFunc(ce.Args, computed) {
				continue
			}
			_, err := starlark.EvalExprOptions(sbruntime.FileOptions, th, ce, env)
			var de *builtins.DeclarationError
			if errors.As(err, &de) {
				s.c.add(locate(name, de.Error()))
			}
		}
	}
	visit(s.b.Main)
}

// declarerOf returns the declarer a call is to: "trigger" for trigger.x(),
// "slo" for slo(), else "".
func declarerOf(ce *syntax.CallExpr) string {
	switch fn := ce.Fn.(type) {
	case *syntax.DotExpr:
		if x, ok := fn.X.(*syntax.Ident); ok && x.Name == "trigger" {
			return "trigger"
		}
	case *syntax.Ident:
		if fn.Name != "trigger" && slices.Contains(declarers, fn.Name) {
			return fn.Name
		}
	}
	return ""
}

// computed reports whether the call argument e is anything but a constant
// or name=constant: evaluating a constant runs no code of the runbook.
func computed(e syntax.Expr) bool {
	switch e := e.(type) {
	case *syntax.Literal:
		return false
	case *syntax.ParenExpr:
		return computed(e.X)
	case *syntax.BinaryExpr: // name=value
		_, named := e.X.(*syntax.Ident)
		return e.Op != syntax.EQ || !named || computed(e.Y)
	case *syntax.UnaryExpr: // -1; *args and **kwargs are computed
		return (e.Op != syntax.MINUS && e.Op != syntax.PLUS) || computed(e.X)
	case *syntax.ListExpr:
		return slices.ContainsFunc(e.List, computed)
	case *syntax.TupleExpr:
		return slices.ContainsFunc(e.List, computed)
	case *syntax.DictExpr:
		for _, x := range e.List {
			kv, ok := x.(*syntax.DictEntry)
			if !ok || computed(kv.Key) || computed(kv.Value) {
				return true
			}
		}
		return false
	}
	return true
}
