package runtime

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"

	"go.starlark.net/starlark"
	"go.starlark.net/syntax"
)

// Bundle is one immutable runbook version: its main file and every file it
// loads, transitively.
type Bundle struct {
	Name    string            `json:"name"`
	Version string            `json:"version"`
	Main    string            `json:"main"`  // file name of the entry point
	Files   map[string]string `json:"files"` // file name -> source
	// Triggers is what the runbook declares at top level (trigger.alert, ...),
	// collected by the host when the bundle is applied; opaque to runtime.
	Triggers json.RawMessage `json:"triggers,omitempty"`
	// InputSchema is the JSON Schema the runbook declares for its input
	// (input_schema = {...} at top level, or NAME.schema.json beside it),
	// collected by the host when the bundle is applied; nil for none.
	// Opaque to runtime. A schema file counts in Version.
	InputSchema json.RawMessage `json:"input_schema,omitempty"`
	// InputSchemaAt is where the schema was declared: "NAME.schema.json" or
	// "NAME.star:LINE".
	InputSchemaAt string `json:"input_schema_at,omitempty"`
	// Libraries names the release of each library ("@std", "@team") whose
	// modules the bundle holds: the library files ("@std/k8s.star") are
	// in Files, stored with the version, so that the version replays the
	// module source it was applied with whatever the node's release.
	// Collected by the host when the bundle is applied; opaque to runtime.
	Libraries map[string]string `json:"libraries,omitempty"`
}

