package lsp

import (
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	protocol "github.com/tliron/glsp/protocol_3_16"
	"go.starlark.net/syntax"

	"github.com/starbook/starbook/check"
	"github.com/starbook/starbook/reference"
	sbruntime "github.com/starbook/starbook/runtime"
	"github.com/starbook/starbook/stdlib"
)

// parsed is a document's text and its syntax tree.
type parsed struct {
	text string
	file *syntax.File
	// fresh says file is text's tree; when false, file is the tree of an
	// earlier text (the last that parsed) or nil, and its positions are
	// only approximately text's.
	fresh bool
}

// parse parses a runbook file; nil when it does not parse or is too large
// to analyse.
func parse(name, text string) *syntax.File {
	if len(text) > MaxCheckBytes {
		return nil
	}
	f, err := sbruntime.FileOptions.Parse(name, text, syntax.RetainComments)
	if err != nil {
		return nil
	}
	return f
}

// binding is what a top-level name is bound to in a file.
type binding struct {
	node syntax.Node // the name's identifier
	def  *syntax.DefStmt
	// module and orig are set for a name a load() binds: the module's
	// path as written and the name in it.
	module, orig string
}

// bindings are the top-level names a file defines: functions, assignments
// and loads.
func bindings(f *syntax.File) map[string]binding {
	out := map[string]binding{}
	if f == nil {
		return out
	}
	for _, st := range f.Stmts {
		switch st := st.(type) {
		case *syntax.DefStmt:
			out[st.Name.Name] = binding{node: st.Name, def: st}
		case *syntax.AssignStmt:
			if id, ok := st.LHS.(*syntax.Ident); ok {
				if _, dup := out[id.Name]; !dup {
					out[id.Name] = binding{node: id}
				}
			}
		case *syntax.LoadStmt:
			mod, _ := st.Module.Value.(string)
			for i := range st.From {
				if i < len(st.To) {
					out[st.To[i].Name] = binding{node: st.To[i], module: mod, orig: st.From[i].Name}
				}
			}
		}
	}
	return out
}

// URIPath is the file path of a file: URI ("" for another scheme).
func URIPath(uri string) string {
	u, err := url.Parse(uri)
	if err != nil || u.Scheme != "file" {
		return ""
	}
	return filepath.FromSlash(u.Path)
}

// PathURI is the file: URI of an absolute path.
func PathURI(path string) string {
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(path)}).String()
}

// module is a loaded module's source and where an editor opens it.
type module struct {
	uri, text string
	file      *syntax.File
}

// openModule finds what load(name) in the document at uri loads: a
// sibling file (the open document's text when the editor has it) or an
// @std module (written read-only under the cache directory).
func (s *Server) openModule(uri, name string) (*module, bool) {
	if strings.HasPrefix(name, stdlib.Std+"/") {
		path, text, err := s.stdFile(name)
		if err != nil {
			return nil, false
		}
		return &module{uri: PathURI(path), text: text, file: parse(name, text)}, true
	}
	from := URIPath(uri)
	if from == "" {
		return nil, false
	}
	rel, err := sbruntime.ResolveLoad(filepath.Base(from), name, nil)
	if err != nil {
		return nil, false
	}
	path := filepath.Join(filepath.Dir(from), filepath.FromSlash(rel))
	text, ok := s.read(path)
	if !ok {
		return nil, false
	}
	return &module{uri: PathURI(path), text: text, file: parse(rel, text)}, true
}

// read returns a file's text: the editor's when it is open, else the disk's.
func (s *Server) read(path string) (string, bool) {
	if d, ok := s.docs.Get(PathURI(path)); ok {
		return d.Text, true
	}
	st, err := os.Stat(path)
	if err != nil || !st.Mode().IsRegular() || st.Size() > MaxCheckBytes {
		return "", false
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", false
	}
	return string(b), true
}

// stdFile writes an @std module read-only under the user's cache directory
// (once per release) and returns its path and text.
func (s *Server) stdFile(name string) (string, string, error) {
	text, err := s.std.Module(name)
	if err != nil {
		return "", "", err
	}
	dir := filepath.Join(s.cacheDir, "std", safeName(s.std.Release(stdlib.Std)))
	path := filepath.Join(dir, filepath.FromSlash(strings.TrimPrefix(name, stdlib.Std+"/")))
	if b, err := os.ReadFile(path); err == nil && string(b) == text {
		return path, text, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", "", err
	}
	_ = os.Chmod(path, 0o644) // an older copy, to replace
	if err := os.WriteFile(path, []byte(text), 0o444); err != nil {
		return "", "", err
	}
	return path, text, nil
}

func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || r == ':' || r == ' ' {
			return '_'
		}
		return r
	}, s)
}

// target is what a name resolves to: documentation, a place, or both.
type target struct {
	entry *reference.Entry
	uri   string
	rng   protocol.Range
}

