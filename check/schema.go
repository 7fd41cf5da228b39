package check

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"path"
	"slices"
	"strconv"
	"strings"

	"go.starlark.net/starlark"
	"go.starlark.net/syntax"

	sbruntime "github.com/starbook/starbook/runtime"
	"github.com/starbook/starbook/schema"
)

// schemaAssignment returns the top level input_schema = ... of a runbook's
// main file, nil for none (or a file that did not parse).
func schemaAssignment(f *syntax.File) *syntax.AssignStmt {
	if f == nil {
		return nil
	}
	for _, st := range f.Stmts {
		if a, ok := st.(*syntax.AssignStmt); ok && a.Op == syntax.EQ {
			if id, ok := a.LHS.(*syntax.Ident); ok && id.Name == schema.Global {
				return a
			}
		}
	}
	return nil
}

// schemaFileOf is the schema file of the runbook whose main file is main.
func schemaFileOf(main string) string {
	return strings.TrimSuffix(main, ".star") + schema.FileSuffix
}

// inputSchema compiles the input schema b declares, by assign (globals are
// the main file's, after its top level ran) or by its schema file, records
// it in b, and warns on reads of the event the schema does not declare. It
// reports whether b is still fit to store. A schema file counts in the
// version: a new schema is a new version.
func (c *checker) inputSchema(b *sbruntime.Bundle, assign *syntax.AssignStmt, globals starlark.StringDict, s *scanner) bool {
	file := schemaFileOf(b.Main)
	src, hasFile := c.schemaFiles[file]
	var doc []byte
	var where string
	switch {
	case assign != nil && hasFile:
		start, _ := assign.Span()
		c.at(start, Error, "input_schema is also declared by %s: declare a runbook's input schema once", file)
		return false
	case hasFile:
		doc, where = []byte(src), file
	case assign != nil && globals != nil:
		start, _ := assign.Span()
		raw, err := sbruntime.Encode(globals[schema.Global])
		if err != nil {
			c.at(start, Error, "input_schema: %v: want a dict of JSON values (a JSON Schema)", err)
			return false
		}
		doc, where = raw, fmt.Sprintf("%s:%d", b.Main, start.Line)
	default:
		return true
	}
	sch, err := schema.Compile(where, doc)
	if err != nil {
		c.add(compileFinding(err))
		return false
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, doc); err != nil {
		c.add(Finding{File: file, Line: 1, Message: "invalid input schema: " + err.Error()})
		return false
	}
	b.InputSchema, b.InputSchemaAt = compact.Bytes(), where
	if hasFile {
		files := maps.Clone(b.Files)
		files[file] = src
		b.Version = sbruntime.BundleVersion(files)
	}
	c.schemas[b.Main] = sch
	if s != nil {
		c.eventReads(b, sch)
	}
	return true
}

// compileFinding is a schema that does not compile, at its file:line (line
// 1 of a schema file when the error has no line of its own).
func compileFinding(err error) Finding {
	f := Finding{Message: err.Error()}
	var ce *schema.CompileError
	if !errors.As(err, &ce) {
		return f
	}
	f.File, f.Line, f.Message = ce.Where, 1, "invalid input schema: "+ce.Msg
	if i := strings.LastIndexByte(ce.Where, ':'); i > 0 {
		if n, err := strconv.Atoi(ce.Where[i+1:]); err == nil {
			f.File, f.Line = ce.Where[:i], n
		}
	}
	return f
}

// orphanSchemas reports schema files beside no runbook: their schema would
// silently apply to nothing.
func (c *checker) orphanSchemas(bundles []*sbruntime.Bundle) {
	for n := range c.schemaFiles {
		main := strings.TrimSuffix(n, schema.FileSuffix) + ".star"
		if !slices.ContainsFunc(bundles, func(b *sbruntime.Bundle) bool { return b.Main == main }) {
			c.add(Finding{File: n, Line: 1, Message: fmt.Sprintf("no runbook %s beside this schema: NAME%s is the input schema of the runbook NAME.star",
				main, schema.FileSuffix)})
		}
	}
}

// dictMethods are the methods of a dict event: calling one reads no field.
var dictMethods = map[string]bool{"get": true, "keys": true, "items": true, "values": true}

