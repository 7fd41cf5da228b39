package stdlib_test

import (
	"fmt"
	"os"
	"path"
	"slices"
	"strings"
	"testing"

	"go.starlark.net/syntax"

	"github.com/starbook/starbook/builtins"
	"github.com/starbook/starbook/check"
	sbruntime "github.com/starbook/starbook/runtime"
	"github.com/starbook/starbook/stdlib"
)

// TestModuleHygiene holds every module of std/, whoever adds it, to the
// library's rules: a module docstring; a docstring on each public
// function; the module exported as one struct named after its file
// (k8s.star: k8s = struct(...)); and a runbook that loads the module and
// calls each of its public functions, through the struct and directly,
// passes `starbook check` with no error: no module calls an effect
// (http.*, slack.*, ssh.run) or reads a secret outside a step, and every
// effect it has is in check's effect list, where policies see it.
func TestModuleHygiene(t *testing.T) {
	entries, err := os.ReadDir("std")
	if err != nil {
		t.Fatal(err)
	}
	set, err := stdlib.Default(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".star") {
			continue
		}
		n++
		t.Run(e.Name(), func(t *testing.T) { moduleHygiene(t, set, e.Name()) })
	}
	if n == 0 {
		t.Fatal("no module in std/")
	}
}

func moduleHygiene(t *testing.T, set *stdlib.Set, file string) {
	src, err := os.ReadFile(path.Join("std", file))
	if err != nil {
		t.Fatal(err)
	}
	name := strings.TrimSuffix(file, ".star")
	lib := stdlib.Std + "/" + file
	f, err := sbruntime.FileOptions.Parse(lib, src, 0)
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasSuffix(name, "_test") {
		t.Fatalf("%s: tests go in tests/, not std/ (std/ is embedded in the binary)", file)
	}
	if len(f.Stmts) == 0 || docstring(f.Stmts) == "" {
		t.Errorf("%s: no module docstring (what it is for, and a load() example)", file)
	} else if doc := docstring(f.Stmts); !strings.Contains(doc, `load("`+lib+`"`) {
		t.Errorf("%s: the module docstring has no usage example load(%q, %q)", file, lib, name)
	}

	var public []string
	exported := map[string]bool{}
	exportsStruct := false
	for _, st := range f.Stmts {
		switch st := st.(type) {
		case *syntax.DefStmt:
			if strings.HasPrefix(st.Name.Name, "_") {
				continue
			}
			public = append(public, st.Name.Name)
			if docstring(st.Body) == "" {
				t.Errorf("%s:%d: public function %s has no docstring", lib, st.Def.Line, st.Name.Name)
			}
		case *syntax.AssignStmt:
			id, ok := st.LHS.(*syntax.Ident)
			call, isCall := st.RHS.(*syntax.CallExpr)
			if !ok || id.Name != name || !isCall {
				continue
			}
			if fn, ok := call.Fn.(*syntax.Ident); !ok || fn.Name != "struct" {
				continue
			}
			exportsStruct = true
			for _, a := range call.Args {
				if kw, ok := a.(*syntax.BinaryExpr); ok && kw.Op == syntax.EQ {
					exported[kw.X.(*syntax.Ident).Name] = true
				}
			}
		}
	}
	if !exportsStruct {
		t.Errorf("%s: no top-level %s = struct(...): a module exports itself as one struct named after its file", file, name)
	}
	if len(public) == 0 {
		t.Errorf("%s: no public function", file)
	}

	// A runbook that calls everything the module offers. *args and
	// **kwargs: check counts no arguments, it follows the calls.
	var calls []string
	attrs := make([]string, 0, len(exported))
	for a := range exported {
		attrs = append(attrs, a)
	}
	slices.Sort(attrs)
	for _, a := range attrs {
		calls = append(calls, fmt.Sprintf("    out.append(%s.%s(*event.args, **event.kwargs))", name, a))
	}
	loads := []string{fmt.Sprintf("%q", name)}
	for _, fn := range public {
		loads = append(loads, fmt.Sprintf("%q", fn))
		calls = append(calls, fmt.Sprintf("    out.append(%s(*event.args, **event.kwargs))", fn))
	}
	runbook := fmt.Sprintf("load(%q, %s)\n\ndef main(event):\n    out = []\n%s\n    return out\n",
		lib, strings.Join(loads, ", "), strings.Join(calls, "\n"))
	res := check.Files(map[string]string{"uses_" + name + ".star": runbook},
		check.Options{Builtins: builtins.New(builtins.Options{}), Libraries: set})
	if err := res.Err(); err != nil {
		t.Fatalf("starbook check of a runbook using %s:\n%v\nthe runbook:\n%s", file, err, runbook)
	}
	if len(res.Bundles) != 1 || res.Bundles[0].Files[lib] != string(src) {
		t.Fatalf("the runbook's bundle does not hold %s as it is in std/", lib)
	}
	facts := res.Facts["uses_"+name]
	if facts == nil {
		t.Fatal("no facts")
	}
	for _, e := range facts.Effects {
		if !strings.HasPrefix(e.File, stdlib.Std+"/") {
			t.Errorf("an effect outside the library: %+v", e)
		}
	}
	t.Logf("%s: %d public functions, %d effects", file, len(public), len(facts.Effects))
}

// docstring returns the string a body (or a file) begins with, if any.
func docstring(stmts []syntax.Stmt) string {
	if len(stmts) == 0 {
		return ""
	}
	x, ok := stmts[0].(*syntax.ExprStmt)
	if !ok {
		return ""
	}
	lit, ok := x.X.(*syntax.Literal)
	if !ok || lit.Token != syntax.STRING {
		return ""
	}
	s, _ := lit.Value.(string)
	return strings.TrimSpace(s)
}
