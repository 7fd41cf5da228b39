package check

import (
	"fmt"
	"slices"
	"strings"

	"go.starlark.net/syntax"

	sbruntime "github.com/starbook/starbook/runtime"
)

// moduleInfo is what a module file defines at top level, as the scan sees it.
type moduleInfo struct {
	globals map[string]bool
	// funcs are its def statements by name.
	funcs map[string]*syntax.DefStmt
	// structs are its globals bound to struct(attr = function, ...):
	// how a library module exports itself (grafana = struct(annotate =
	// annotate)); an attribute that is not one of its defs maps to nil.
	structs map[string]map[string]*syntax.DefStmt
	// open are the structs with attributes the scan cannot list.
	open map[string]bool
}

// topLevelOf describes the top level of f.
func topLevelOf(f *syntax.File) *moduleInfo {
	m := &moduleInfo{globals: map[string]bool{}, funcs: map[string]*syntax.DefStmt{}, structs: map[string]map[string]*syntax.DefStmt{}}
	var bind func(e syntax.Expr)
	bind = func(e syntax.Expr) {
		switch e := e.(type) {
		case *syntax.Ident:
			m.globals[e.Name] = true
		case *syntax.TupleExpr:
			for _, x := range e.List {
				bind(x)
			}
		case *syntax.ListExpr:
			for _, x := range e.List {
				bind(x)
			}
		case *syntax.ParenExpr:
			bind(e.X)
		}
	}
	var stmts func([]syntax.Stmt)
	stmts = func(list []syntax.Stmt) {
		for _, s := range list {
			switch s := s.(type) {
			case *syntax.DefStmt:
				m.globals[s.Name.Name] = true
				m.funcs[s.Name.Name] = s
			case *syntax.AssignStmt:
				bind(s.LHS)
			case *syntax.ForStmt:
				bind(s.Vars)
				stmts(s.Body)
			case *syntax.IfStmt:
				stmts(s.True)
				stmts(s.False)
			}
		}
	}
	stmts(f.Stmts)
	structs, open := moduleStructs(f)
	m.open = open
	for name, attrs := range structs {
		m.structs[name] = map[string]*syntax.DefStmt{}
		for attr, held := range attrs {
			m.structs[name][attr] = m.funcs[held] // nil: not one of its defs
		}
	}
	return m
}