// eventReads warns on event.x and event["x"] in main (event being its
// parameter) when the schema declares its top level properties, closed, and
// x is not among them: such a read fails on every input the schema admits.
// It is a walk of main's syntax tree, not a flow analysis: a function that
// main hands the event to is not followed.
func (c *checker) eventReads(b *sbruntime.Bundle, sch *schema.Schema) {
	f := c.parsed[b.Main]
	if f == nil || len(sch.Properties) == 0 || sch.Open {
		return
	}
	var main *syntax.DefStmt
	for _, st := range f.Stmts {
		if d, ok := st.(*syntax.DefStmt); ok && d.Name.Name == "main" {
			main = d
		}
	}
	if main == nil || len(main.Params) == 0 {
		return
	}
	param := paramName(main.Params[0])
	if param == "" {
		return
	}
	isEvent := func(e syntax.Expr) bool {
		id, ok := e.(*syntax.Ident)
		return ok && id.Name == param
	}
	check := func(pos syntax.Position, name, how string) {
		if !slices.Contains(sch.Properties, name) {
			c.at(pos, Warning, "%s: the input schema (%s) declares no property %q (it declares %s)",
				how, b.InputSchemaAt, name, strings.Join(sch.Properties, ", "))
		}
	}
	calls := map[*syntax.DotExpr]bool{}
	for _, st := range main.Body {
		syntax.Walk(st, func(n syntax.Node) bool {
			switch n := n.(type) {
			case *syntax.DefStmt:
				return !slices.ContainsFunc(n.Params, func(p syntax.Expr) bool { return paramName(p) == param })
			case *syntax.LambdaExpr:
				return !slices.ContainsFunc(n.Params, func(p syntax.Expr) bool { return paramName(p) == param })
			case *syntax.CallExpr:
				d, ok := n.Fn.(*syntax.DotExpr)
				if !ok || !isEvent(d.X) || !dictMethods[d.Name.Name] {
					break
				}
				calls[d] = true
				if d.Name.Name == "get" && len(n.Args) > 0 {
					if name, ok := stringLiteral(n.Args[0]); ok {
						check(n.Lparen, name, fmt.Sprintf("%s.get(%q)", param, name))
					}
				}
			case *syntax.DotExpr:
				if isEvent(n.X) && !calls[n] {
					check(n.Name.NamePos, n.Name.Name, param+"."+n.Name.Name)
				}
			case *syntax.IndexExpr:
				if name, ok := stringLiteral(n.Y); ok && isEvent(n.X) {
					check(n.Lbrack, name, fmt.Sprintf("%s[%q]", param, name))
				}
			}
			return true
		})
	}
}

// paramName is the name a parameter binds ("" for *args and **kwargs).
func paramName(p syntax.Expr) string {
	switch p := p.(type) {
	case *syntax.Ident:
		return p.Name
	case *syntax.BinaryExpr: // name=default
		if id, ok := p.X.(*syntax.Ident); ok {
			return id.Name
		}
	}
	return ""
}

func stringLiteral(e syntax.Expr) (string, bool) {
	lit, ok := e.(*syntax.Literal)
	if !ok || lit.Token != syntax.STRING {
		return "", false
	}
	s, ok := lit.Value.(string)
	return s, ok
}

// testInputs validates the inputs that the runbooks' tests give run()
// when they are constants (literals, or names the test file assigns a
// constant once at top level) and the runbook run declares a schema: a
// test of an input no node would accept tests nothing.
func (c *checker) testInputs(bundles []*sbruntime.Bundle) {
	byMain := map[string]*sbruntime.Bundle{}
	for _, b := range bundles {
		byMain[b.Main] = b
	}
	for _, n := range slices.Sorted(maps.Keys(c.tests)) {
		f, err := sbruntime.FileOptions.Parse(n, c.tests[n], 0)
		if err != nil {
			continue // starbook test reports it
		}
		th := &starlark.Thread{Name: "check test inputs"}
		th.SetMaxExecutionSteps(collectSteps)
		consts := constants(th, f)
		syntax.Walk(f, func(node syntax.Node) bool {
			call, ok := node.(*syntax.CallExpr)
			if !ok {
				return true
			}
			if id, ok := call.Fn.(*syntax.Ident); !ok || id.Name != "run" {
				return true
			}
			pathArg, eventArg := runArgs(call)
			file, ok := stringLiteral(pathArg)
			if !ok {
				return true
			}
			target := path.Clean(path.Join(path.Dir(n), file))
			sch, b := c.schemas[target], byMain[target]
			if sch == nil || b == nil {
				return true
			}
			var input json.RawMessage
			if eventArg != nil {
				if !constant(eventArg, consts) {
					return true
				}
				v, err := starlark.EvalExprOptions(sbruntime.FileOptions, th, eventArg, consts)
				if err != nil {
					return true
				}
				if v != starlark.None {
					if input, err = sbruntime.Encode(v); err != nil {
						return true // run() reports it
					}
				}
			}
			if err := sch.Validate(input); err != nil {
				c.at(call.Lparen, Error, "run(%q): its schema (%s) refuses this input: %v", file, b.InputSchemaAt, err)
			}
			return true
		})
	}
}

