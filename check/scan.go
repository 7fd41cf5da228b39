package check

import (
	"fmt"
	"slices"
	"strings"

	"go.starlark.net/starlark"
	"go.starlark.net/syntax"

	"github.com/starbook/starbook/builtins"
	sbruntime "github.com/starbook/starbook/runtime"
)

// Where code runs decides which built-ins it may call.
type context int

const (
	atLoad context = iota // a file's top level, run by load and at apply
	inMain                // main, a fan_out item: durable calls, no effects
	inStep                // a function run by call/compensate: effects, no durable calls
)

// effectModules are the modules whose functions are effects.
var effectModules = map[string]bool{"http": true, "slack": true, "ssh": true}

// durable are the built-ins that take a position in history.
var durable = map[string]bool{"call": true, "fan_out": true, "compensate": true, "sleep": true,
	"wait_for_signal": true, "wait_for_approval": true, "now": true, "uuid": true, "run_runbook": true}

// function is a def or lambda of a bundle file.
type function struct {
	file   string
	name   string // "lambda" for a lambda
	pos    syntax.Position
	body   []syntax.Stmt
	expr   syntax.Expr // a lambda's body
	parent *function   // the enclosing function, nil at top level
	defs   map[string]*function
}

func (f *function) String() string {
	if f.name == "lambda" {
		return fmt.Sprintf("the lambda at %s:%d", f.file, f.pos.Line)
	}
	return f.name
}

// unit is one file's functions and names.
type unit struct {
	name   string
	file   *syntax.File
	defs   map[string]*function // top level defs
	loads  map[string][2]string // local name -> (file, name there)
	bound  map[string]bool      // every name the file binds anywhere
	lambda map[*syntax.LambdaExpr]*function
	nested map[*syntax.DefStmt]*function
}

type scanner struct {
	c       *checker
	facts   *Facts
	b       *sbruntime.Bundle
	units   map[string]*unit
	visited map[*function]map[context]bool
	work    []task
}

type task struct {
	fn  *function
	ctx context
	why string // how the function is reached, for messages
}