// resolve finds what a (possibly dotted) name means in a document: its own
// function or variable, a name loaded from a module, a member of a loaded
// module, or a built-in.
func (s *Server) resolve(uri string, p *parsed, name string) (target, bool) {
	head, member, dotted := strings.Cut(name, ".")
	b, bound := bindings(p.file)[head]
	switch {
	case bound && b.module == "" && !dotted:
		t := target{uri: uri, rng: rangeOf(p.text, b.node)}
		if b.def != nil {
			e := reference.FuncEntry(p.text, b.def)
			t.entry = &e
		}
		return t, true
	case bound && b.module != "":
		m, ok := s.openModule(uri, b.module)
		if !ok {
			break
		}
		want := b.orig
		if dotted {
			// k8s.rollout_restart: the field of the module's struct, or a
			// function of that name.
			if e, ok := reference.Lookup(b.orig + "." + member); ok && e.Module == b.module {
				t := target{entry: &e, uri: m.uri}
				if r, ok := memberRange(m, b.orig, member); ok {
					t.rng = r
				}
				return t, true
			}
			want = member
		}
		mb, ok := bindings(m.file)[want]
		if dotted && !ok {
			if r, ok := memberRange(m, b.orig, member); ok {
				return target{uri: m.uri, rng: r}, true
			}
		}
		t := target{uri: m.uri}
		if ok {
			t.rng = rangeOf(m.text, mb.node)
			if mb.def != nil {
				e := reference.FuncEntry(m.text, mb.def)
				t.entry = &e
			}
		}
		if !dotted && t.entry == nil {
			if e, ok := reference.Lookup(b.orig); ok && e.Module == b.module {
				t.entry = &e
			}
		}
		return t, true
	}
	if bound {
		return target{}, false
	}
	if e, ok := reference.Lookup(name); ok && e.Module == "" {
		return target{entry: &e}, true
	}
	return target{}, false
}

// memberRange is where a module exports member: the def its struct field
// names (k8s = struct(**_PUBLIC) with "rollout_restart": rollout_restart),
// or a def named member.
func memberRange(m *module, structName, member string) (protocol.Range, bool) {
	bs := bindings(m.file)
	if b, ok := bs[member]; ok && b.def != nil {
		return rangeOf(m.text, b.node), true
	}
	// A field value spelled differently from the key: member = _impl.
	re := regexp.MustCompile(`(?m)^\s*"?` + regexp.QuoteMeta(member) + `"?\s*[=:]\s*([A-Za-z_]\w*)`)
	if sm := re.FindStringSubmatch(m.text); sm != nil {
		if b, ok := bs[sm[1]]; ok {
			return rangeOf(m.text, b.node), true
		}
	}
	return protocol.Range{}, false
}