// runArgs returns the path and event arguments of a run(path, event) call;
// nil when absent.
func runArgs(call *syntax.CallExpr) (pathArg, eventArg syntax.Expr) {
	pos := 0
	for _, a := range call.Args {
		if kv, ok := a.(*syntax.BinaryExpr); ok && kv.Op == syntax.EQ {
			if id, ok := kv.X.(*syntax.Ident); ok {
				switch id.Name {
				case "path":
					pathArg = kv.Y
				case "event":
					eventArg = kv.Y
				}
			}
			continue
		}
		switch pos {
		case 0:
			pathArg = a
		case 1:
			eventArg = a
		}
		pos++
	}
	return pathArg, eventArg
}

// constants evaluates the names a file assigns once at top level, to a
// constant.
func constants(th *starlark.Thread, f *syntax.File) starlark.StringDict {
	count := map[string]int{}
	syntax.Walk(f, func(n syntax.Node) bool {
		switch n := n.(type) {
		case *syntax.AssignStmt:
			for _, id := range BoundNames(n.LHS) {
				count[id]++
			}
		case *syntax.DefStmt:
			count[n.Name.Name]++
		case *syntax.ForStmt:
			for _, id := range BoundNames(n.Vars) {
				count[id]++
			}
		}
		return true
	})
	out := starlark.StringDict{}
	for _, st := range f.Stmts {
		a, ok := st.(*syntax.AssignStmt)
		if !ok || a.Op != syntax.EQ {
			continue
		}
		id, ok := a.LHS.(*syntax.Ident)
		if !ok || count[id.Name] != 1 || !constant(a.RHS, out) {
			continue
		}
		if v, err := starlark.EvalExprOptions(sbruntime.FileOptions, th, a.RHS, out); err == nil {
			v.Freeze()
			out[id.Name] = v
		}
	}
	return out
}

// BoundNames returns the names the left side of an assignment or a for
// loop binds: a, (b, [c]) = ... binds a, b and c.
func BoundNames(e syntax.Expr) []string {
	switch e := e.(type) {
	case *syntax.Ident:
		return []string{e.Name}
	case *syntax.TupleExpr:
		var out []string
		for _, x := range e.List {
			out = append(out, BoundNames(x)...)
		}
		return out
	case *syntax.ListExpr:
		var out []string
		for _, x := range e.List {
			out = append(out, BoundNames(x)...)
		}
		return out
	case *syntax.ParenExpr:
		return BoundNames(e.X)
	}
	return nil
}

// constant reports whether e evaluates without running any code of the
// file: literals, True/False/None, names in known, and lists, tuples,
// dicts and + of those.
func constant(e syntax.Expr, known starlark.StringDict) bool {
	switch e := e.(type) {
	case *syntax.Literal:
		return true
	case *syntax.Ident:
		_, ok := known[e.Name]
		return ok || e.Name == "True" || e.Name == "False" || e.Name == "None"
	case *syntax.ParenExpr:
		return constant(e.X, known)
	case *syntax.UnaryExpr:
		return (e.Op == syntax.MINUS || e.Op == syntax.PLUS || e.Op == syntax.NOT) && constant(e.X, known)
	case *syntax.BinaryExpr:
		return e.Op == syntax.PLUS && constant(e.X, known) && constant(e.Y, known)
	case *syntax.ListExpr:
		return !slices.ContainsFunc(e.List, func(x syntax.Expr) bool { return !constant(x, known) })
	case *syntax.TupleExpr:
		return !slices.ContainsFunc(e.List, func(x syntax.Expr) bool { return !constant(x, known) })
	case *syntax.DictExpr:
		for _, x := range e.List {
			kv, ok := x.(*syntax.DictEntry)
			if !ok || !constant(kv.Key, known) || !constant(kv.Value, known) {
				return false
			}
		}
		return true
	}
	return false
}