// scan reports calls that would fail at run time because of where they run,
// and returns the scanner for further checks of b's syntax trees.
func (c *checker) scan(b *sbruntime.Bundle) *scanner {
	s := &scanner{c: c, b: b, units: map[string]*unit{}, visited: map[*function]map[context]bool{}, facts: &Facts{}}
	names := make([]string, 0, len(b.Files))
	for n := range b.Files {
		if c.parsed[n] != nil {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	for _, n := range names {
		s.units[n] = s.index(n, c.parsed[n])
	}
	for _, n := range names {
		u := s.units[n]
		s.modules(u)
		s.secrets(u)
		s.body(u, nil, u.file.Stmts, nil, atLoad, "at top level")
	}
	if m := s.units[b.Main].defs["main"]; m != nil {
		s.push(m, inMain, "in main")
	}
	for len(s.work) > 0 {
		t := s.work[0]
		s.work = s.work[1:]
		s.body(s.units[t.fn.file], t.fn, t.fn.body, t.fn.expr, t.ctx, t.why)
	}
	return s
}

func (s *scanner) push(fn *function, ctx context, why string) {
	if fn == nil {
		return
	}
	if s.visited[fn] == nil {
		s.visited[fn] = map[context]bool{}
	}
	if s.visited[fn][ctx] {
		return
	}
	s.visited[fn][ctx] = true
	s.work = append(s.work, task{fn, ctx, why})
}

// index finds the functions of a file and the names it binds.
func (s *scanner) index(name string, f *syntax.File) *unit {
	u := &unit{name: name, file: f, defs: map[string]*function{}, loads: map[string][2]string{},
		bound: map[string]bool{}, lambda: map[*syntax.LambdaExpr]*function{}, nested: map[*syntax.DefStmt]*function{}}
	var enclosing []*function
	var visit func(n syntax.Node) bool
	visit = func(n syntax.Node) bool {
		var parent *function
		if len(enclosing) > 0 {
			parent = enclosing[len(enclosing)-1]
		}
		switch n := n.(type) {
		case *syntax.LoadStmt:
			target, ok := moduleOf(name, n.ModuleName(), s.b.Files)
			for i, to := range n.To {
				u.bound[to.Name] = true
				if ok {
					u.loads[to.Name] = [2]string{target, n.From[i].Name}
				}
			}
		case *syntax.DefStmt:
			u.bound[n.Name.Name] = true
			fn := &function{file: name, name: n.Name.Name, pos: n.Def, body: n.Body, parent: parent, defs: map[string]*function{}}
			u.nested[n] = fn
			if parent == nil {
				u.defs[n.Name.Name] = fn
			} else {
				parent.defs[n.Name.Name] = fn
			}
			bindParams(u, n.Params)
			enclosing = append(enclosing, fn)
			for _, st := range n.Body {
				syntax.Walk(st, visit)
			}
			enclosing = enclosing[:len(enclosing)-1]
			return false
		case *syntax.LambdaExpr:
			fn := &function{file: name, name: "lambda", pos: n.Lambda, expr: n.Body, parent: parent, defs: map[string]*function{}}
			u.lambda[n] = fn
			bindParams(u, n.Params)
			enclosing = append(enclosing, fn)
			syntax.Walk(n.Body, visit)
			enclosing = enclosing[:len(enclosing)-1]
			return false
		case *syntax.AssignStmt:
			bindTargets(u, n.LHS)
		case *syntax.ForStmt:
			bindTargets(u, n.Vars)
		case *syntax.ForClause:
			bindTargets(u, n.Vars)
		}
		return true
	}
	for _, st := range f.Stmts {
		syntax.Walk(st, visit)
	}
	return u
}

func bindParams(u *unit, params []syntax.Expr) {
	for _, p := range params {
		switch p := p.(type) {
		case *syntax.Ident:
			u.bound[p.Name] = true
		case *syntax.BinaryExpr: // name=default
			bindTargets(u, p.X)
		case *syntax.UnaryExpr: // *args, **kwargs
			if p.X != nil {
				bindTargets(u, p.X)
			}
		}
	}
}

func bindTargets(u *unit, e syntax.Expr) {
	syntax.Walk(e, func(n syntax.Node) bool {
		if id, ok := n.(*syntax.Ident); ok {
			u.bound[id.Name] = true
		}
		_, isIndex := n.(*syntax.IndexExpr) // x[i] = ... binds nothing
		_, isDot := n.(*syntax.DotExpr)
		return !isIndex && !isDot
	})
}

// lookup finds the function a name means in fn's scope (nil: top level).
func (s *scanner) lookup(u *unit, fn *function, name string) *function {
	for f := fn; f != nil; f = f.parent {
		if d := f.defs[name]; d != nil {
			return d
		}
	}
	return s.global(u, name, 0)
}

func (s *scanner) global(u *unit, name string, depth int) *function {
	if d := u.defs[name]; d != nil {
		return d
	}
	if l, ok := u.loads[name]; ok && depth < 32 {
		if v := s.units[l[0]]; v != nil {
			return s.global(v, l[1], depth+1)
		}
	}
	return nil
}

// member resolves x.name to a function when x is a global (of this file, or
// loaded) bound at top level to struct(..., name = f, ...) and f is a def or a
// lambda; nil otherwise (a local x, a computed field).
func (s *scanner) member(u *unit, fn *function, d *syntax.DotExpr) *function {
	x, ok := d.X.(*syntax.Ident)
	if !ok {
		return nil
	}
	for f := fn; f != nil; f = f.parent {
		if f.defs[x.Name] != nil {
			return nil
		}
	}
	name := x.Name
	for depth := 0; depth < 32; depth++ {
		l, loaded := u.loads[name]
		if !loaded {
			break
		}
		if u = s.units[l[0]]; u == nil {
			return nil
		}
		name = l[1]
	}
	for _, st := range u.file.Stmts {
		a, ok := st.(*syntax.AssignStmt)
		if !ok || a.Op != syntax.EQ {
			continue
		}
		lhs, ok := a.LHS.(*syntax.Ident)
		if !ok || lhs.Name != name {
			continue
		}
		ce, ok := a.RHS.(*syntax.CallExpr)
		if !ok {
			return nil
		}
		if f, ok := ce.Fn.(*syntax.Ident); !ok || f.Name != "struct" {
			return nil
		}
		for _, arg := range ce.Args {
			kw, ok := arg.(*syntax.BinaryExpr)
			if !ok || kw.Op != syntax.EQ {
				continue
			}
			if k, ok := kw.X.(*syntax.Ident); ok && k.Name == d.Name.Name {
				return s.target(u, nil, kw.Y)
			}
		}
		return nil
	}
	return nil
}

// target resolves the function an argument names: a name or a lambda.
func (s *scanner) target(u *unit, fn *function, e syntax.Expr) *function {
	switch e := e.(type) {
	case *syntax.Ident:
		return s.lookup(u, fn, e.Name)
	case *syntax.LambdaExpr:
		return u.lambda[e]
	}
	return nil
}

// builtin reports whether name, used in fn, means the predeclared built-in:
// the file binds no function or variable of that name.
func (s *scanner) builtin(u *unit, fn *function, name string) bool {
	return s.c.opts.Builtins.Has(name) && !u.bound[name] && s.lookup(u, fn, name) == nil
}

// effect returns "http.get" when e is a member of an effect module.
func (s *scanner) effect(u *unit, fn *function, e syntax.Expr) string {
	d, ok := e.(*syntax.DotExpr)
	if !ok {
		return ""
	}
	x, ok := d.X.(*syntax.Ident)
	if !ok || !effectModules[x.Name] || !s.builtin(u, fn, x.Name) {
		return ""
	}
	return x.Name + "." + d.Name.Name
}

// body checks the statements (or lambda body) of fn, run in ctx, without
// entering the functions defined in it, and queues the functions it calls.
func (s *scanner) body(u *unit, fn *function, stmts []syntax.Stmt, expr syntax.Expr, ctx context, why string) {
	visit := func(n syntax.Node) bool {
		switch n := n.(type) {
		case *syntax.DefStmt, *syntax.LambdaExpr:
			return false
		case *syntax.CallExpr:
			s.call(u, fn, n, ctx, why)
		}
		return true
	}
	for _, st := range stmts {
		syntax.Walk(st, visit)
	}
	if expr != nil {
		syntax.Walk(expr, visit)
	}
}

func (s *scanner) call(u *unit, fn *function, ce *syntax.CallExpr, ctx context, why string) {
	pos, _ := ce.Span()
	if name := s.effect(u, fn, ce.Fn); name != "" {
		s.reach(name, pos, ce.Args)
		if ctx != inStep {
			s.c.at(pos, Error, "%s called outside a step (%s): an effect must run inside call() or compensate(), "+
				"or it runs again on every replay; e.g. call(%s, ...)", name, why, name)
		}
		return
	}
	if d, ok := ce.Fn.(*syntax.DotExpr); ok {
		// mod.fn(...): a function exported by a module as a struct field
		// (k8s = struct(get = get)), followed like a direct call.
		if callee := s.member(u, fn, d); callee != nil {
			caller := "the top level"
			if fn != nil {
				caller = fn.String()
			}
			s.push(callee, ctx, fmt.Sprintf("in %s, called directly from %s", callee, caller))
		}
		return
	}
	id, ok := ce.Fn.(*syntax.Ident)
	if !ok {
		return
	}
	if !s.builtin(u, fn, id.Name) {
		if callee := s.lookup(u, fn, id.Name); callee != nil {
			caller := "the top level"
			if fn != nil {
				caller = fn.String()
			}
			s.push(callee, ctx, fmt.Sprintf("in %s, called directly from %s", callee, caller))
		}
		return
	}
	switch {
	case id.Name == "idempotency_key" && ctx != inStep:
		s.c.at(pos, Error, "idempotency_key() called outside a step (%s): it is the key of the running step", why)
	case durable[id.Name] && ctx == inStep:
		s.c.at(pos, Error, "%s() called inside a step (%s): steps do not nest; call it from main or a fan_out item", id.Name, why)
	case durable[id.Name] && ctx == atLoad:
		s.c.at(pos, Error, "%s() called at load time (%s): durable calls run only while main() runs", id.Name, why)
	}
	var first syntax.Expr
	if len(ce.Args) > 0 {
		if _, named := ce.Args[0].(*syntax.BinaryExpr); !named {
			first = ce.Args[0]
		}
	}
	if first == nil && id.Name == "fan_out" {
		for _, a := range ce.Args {
			if kw, ok := a.(*syntax.BinaryExpr); ok && kw.Op == syntax.EQ {
				if k, ok := kw.X.(*syntax.Ident); ok && k.Name == "fn" {
					first = kw.Y
				}
			}
		}
	}
	if first == nil {
		return
	}
	if id.Name == "run_runbook" { // a child start: on_apply sees it as an effect
		s.facts.Effects = append(s.facts.Effects, Effect{Kind: "runbook", Runbook: literalString(first),
			File: pos.Filename(), Line: int(pos.Line)})
		return
	}
	switch id.Name {
	case "call", "compensate":
		if name := s.effect(u, fn, first); name != "" {
			s.reach(name, pos, ce.Args[1:])
		}
		if t := s.target(u, fn, first); t != nil {
			s.push(t, inStep, fmt.Sprintf("in %s, a step run by %s() at %s:%d", t, id.Name, pos.Filename(), pos.Line))
		}
	case "fan_out":
		if name := s.effect(u, fn, first); name != "" {
			s.c.at(pos, Error, "fan_out runs %s in each item's thread, outside a step: wrap it, "+
				"e.g. fan_out(lambda x: call(%s, x), items)", name, name)
			return
		}
		if t := s.target(u, fn, first); t != nil {
			s.push(t, inMain, fmt.Sprintf("in %s, a fan_out item function at %s:%d", t, pos.Filename(), pos.Line))
		}
	}
}

// modules reports members of built-in modules that do not exist.
func (s *scanner) modules(u *unit) {
	syntax.Walk(u.file, func(n syntax.Node) bool {
		d, ok := n.(*syntax.DotExpr)
		if !ok {
			return true
		}
		x, ok := d.X.(*syntax.Ident)
		if !ok || u.bound[x.Name] || !s.c.opts.Builtins.Has(x.Name) {
			return true
		}
		m, ok := s.c.opts.Builtins[x.Name].(starlark.HasAttrs)
		if !ok {
			return true
		}
		names := m.AttrNames()
		if !slices.Contains(names, d.Name.Name) {
			s.c.at(d.Name.NamePos, Error, "%s has no member %s (it has %s)", x.Name, d.Name.Name, strings.Join(names, ", "))
		}
		return true
	})
}

// secrets reports secret("NAME") calls whose NAME is not set, and those at
// top level.
func (s *scanner) secrets(u *unit) {
	if !s.builtin(u, nil, "secret") {
		return
	}
	var visit func(n syntax.Node, top bool) bool
	walk := func(n syntax.Node, top bool) { syntax.Walk(n, func(n syntax.Node) bool { return visit(n, top) }) }
	visit = func(n syntax.Node, top bool) bool {
		switch n := n.(type) {
		case *syntax.DefStmt:
			for _, st := range n.Body {
				walk(st, false)
			}
			return false
		case *syntax.LambdaExpr:
			walk(n.Body, false)
			return false
		case *syntax.CallExpr:
			id, ok := n.Fn.(*syntax.Ident)
			if !ok || id.Name != "secret" || len(n.Args) == 0 {
				return true
			}
			pos, _ := n.Span()
			if top {
				s.c.at(pos, Warning, "secret() at top level is read whenever the file is loaded, apply included "+
					"(a runbook with triggers cannot be applied where it is not set): read it in main or in a step")
			}
			lit, ok := n.Args[0].(*syntax.Literal)
			if !ok || lit.Token != syntax.STRING {
				return true
			}
			name, _ := lit.Value.(string)
			if strings.HasPrefix(name, builtins.ReservedSecretPrefix) {
				s.c.at(pos, Error, "secret(%q): names starting with %s are starbook's own settings and are refused",
					name, builtins.ReservedSecretPrefix)
				return true
			}
			s.facts.addSecret(name)
			if s.c.opts.LookupEnv == nil {
				return true
			}
			if _, set := s.c.opts.LookupEnv(name); !set {
				s.c.at(pos, Warning, "secret %q is not set in the environment: a run that reads it fails there", name)
			}
		}
		return true
	}
	for _, st := range u.file.Stmts {
		walk(st, true)
	}
}