// FileNames returns the names of the bundle's files, sorted.
func (b *Bundle) FileNames() []string {
	names := make([]string, 0, len(b.Files))
	for n := range b.Files {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// BundleVersion is the content hash of a bundle's files.
func BundleVersion(files map[string]string) string {
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	h := sha256.New()
	for _, n := range names {
		fmt.Fprintf(h, "%s\x00%d\x00%s\x00", n, len(files[n]), files[n])
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}

// FileOptions are the Starlark dialect runbooks are written in.
var FileOptions = &syntax.FileOptions{
	Set:             true,
	While:           true,
	TopLevelControl: true,
	GlobalReassign:  true,
	Recursion:       true,
}

// Program is a compiled bundle, ready to run any number of times concurrently.
type Program struct {
	Bundle *Bundle
	files  map[string]*starlark.Program
}

// Compile parses and resolves every file of b against the names predeclared
// holds, and checks that the main file defines main(event). Errors carry
// file:line.
func Compile(b *Bundle, predeclared starlark.StringDict) (*Program, error) {
	p := &Program{Bundle: b, files: map[string]*starlark.Program{}}
	if _, ok := b.Files[b.Main]; !ok {
		return nil, fmt.Errorf("bundle %s: main file %s missing", b.Name, b.Main)
	}
	names := make([]string, 0, len(b.Files))
	for n := range b.Files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		f, prog, err := starlark.SourceProgramOptions(FileOptions, name, b.Files[name], predeclared.Has)
		if err != nil {
			return nil, err
		}
		for i := 0; i < prog.NumLoads(); i++ {
			mod, pos := prog.Load(i)
			if _, err := ResolveLoad(name, mod, b.Files); err != nil {
				return nil, fmt.Errorf("%s: %w", pos, err)
			}
		}
		if name == b.Main {
			if err := checkMain(f); err != nil {
				return nil, err
			}
		}
		p.files[name] = prog
	}
	return p, nil
}

// Init runs the top level of the main file and of every file it loads, each
// file in a new thread that prepare configures (step limit, thread-locals),
// and returns the main file's globals, frozen. main itself is not called: a
// host uses Init to see what a runbook declares at top level.
func (p *Program) Init(predeclared starlark.StringDict, prepare func(*starlark.Thread)) (starlark.StringDict, error) {
	modules := map[string]starlark.StringDict{}
	var load func(file string) (starlark.StringDict, error)
	load = func(file string) (starlark.StringDict, error) {
		if g, ok := modules[file]; ok {
			if g == nil {
				return nil, fmt.Errorf("load cycle through %s", file)
			}
			return g, nil
		}
		prog, ok := p.files[file]
		if !ok {
			return nil, fmt.Errorf("load %s: not in runbook %s", file, p.Bundle.Name)
		}
		modules[file] = nil
		th := &starlark.Thread{Name: "init " + file}
		th.Load = func(_ *starlark.Thread, module string) (starlark.StringDict, error) {
			name, err := ResolveLoad(file, module, p.Bundle.Files)
			if err != nil {
				return nil, err
			}
			return load(name)
		}
		if prepare != nil {
			prepare(th)
		}
		if th.Print == nil { // not Starlark's default, which writes to stderr
			th.Print = func(*starlark.Thread, string) {}
		}
		g, err := prog.Init(th, predeclared)
		if err != nil {
			return nil, err
		}
		g.Freeze()
		modules[file] = g
		return g, nil
	}
	return load(p.Bundle.Main)
}

func checkMain(f *syntax.File) error {
	for _, stmt := range f.Stmts {
		def, ok := stmt.(*syntax.DefStmt)
		if !ok || def.Name.Name != "main" {
			continue
		}
		required := 0
		for _, p := range def.Params {
			if _, isIdent := p.(*syntax.Ident); isIdent {
				required++
			}
		}
		if len(def.Params) == 0 || required > 1 {
			start, _ := def.Span()
			return fmt.Errorf("%s: main must take one parameter, the event: def main(event)", start)
		}
		return nil
	}
	return fmt.Errorf("%s:1:1: no main(event) function: a runbook's entry point is def main(event)", f.Path)
}

// ResolveLoad maps a load() module string in file from to a bundle file name.
// Modules are paths relative to the loading file; they may not leave the
// bundle. A module that starts with '@' is a library's ("@std/k8s.star",
// "@team/payments.star"): its file name is the module string, cleaned, and a
// library file's relative loads stay inside its library.
func ResolveLoad(from, module string, files map[string]string) (string, error) {
	if strings.HasPrefix(module, "/") || strings.Contains(module, "\\") {
		return "", fmt.Errorf("load %q: use a path relative to the runbook", module)
	}
	var name string
	if lib, rest, ok := strings.Cut(module, "/"); ok && strings.HasPrefix(lib, "@") {
		if !ValidLibraryName(strings.TrimPrefix(lib, "@")) {
			return "", fmt.Errorf("load %q: a library is @ and a lower-case name (@std, @team)", module)
		}
		name = lib + "/" + path.Clean(rest)
		if clean := path.Clean(rest); clean == ".." || strings.HasPrefix(clean, "../") || clean == "." {
			return "", fmt.Errorf("load %q: outside the library %s", module, lib)
		}
	} else if strings.HasPrefix(module, "@") {
		return "", fmt.Errorf("load %q: a library module is @LIBRARY/FILE.star, e.g. @std/k8s.star", module)
	} else {
		name = path.Clean(path.Join(path.Dir(from), module))
		if strings.HasPrefix(name, "../") || name == ".." {
			return "", fmt.Errorf("load %q: outside the runbook directory", module)
		}
		if lib, ok := LibraryOf(from); ok && !strings.HasPrefix(name, lib+"/") {
			return "", fmt.Errorf("load %q: outside the library %s", module, lib)
		}
	}
	if !strings.HasSuffix(name, ".star") {
		return "", fmt.Errorf("load %q: modules are .star files", module)
	}
	if files != nil {
		if _, ok := files[name]; !ok {
			if lib, ok := LibraryOf(name); ok {
				return "", fmt.Errorf("load %q: library %s has no module %s", module, lib, strings.TrimPrefix(name, lib+"/"))
			}
			return "", fmt.Errorf("load %q: no such file %s", module, name)
		}
	}
	return name, nil
}

// LibraryOf returns the library ("@std") a bundle file name belongs to, if
// it is a library module's.
func LibraryOf(file string) (string, bool) {
	lib, _, ok := strings.Cut(file, "/")
	if !ok || !strings.HasPrefix(lib, "@") {
		return "", false
	}
	return lib, true
}

// ValidLibraryName reports whether s (without its '@') can name a library:
// what can name a runbook.
func ValidLibraryName(s string) bool { return validRunbookName(s) }

// BundlesFromFiles finds the runbooks among files (name -> source): every file
// that defines main at top level is one, named after its base name without
// ".star"; its bundle holds it and every file it loads, transitively. Files
// named *_test.star are ignored, and so are library modules (files named
// "@LIBRARY/...") but as what a runbook loads. Errors carry file:line.
func BundlesFromFiles(files map[string]string) ([]*Bundle, error) {
	names := make([]string, 0, len(files))
	var libs []string // library modules: loaded, never runbooks
	for n := range files {
		if strings.HasSuffix(n, "_test.star") {
			continue
		}
		if !strings.HasSuffix(n, ".star") {
			return nil, Inputf("%s: runbook files end in .star", n)
		}
		if path.Clean(n) != n || strings.HasPrefix(n, "../") || strings.HasPrefix(n, "/") {
			return nil, Inputf("%s: file names must be clean relative paths", n)
		}
		if _, ok := LibraryOf(n); ok {
			libs = append(libs, n)
			continue
		}
		names = append(names, n)
	}
	sort.Strings(names)
	parsed := map[string]*syntax.File{}
	for _, n := range slices.Concat(names, libs) {
		f, err := FileOptions.Parse(n, files[n], 0)
		if err != nil {
			return nil, &InputError{Msg: err.Error()}
		}
		parsed[n] = f
	}
	seen := map[string]string{}
	var bundles []*Bundle
	for _, n := range names {
		if !definesMain(parsed[n]) {
			continue
		}
		name := strings.TrimSuffix(path.Base(n), ".star")
		if !validRunbookName(name) {
			return nil, Inputf("%s: runbook name %q must be lower-case letters, digits, '-' or '_'", n, name)
		}
		if other, dup := seen[name]; dup {
			return nil, Inputf("%s: runbook %q is also defined by %s", n, name, other)
		}
		seen[name] = n
		b := &Bundle{Name: name, Main: n, Files: map[string]string{}}
		if err := collectLoads(n, parsed, files, b.Files); err != nil {
			return nil, err
		}
		b.Version = BundleVersion(b.Files)
		bundles = append(bundles, b)
	}
	if len(bundles) == 0 {
		return nil, Inputf("no runbook found: a runbook is a .star file defining main(event)")
	}
	return bundles, nil
}

func collectLoads(name string, parsed map[string]*syntax.File, files, into map[string]string) error {
	if _, done := into[name]; done {
		return nil
	}
	into[name] = files[name]
	for _, stmt := range parsed[name].Stmts {
		load, ok := stmt.(*syntax.LoadStmt)
		if !ok {
			continue
		}
		module := load.ModuleName()
		target, err := ResolveLoad(name, module, files)
		if err != nil {
			start, _ := load.Span()
			return &InputError{Msg: fmt.Sprintf("%s: %v", start, err)}
		}
		if err := collectLoads(target, parsed, files, into); err != nil {
			return err
		}
	}
	return nil
}

func definesMain(f *syntax.File) bool {
	for _, stmt := range f.Stmts {
		if def, ok := stmt.(*syntax.DefStmt); ok && def.Name.Name == "main" {
			return true
		}
	}
	return false
}

// validRunbookName keeps names safe as etcd key segments and URL path parts.
func validRunbookName(s string) bool {
	if s == "" || len(s) > 100 {
		return false
	}
	for i, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
		case (r == '-' || r == '_') && i > 0:
		default:
			return false
		}
	}
	return true
}

// ValidRunbookName reports whether s can name a runbook: 1 to 100 lower-case
// letters, digits, '-' or '_', starting with a letter or digit.
func ValidRunbookName(s string) bool { return validRunbookName(s) }