func isIdent(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// dottedAt is the dotted name under the cursor, up to the end of the
// identifier the cursor is on ("http" on http, "http.post" on post).
func dottedAt(text string, off int) string {
	if off > len(text) {
		off = len(text)
	}
	end := off
	for end < len(text) && isIdent(text[end]) {
		end++
	}
	start := off
	for start > 0 && (isIdent(text[start-1]) || text[start-1] == '.') {
		start--
	}
	return strings.Trim(text[start:end], ".")
}

var (
	stdLoadRe = regexp.MustCompile(`load\(\s*"@std/([\w./]*)$`)
	memberRe  = regexp.MustCompile(`([A-Za-z_]\w*)\.(\w*)$`)
	identRe   = regexp.MustCompile(`[A-Za-z_]\w*$`)
)

// complete lists what may be typed at off.
func (s *Server) complete(uri string, p *parsed, off int) []protocol.CompletionItem {
	line := p.text[lineStart(p.text, strings.Count(p.text[:off], "\n")):off]
	if m := stdLoadRe.FindStringSubmatch(line); m != nil {
		var items []protocol.CompletionItem
		for _, e := range reference.All() {
			if e.Kind == reference.Module && strings.HasPrefix(e.Module, stdlib.Std+"/") {
				items = append(items, item(strings.TrimPrefix(e.Module, stdlib.Std+"/"), protocol.CompletionItemKindModule, e))
			}
		}
		return items
	}
	if m := memberRe.FindStringSubmatch(line); m != nil {
		head := m[1]
		prefix := head
		if b, ok := bindings(p.file)[head]; ok && b.module != "" {
			prefix = b.orig
			if mod, ok := s.openModule(uri, b.module); ok && !strings.HasPrefix(b.module, stdlib.Std+"/") {
				return moduleMembers(mod, b.orig)
			}
		}
		var items []protocol.CompletionItem
		for _, e := range reference.Members(prefix) {
			label := strings.TrimPrefix(e.Name, prefix+".")
			if strings.Contains(label, ".") {
				continue
			}
			items = append(items, item(label, kindOf(e), e))
		}
		return items
	}
	var items []protocol.CompletionItem
	seen := map[string]bool{}
	for name, b := range bindings(p.file) {
		seen[name] = true
		ci := protocol.CompletionItem{Label: name}
		k := protocol.CompletionItemKindVariable
		if b.def != nil {
			k = protocol.CompletionItemKindFunction
			e := reference.FuncEntry(p.text, b.def)
			ci.Detail = &e.Signature
			ci.Documentation = markup(e.Markdown())
		} else if b.module != "" {
			k = protocol.CompletionItemKindModule
			detail := "load(\"" + b.module + "\")"
			ci.Detail = &detail
		}
		ci.Kind = &k
		items = append(items, ci)
	}
	for _, name := range locals(p, off) {
		if !seen[name] {
			seen[name] = true
			k := protocol.CompletionItemKindVariable
			items = append(items, protocol.CompletionItem{Label: name, Kind: &k})
		}
	}
	for _, e := range reference.All() {
		if strings.Contains(e.Name, ".") || e.Module != "" || seen[e.Name] {
			continue
		}
		items = append(items, item(e.Name, kindOf(e), e))
	}
	slices.SortFunc(items, func(a, b protocol.CompletionItem) int { return strings.Compare(a.Label, b.Label) })
	return items
}

// locals are the parameters and assigned names of the top-level function
// the cursor is in.
func locals(p *parsed, off int) []string {
	if p.file == nil {
		return nil
	}
	line := int32(strings.Count(p.text[:off], "\n") + 1)
	var out []string
	for _, st := range p.file.Stmts {
		def, ok := st.(*syntax.DefStmt)
		if !ok {
			continue
		}
		start, end := def.Span()
		if line < start.Line || line > end.Line+1 {
			continue
		}
		for _, param := range def.Params {
			switch param := param.(type) {
			case *syntax.Ident:
				out = append(out, param.Name)
			case *syntax.BinaryExpr: // name = default
				out = append(out, check.BoundNames(param.X)...)
			case *syntax.UnaryExpr: // *args, **kwargs; a bare * has no X
				if param.X != nil {
					out = append(out, check.BoundNames(param.X)...)
				}
			}
		}
		syntax.Walk(def, func(n syntax.Node) bool {
			switch n := n.(type) {
			case *syntax.AssignStmt:
				out = append(out, check.BoundNames(n.LHS)...)
			case *syntax.ForStmt:
				out = append(out, check.BoundNames(n.Vars)...)
			case *syntax.DefStmt:
				if n != def {
					out = append(out, n.Name.Name)
				}
			}
			return true
		})
	}
	return out
}

// moduleMembers completes NAME. for a sibling module: the fields of its
// struct NAME, or its public top-level names.
func moduleMembers(m *module, name string) []protocol.CompletionItem {
	var items []protocol.CompletionItem
	for _, e := range reference.ModuleEntries("module/"+name+".star", m.text)[1:] {
		items = append(items, item(strings.TrimPrefix(e.Name, name+"."), kindOf(e), e))
	}
	return items
}

func kindOf(e reference.Entry) protocol.CompletionItemKind {
	switch e.Kind {
	case reference.Module:
		return protocol.CompletionItemKindModule
	case reference.Value:
		return protocol.CompletionItemKindVariable
	}
	return protocol.CompletionItemKindFunction
}

func item(label string, k protocol.CompletionItemKind, e reference.Entry) protocol.CompletionItem {
	sig := e.Signature
	return protocol.CompletionItem{Label: label, Kind: &k, Detail: &sig, Documentation: markup(e.Markdown())}
}

func markup(md string) protocol.MarkupContent {
	return protocol.MarkupContent{Kind: protocol.MarkupKindMarkdown, Value: md}
}

// callAt finds the call whose arguments the cursor is in: the callee's
// dotted name and the index of the argument under the cursor.
func callAt(text string, off int) (string, int, bool) {
	depth, commas := 0, 0
	floor := max(0, off-4096) // a call's arguments are not longer than this
	for i := off - 1; i >= floor; i-- {
		switch text[i] {
		case ')', ']', '}':
			depth++
		case '[', '{':
			if depth == 0 {
				return "", 0, false
			}
			depth--
		case ',':
			if depth == 0 {
				commas++
			}
		case '(':
			if depth > 0 {
				depth--
				continue
			}
			j := i
			for j > 0 && text[j-1] == ' ' {
				j--
			}
			name := dottedAt(text[:j], j)
			if name == "" || !identRe.MatchString(name) {
				return "", 0, false
			}
			return name, commas, true
		}
	}
	return "", 0, false
}

// symbols are the document's top-level functions and variables.
func symbols(p *parsed) []protocol.DocumentSymbol {
	var out []protocol.DocumentSymbol
	if p.file == nil {
		return out
	}
	for _, st := range p.file.Stmts {
		var name string
		var k protocol.SymbolKind
		var sel syntax.Node
		switch st := st.(type) {
		case *syntax.DefStmt:
			name, k, sel = st.Name.Name, protocol.SymbolKindFunction, st.Name
		case *syntax.AssignStmt:
			id, ok := st.LHS.(*syntax.Ident)
			if !ok {
				continue
			}
			name, k, sel = id.Name, protocol.SymbolKindVariable, id
		default:
			continue
		}
		out = append(out, protocol.DocumentSymbol{Name: name, Kind: k, Range: rangeOf(p.text, st), SelectionRange: rangeOf(p.text, sel)})
	}
	return out
}
