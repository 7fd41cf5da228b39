package check

import (
	"encoding/json"
	"errors"
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
	if !mentionsTrigger(prog.Bundle) {
		return nil, nil
	}
	set := &triggers.Set{}
	_, err := prog.Init(predeclared, func(th *starlark.Thread) {
		th.SetMaxExecutionSteps(collectSteps)
		sltime.SetNow(th, func() (time.Time, error) {
			return time.Time{}, errors.New("time.now() at top level would differ between apply and every run")
		})
		builtins.CollectTriggers(th, set)
	})
	if err != nil {
		var de *builtins.DeclarationError
		if errors.As(err, &de) {
			return nil, &sbruntime.InputError{Msg: de.Error()}
		}
		msg := err.Error()
		var ee *starlark.EvalError
		if errors.As(err, &ee) {
			msg = ee.Backtrace()
		}
		return nil, sbruntime.Inputf("runbook %s: its top level failed while its triggers were collected: %s", prog.Bundle.Name, msg)
	}
	if set.Empty() {
		return nil, nil
	}
	return json.Marshal(set)
}

// mentionsTrigger reports whether any file of b uses the name trigger: only
// those have their top level run at apply time.
func mentionsTrigger(b *sbruntime.Bundle) bool {
	for name, src := range b.Files {
		if !strings.Contains(src, "trigger") {
			continue
		}
		f, err := sbruntime.FileOptions.Parse(name, src, 0)
		if err != nil {
			return true // Compile reports it
		}
		found := false
		syntax.Walk(f, func(n syntax.Node) bool {
			if id, ok := n.(*syntax.Ident); ok && id.Name == "trigger" {
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