// publicNames lists m's globals a load can take, sorted.
func (m *moduleInfo) publicNames() []string {
	var out []string
	for n := range m.globals {
		if !strings.HasPrefix(n, "_") {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// loads checks every load statement against the module it loads: each name
// it takes must be a public global of that module (a typo, or a function
// the module does not have, is an error at the name); and each call through
// a loaded function, or a struct of functions as library modules export
// themselves (grafana.annotate(...)), must fit the function's parameters:
// no unknown keyword, not too many or too few arguments, and a literal
// argument of the type of the parameter's literal default.
func (c *checker) loads() {
	modules := map[string]*moduleInfo{}
	module := func(name string) *moduleInfo {
		if m, ok := modules[name]; ok {
			return m
		}
		var m *moduleInfo
		if f := c.parsed[name]; f != nil {
			m = topLevelOf(f)
		}
		modules[name] = m
		return m
	}
	names := make([]string, 0, len(c.parsed))
	for n := range c.parsed {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, from := range names {
		f := c.parsed[from]
		funcs := map[string]*syntax.DefStmt{}              // local name -> loaded function
		structs := map[string]map[string]*syntax.DefStmt{} // local name -> loaded struct
		open := map[string]bool{}                          // local name -> its struct is open
		for _, stmt := range f.Stmts {
			load, ok := stmt.(*syntax.LoadStmt)
			if !ok {
				continue
			}
			target, err := sbruntime.ResolveLoad(from, load.ModuleName(), nil)
			if err != nil {
				continue // BundlesFromFiles reports it
			}
			m := module(target)
			if m == nil {
				continue // not there: reported where it is looked for
			}
			for i, name := range load.From {
				switch {
				case strings.HasPrefix(name.Name, "_"):
					c.at(name.NamePos, Error, "load %q: %s is private to the module (names starting with _ are not exported)", load.ModuleName(), name.Name)
				case !m.globals[name.Name]:
					c.at(name.NamePos, Error, "load %q: the module has no %s (it has %s)", load.ModuleName(), name.Name, strings.Join(m.publicNames(), ", "))
				default:
					local := load.To[i].Name
					if fn := m.funcs[name.Name]; fn != nil {
						funcs[local] = fn
					}
					if st := m.structs[name.Name]; st != nil {
						structs[local] = st
						open[local] = m.open[name.Name]
					}
				}
			}
		}
		if len(funcs) == 0 && len(structs) == 0 {
			continue
		}
		syntax.Walk(f, func(n syntax.Node) bool {
			call, ok := n.(*syntax.CallExpr)
			if !ok {
				return true
			}
			switch fn := call.Fn.(type) {
			case *syntax.Ident:
				if def := funcs[fn.Name]; def != nil {
					c.checkCall(call, fn.Name, def)
				}
			case *syntax.DotExpr:
				x, ok := fn.X.(*syntax.Ident)
				if !ok || structs[x.Name] == nil {
					break
				}
				name := x.Name + "." + fn.Name.Name
				def, ok := structs[x.Name][fn.Name.Name]
				if !ok && open[x.Name] {
					break // an attribute the scan cannot see
				}
				if !ok {
					attrs := make([]string, 0, len(structs[x.Name]))
					for a := range structs[x.Name] {
						attrs = append(attrs, a)
					}
					slices.Sort(attrs)
					c.at(fn.Name.NamePos, Error, "%s: %s has no function %s (it has %s)", name, x.Name, fn.Name.Name, strings.Join(attrs, ", "))
					break
				}
				if def != nil {
					c.checkCall(call, name, def)
				}
			}
			return true
		})
	}
}

// checkCall checks call's arguments against def's parameters, as far as
// the syntax tells: name is what the call calls ("grafana.annotate").
func (c *checker) checkCall(call *syntax.CallExpr, name string, def *syntax.DefStmt) {
	type param struct {
		name string
		def  syntax.Expr // nil: required
	}
	var params []param
	varargs, kwargs, kwonly := false, false, false
	var kwonlyParams []param
	for _, p := range def.Params {
		switch p := p.(type) {
		case *syntax.Ident:
			if kwonly {
				kwonlyParams = append(kwonlyParams, param{p.Name, nil})
			} else {
				params = append(params, param{p.Name, nil})
			}
		case *syntax.BinaryExpr: // name = default
			id, _ := p.X.(*syntax.Ident)
			if id == nil {
				return
			}
			if kwonly {
				kwonlyParams = append(kwonlyParams, param{id.Name, p.Y})
			} else {
				params = append(params, param{id.Name, p.Y})
			}
		case *syntax.UnaryExpr:
			switch {
			case p.Op == syntax.STAR && p.X == nil:
				kwonly = true
			case p.Op == syntax.STAR:
				varargs, kwonly = true, true
			case p.Op == syntax.STARSTAR:
				kwargs = true
			}
		}
	}
	all := slices.Concat(params, kwonlyParams)
	given := map[string]syntax.Expr{}
	positional := 0
	for _, arg := range call.Args {
		switch a := arg.(type) {
		case *syntax.UnaryExpr:
			if a.Op == syntax.STAR || a.Op == syntax.STARSTAR {
				return // *args or **kwargs: the scan cannot count them
			}
		case *syntax.BinaryExpr:
			if a.Op == syntax.EQ {
				k, _ := a.X.(*syntax.Ident)
				if k == nil {
					continue
				}
				if !slices.ContainsFunc(all, func(p param) bool { return p.name == k.Name }) {
					if !kwargs {
						c.at(k.NamePos, Error, "%s: unexpected keyword argument %s (it takes %s)", name, k.Name, paramList(def))
					}
					continue
				}
				given[k.Name] = a.Y
				continue
			}
		}
		if positional < len(params) {
			given[params[positional].name] = arg
		} else if !varargs {
			pos, _ := call.Span()
			c.at(pos, Error, "%s: too many arguments, %d positional (it takes %s)", name, positional+1, paramList(def))
			return
		}
		positional++
	}
	for _, p := range all {
		arg, ok := given[p.name]
		if !ok {
			if p.def == nil {
				pos, _ := call.Span()
				c.at(pos, Error, "%s: missing argument %s (it takes %s)", name, p.name, paramList(def))
			}
			continue
		}
		if want, got := literalType(p.def), literalType(arg); want != "" && got != "" && kindOf(want) != kindOf(got) {
			pos, _ := arg.Span()
			c.at(pos, Error, "%s: argument %s is a %s, want a %s (its default is %s)", name, p.name, got, want, exprString(p.def))
		}
	}
}

// kindOf groups the literal types a function taking one takes the other
// of, as far as a check can say: numbers, and sequences.
func kindOf(literal string) string {
	switch literal {
	case "int", "float":
		return "number"
	case "list", "tuple":
		return "sequence"
	}
	return literal
}

// literalType names the type of a literal expression ("string", "int",
// "list", ...), or "" for one that is not a literal (or is None).
func literalType(e syntax.Expr) string {
	switch e := e.(type) {
	case *syntax.Literal:
		switch e.Token {
		case syntax.STRING:
			return "string"
		case syntax.BYTES:
			return "bytes"
		case syntax.INT:
			return "int"
		case syntax.FLOAT:
			return "float"
		}
	case *syntax.ListExpr:
		return "list"
	case *syntax.DictExpr:
		return "dict"
	case *syntax.Comprehension:
		if e.Curly {
			return "dict"
		}
		return "list"
	case *syntax.TupleExpr:
		return "tuple"
	case *syntax.Ident:
		if e.Name == "True" || e.Name == "False" {
			return "bool"
		}
	case *syntax.UnaryExpr:
		if e.Op == syntax.MINUS || e.Op == syntax.PLUS {
			return literalType(e.X)
		}
	case *syntax.ParenExpr:
		return literalType(e.X)
	}
	return ""
}

// paramList spells def's parameters as its def line does: "url, text, tags = [], ...".
func paramList(def *syntax.DefStmt) string {
	parts := make([]string, 0, len(def.Params))
	for _, p := range def.Params {
		parts = append(parts, exprString(p))
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

// exprString writes a parameter or a literal back as source, shortly.
func exprString(e syntax.Expr) string {
	switch e := e.(type) {
	case *syntax.Ident:
		return e.Name
	case *syntax.Literal:
		return e.Raw
	case *syntax.BinaryExpr:
		if e.Op == syntax.EQ {
			return exprString(e.X) + " = " + exprString(e.Y)
		}
	case *syntax.UnaryExpr:
		if e.X == nil {
			return e.Op.String()
		}
		return e.Op.String() + exprString(e.X)
	case *syntax.ListExpr:
		if len(e.List) == 0 {
			return "[]"
		}
		return "[...]"
	case *syntax.DictExpr:
		if len(e.List) == 0 {
			return "{}"
		}
		return "{...}"
	}
	return fmt.Sprintf("%T", e)[len("*syntax."):]
}
