package check

import "go.starlark.net/syntax"

// moduleStructs finds a file's top-level NAME = struct(...) assignments,
// the way a library module exports itself (grafana = struct(annotate =
// annotate)), and what each attribute holds: the name of the global it is
// given (attr = fn), or "" for another value. Attributes spread from a
// top-level dict literal (struct(**_PUBLIC), _PUBLIC = {"get": get}) are
// attributes too. open names the structs with attributes the scan cannot
// list (**a computed dict).
func moduleStructs(f *syntax.File) (structs map[string]map[string]string, open map[string]bool) {
	dicts := map[string]*syntax.DictExpr{}
	var calls []*syntax.AssignStmt
	for _, st := range f.Stmts {
		a, ok := st.(*syntax.AssignStmt)
		if !ok || a.Op != syntax.EQ {
			continue
		}
		id, ok := a.LHS.(*syntax.Ident)
		if !ok {
			continue
		}
		switch rhs := a.RHS.(type) {
		case *syntax.DictExpr:
			dicts[id.Name] = rhs
		case *syntax.CallExpr:
			if fn, ok := rhs.Fn.(*syntax.Ident); ok && fn.Name == "struct" {
				calls = append(calls, a)
			}
		}
	}
	structs, open = map[string]map[string]string{}, map[string]bool{}
	held := func(e syntax.Expr) string {
		if v, ok := e.(*syntax.Ident); ok {
			return v.Name
		}
		return ""
	}
	for _, a := range calls {
		name := a.LHS.(*syntax.Ident).Name
		attrs := map[string]string{}
		for _, arg := range a.RHS.(*syntax.CallExpr).Args {
			switch arg := arg.(type) {
			case *syntax.BinaryExpr:
				if k, ok := arg.X.(*syntax.Ident); ok && arg.Op == syntax.EQ {
					attrs[k.Name] = held(arg.Y)
				}
			case *syntax.UnaryExpr:
				d := dicts[held(arg.X)]
				if arg.Op != syntax.STARSTAR || d == nil {
					open[name] = true
					continue
				}
				for _, e := range d.List {
					entry := e.(*syntax.DictEntry)
					k, ok := entry.Key.(*syntax.Literal)
					if !ok || k.Token != syntax.STRING {
						open[name] = true
						continue
					}
					attrs[k.Value.(string)] = held(entry.Value)
				}
			default:
				open[name] = true // struct(positional) fails at run time
			}
		}
		structs[name] = attrs
	}
	return structs, open
}
