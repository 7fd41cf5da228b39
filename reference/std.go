package reference

import (
	"io/fs"
	"path"
	"slices"
	"strings"

	"go.starlark.net/syntax"

	"github.com/starbook/starbook/stdlib"
)

// stdEntries reads the entries of the embedded @std modules from their
// docstrings: one Module entry per file (its module docstring) and one
// Function entry per member of the struct the module exports under its
// file's name (k8s = struct(rollout_restart = rollout_restart, ...)).
func stdEntries() []Entry {
	std := stdlib.Embedded()
	names, _ := fs.Glob(std, "*.star")
	var out []Entry
	for _, file := range names {
		if strings.HasSuffix(file, "_test.star") {
			continue
		}
		src, err := fs.ReadFile(std, file)
		if err != nil {
			continue
		}
		out = append(out, ModuleEntries(stdlib.Std+"/"+file, string(src))...)
	}
	return out
}

// ModuleEntries documents a library module from its source: the module
// (named after the file, "k8s" for "@std/k8s.star") and the functions it
// exports as fields of the struct of that name. A module that does not
// parse has no entries.
func ModuleEntries(module, src string) []Entry {
	f, err := (&syntax.FileOptions{Set: true, While: true, TopLevelControl: true, GlobalReassign: true, Recursion: true}).Parse(module, src, syntax.RetainComments)
	if err != nil {
		return nil
	}
	name := strings.TrimSuffix(path.Base(module), ".star")
	defs := map[string]*syntax.DefStmt{}
	dicts := map[string]*syntax.DictExpr{}
	for _, st := range f.Stmts {
		switch st := st.(type) {
		case *syntax.DefStmt:
			defs[st.Name.Name] = st
		case *syntax.AssignStmt:
			id, _ := st.LHS.(*syntax.Ident)
			d, _ := st.RHS.(*syntax.DictExpr)
			if id != nil && d != nil {
				dicts[id.Name] = d
			}
		}
	}
	summary, doc := splitDoc(Docstring(f.Stmts))
	out := []Entry{{Name: name, Signature: "load(\"" + module + "\", \"" + name + "\")", Summary: summary, Doc: doc, Kind: Module, Module: module}}
	for _, st := range f.Stmts {
		as, ok := st.(*syntax.AssignStmt)
		if !ok || as.Op != syntax.EQ {
			continue
		}
		lhs, ok := as.LHS.(*syntax.Ident)
		if !ok || lhs.Name != name {
			continue
		}
		call, ok := as.RHS.(*syntax.CallExpr)
		if !ok {
			continue
		}
		if fn, ok := call.Fn.(*syntax.Ident); !ok || fn.Name != "struct" {
			continue
		}
		// Fields are key = fn, or **_TABLE, a top-level {"key": fn} dict.
		type field struct{ key, val string }
		var fields []field
		for _, arg := range call.Args {
			switch arg := arg.(type) {
			case *syntax.BinaryExpr:
				key, _ := arg.X.(*syntax.Ident)
				if arg.Op != syntax.EQ || key == nil {
					continue
				}
				val := ""
				if id, ok := arg.Y.(*syntax.Ident); ok {
					val = id.Name
				}
				fields = append(fields, field{key.Name, val})
			case *syntax.UnaryExpr:
				id, _ := arg.X.(*syntax.Ident)
				if arg.Op != syntax.STARSTAR || id == nil || dicts[id.Name] == nil {
					continue
				}
				for _, kv := range dicts[id.Name].List {
					kv, _ := kv.(*syntax.DictEntry)
					if kv == nil {
						continue
					}
					k, _ := kv.Key.(*syntax.Literal)
					v, _ := kv.Value.(*syntax.Ident)
					if k == nil || v == nil || k.Token != syntax.STRING {
						continue
					}
					fields = append(fields, field{k.Value.(string), v.Name})
				}
			}
		}
		for _, fd := range fields {
			key, val := struct{ Name string }{fd.key}, struct{ Name string }{fd.val}
			e := Entry{Name: name + "." + key.Name, Signature: name + "." + key.Name, Kind: Value, Module: module}
			if d := defs[val.Name]; d != nil {
				e = FuncEntry(src, d)
				e.Name = name + "." + key.Name
				e.Signature = name + "." + key.Name + strings.TrimPrefix(e.Signature, d.Name.Name)
				e.Module = module
			}
			if e.Summary == "" {
				e.Summary = "`" + e.Name + "` of " + module + "."
			}
			out = append(out, e)
		}
	}
	slices.SortStableFunc(out[1:], func(a, b Entry) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// FuncEntry documents a function a .star file defines: its signature as
// written in src and its docstring.
func FuncEntry(src string, d *syntax.DefStmt) Entry {
	sig := d.Name.Name + "()"
	if start, end := d.Lparen, d.Rparen; start.IsValid() && end.IsValid() {
		if a, b := Offset(src, start), Offset(src, end); a >= 0 && b > a {
			params := strings.Join(strings.Fields(src[a+1:b]), " ")
			params = strings.TrimSuffix(strings.TrimSpace(params), ",")
			sig = d.Name.Name + "(" + params + ")"
		}
	}
	summary, doc := splitDoc(Docstring(d.Body))
	return Entry{Name: d.Name.Name, Signature: sig, Summary: summary, Doc: doc, Kind: Function}
}

// Docstring is the string literal that starts a body, or "".
func Docstring(body []syntax.Stmt) string {
	if len(body) == 0 {
		return ""
	}
	es, ok := body[0].(*syntax.ExprStmt)
	if !ok {
		return ""
	}
	lit, ok := es.X.(*syntax.Literal)
	if !ok || lit.Token != syntax.STRING {
		return ""
	}
	s, _ := lit.Value.(string)
	return s
}

// splitDoc splits a docstring into its first paragraph (the summary, on
// one line) and the rest, dedented.
func splitDoc(s string) (summary, doc string) {
	s = dedent(strings.TrimSpace(s))
	first, rest, _ := strings.Cut(s, "\n\n")
	return strings.Join(strings.Fields(first), " "), strings.TrimSpace(rest)
}

// dedent removes the common indentation of the lines after the first.
func dedent(s string) string {
	lines := strings.Split(s, "\n")
	common := -1
	for _, l := range lines[1:] {
		if strings.TrimSpace(l) == "" {
			continue
		}
		n := len(l) - len(strings.TrimLeft(l, " \t"))
		if common < 0 || n < common {
			common = n
		}
	}
	if common <= 0 {
		return s
	}
	for i := 1; i < len(lines); i++ {
		if len(lines[i]) >= common {
			lines[i] = lines[i][common:]
		} else {
			lines[i] = strings.TrimLeft(lines[i], " \t")
		}
	}
	return strings.Join(lines, "\n")
}

// Offset is the byte offset in src of a syntax position (1-based line, and
// column counted in runes), or -1 when src has no such line.
func Offset(src string, p syntax.Position) int {
	line, col := int(p.Line), int(p.Col)
	if line < 1 {
		return -1
	}
	off := 0
	for l := 1; l < line; l++ {
		i := strings.IndexByte(src[off:], '\n')
		if i < 0 {
			return -1
		}
		off += i + 1
	}
	for c := 1; c < col && off < len(src) && src[off] != '\n'; c++ {
		_, size := utf8DecodeRune(src[off:])
		off += size
	}
	return off
}
