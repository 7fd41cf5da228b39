package check

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.starlark.net/resolve"
	"go.starlark.net/starlark"
	"go.starlark.net/syntax"

	sbruntime "github.com/starbook/starbook/runtime"
	"github.com/starbook/starbook/schema"
)

// Severity says whether a finding refuses an apply.
type Severity int

// Severities.
const (
	Error   Severity = iota // apply refuses the runbooks
	Warning                 // printed; apply goes ahead
)

// Finding is one problem in a runbook file. Line and Col are 1-based; 0 when
// the problem is about the whole file.
type Finding struct {
	File     string
	Line     int
	Col      int
	Severity Severity
	Message  string
}

// Pos is "file:line:col", "file:line" or "file".
func (f Finding) Pos() string {
	switch {
	case f.Line == 0:
		return f.File
	case f.Col == 0:
		return fmt.Sprintf("%s:%d", f.File, f.Line)
	}
	return fmt.Sprintf("%s:%d:%d", f.File, f.Line, f.Col)
}

// String is "file:line:col: message", with "warning: " before the message of
// a warning.
func (f Finding) String() string {
	if f.Severity == Warning {
		return f.Pos() + ": warning: " + f.Message
	}
	return f.Pos() + ": " + f.Message
}

// Options configure a check.
type Options struct {
	// Builtins are the predeclared names runbooks are compiled against
	// (builtins.New).
	Builtins starlark.StringDict
	// LookupEnv says whether a secret is set; nil skips that check.
	LookupEnv func(name string) (string, bool)
	// Libraries serves the library modules (load("@std/k8s.star")) that
	// the files do not hold; nil serves none. Those a runbook loads,
	// transitively, go into its bundle.
	Libraries Libraries
}

// Libraries is where library modules come from (a *stdlib.Set).
type Libraries interface {
	// Has reports whether it serves library lib ("@std").
	Has(lib string) bool
	// Module returns the source of a module by bundle file name ("@std/k8s.star").
	Module(file string) (string, error)
	// Release names the release of library lib, recorded in the bundle.
	Release(lib string) string
}

// Result is what Files found.
type Result struct {
	// Bundles are the runbooks found, their Triggers collected: what apply
	// stores when Err is nil.
	Bundles []*sbruntime.Bundle
	// Findings in file, line and column order.
	Findings []Finding
	// Facts are what the scan found each runbook (by name) can reach:
	// its effects and the secrets it reads. Policies judge them at apply.
	Facts map[string]*Facts
}

// Err returns the errors among the findings as one *runtime.InputError, one
// finding a line, or nil if there are none.
func (r *Result) Err() error {
	var lines []string
	for _, f := range r.Findings {
		if f.Severity == Error {
			lines = append(lines, f.String())
		}
	}
	if len(lines) == 0 {
		return nil
	}
	return &sbruntime.InputError{Msg: strings.Join(lines, "\n")}
}

// Warnings returns the warnings among the findings.
func (r *Result) Warnings() []Finding {
	var out []Finding
	for _, f := range r.Findings {
		if f.Severity == Warning {
			out = append(out, f)
		}
	}
	return out
}

// Files checks the runbook files (name -> source, as apply receives them)
// and returns the runbooks and what is wrong. NAME.schema.json beside
// NAME.star is that runbook's input schema; *_test.star files are not
// runbooks, but the literal inputs their run() calls give a runbook with a
// schema are validated against it.
func Files(files map[string]string, opts Options) *Result {
	// The library modules loaded are added to the files: to a copy.
	c := &checker{opts: opts, files: maps.Clone(files), parsed: map[string]*syntax.File{}, seen: map[string]bool{},
		schemaFiles: map[string]string{}, tests: map[string]string{}, schemas: map[string]*schema.Schema{}}
	c.run()
	slices.SortFunc(c.res.Findings, func(a, b Finding) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line), cmp.Compare(a.Col, b.Col),
			cmp.Compare(a.Message, b.Message))
	})
	return &c.res
}

type checker struct {
	opts   Options
	files  map[string]string
	parsed map[string]*syntax.File
	seen   map[string]bool // findings reported, to say each once
	res    Result

	schemaFiles map[string]string         // NAME.schema.json files -> source
	tests       map[string]string         // *_test.star files -> source
	schemas     map[string]*schema.Schema // compiled input schemas by runbook main file
}

func (c *checker) add(f Finding) {
	key := f.String()
	if c.seen[key] {
		return
	}
	c.seen[key] = true
	c.res.Findings = append(c.res.Findings, f)
}

func (c *checker) at(pos syntax.Position, sev Severity, format string, args ...any) {
	c.add(Finding{File: pos.Filename(), Line: int(pos.Line), Col: int(pos.Col), Severity: sev,
		Message: fmt.Sprintf(format, args...)})
}

// addErr turns an error whose text starts with a position (as Starlark,
// runtime and builtins write them) into a finding about file.
func (c *checker) addErr(file string, err error) {
	var el resolve.ErrorList
	if errors.As(err, &el) {
		for _, e := range el {
			c.at(e.Pos, Error, "%s", e.Msg)
		}
		return
	}
	var se syntax.Error
	if errors.As(err, &se) {
		c.at(se.Pos, Error, "%s", se.Msg)
		return
	}
	c.add(locate(file, err.Error()))
}

var (
	leadingPos = regexp.MustCompile(`^([^\s:]+\.star)(?::(\d+))?(?::(\d+))?: `)
	framePos   = regexp.MustCompile(`(?m)^\s+([^\s:]+\.star):(\d+):(\d+): in `)
)

// locate finds where msg is about: its leading "file:line:col: ", else the
// innermost frame of a backtrace in it, else file.
func locate(file, msg string) Finding {
	f := Finding{File: file, Message: msg}
	if m := leadingPos.FindStringSubmatch(msg); m != nil {
		f.File, f.Message = m[1], msg[len(m[0]):]
		f.Line, _ = strconv.Atoi(m[2])
		f.Col, _ = strconv.Atoi(m[3])
		return f
	}
	if all := framePos.FindAllStringSubmatch(msg, -1); len(all) > 0 {
		m := all[len(all)-1]
		f.File = m[1]
		f.Line, _ = strconv.Atoi(m[2])
		f.Col, _ = strconv.Atoi(m[3])
	}
	return f
}

func (c *checker) run() {
	names := make([]string, 0, len(c.files))
	star := map[string]string{} // what BundlesFromFiles reads
	for n, src := range c.files {
		switch {
		case strings.HasSuffix(n, schema.FileSuffix):
			c.schemaFiles[n] = src
		case strings.HasSuffix(n, "_test.star"):
			c.tests[n] = src
		default:
			names = append(names, n)
			star[n] = src
		}
	}
	slices.Sort(names)
	for _, n := range names {
		f, err := sbruntime.FileOptions.Parse(n, c.files[n], 0)
		if err != nil {
			c.addErr(n, err)
			continue
		}
		c.parsed[n] = f
	}
	c.libraryModules(names, star)
	c.loads()
	if len(c.res.Findings) > 0 {
		return // BundlesFromFiles would stop at the first of them
	}
	bundles, err := sbruntime.BundlesFromFiles(star)
	if err != nil {
		c.addErr("", err)
		return
	}
	inBundle := map[string]bool{}
	for _, b := range bundles {
		for n := range b.Files {
			inBundle[n] = true
		}
	}
	for _, n := range names {
		if _, lib := sbruntime.LibraryOf(n); !inBundle[n] && !lib {
			c.add(Finding{File: n, Line: 1, Col: 1, Message: "no main(event) function, and no runbook loads this file: " +
				"a runbook's entry point is def main(event)"})
		}
	}
	c.orphanSchemas(bundles)
	for _, b := range bundles {
		c.libraryReleases(b)
		if c.bundle(b) {
			c.res.Bundles = append(c.res.Bundles, b)
		}
	}
	c.testInputs(bundles)
}

// libraryModules adds to the files (and star) the library modules their
// loads name, transitively, that the files do not hold: from the
// Libraries, parsed. A module that is not there is a finding at its load.
func (c *checker) libraryModules(names []string, star map[string]string) {
	queue := slices.Clone(names)
	for len(queue) > 0 {
		from := queue[0]
		queue = queue[1:]
		f := c.parsed[from]
		if f == nil {
			continue
		}
		for _, stmt := range f.Stmts {
			load, ok := stmt.(*syntax.LoadStmt)
			if !ok {
				continue
			}
			name, err := sbruntime.ResolveLoad(from, load.ModuleName(), nil)
			lib, isLib := sbruntime.LibraryOf(name)
			if err != nil || !isLib {
				continue // BundlesFromFiles reports it, with its place
			}
			if _, have := c.files[name]; have {
				continue
			}
			pos, _ := load.Span()
			var src string
			served := c.opts.Libraries != nil && c.opts.Libraries.Has(lib)
			switch {
			case !served && len(c.sentModules(lib)) > 0:
				err = fmt.Errorf("library %s has no module %s (it has %s)", lib, strings.TrimPrefix(name, lib+"/"), strings.Join(c.sentModules(lib), ", "))
			case !served:
				err = fmt.Errorf("no library %s here (@std is starbook's; a team's is given with --lib NAME=DIR)", lib)
			default:
				src, err = c.opts.Libraries.Module(name)
			}
			if err != nil {
				c.at(pos, Error, "load %q: %v", load.ModuleName(), err)
				continue
			}
			c.files[name], star[name] = src, src
			parsed, err := sbruntime.FileOptions.Parse(name, src, 0)
			if err != nil {
				c.addErr(name, err)
				continue
			}
			c.parsed[name] = parsed
			queue = append(queue, name)
		}
	}
}

// sentModules lists the modules of library lib among the files sent (a
// team's library, sent by apply --lib), by their names in the library.
func (c *checker) sentModules(lib string) []string {
	var out []string
	for n := range c.files {
		if strings.HasPrefix(n, lib+"/") && strings.HasSuffix(n, ".star") {
			out = append(out, strings.TrimPrefix(n, lib+"/"))
		}
	}
	slices.Sort(out)
	return out
}

// libraryReleases records in b the release of each library it holds modules
// of: the Libraries' for one they serve, else (a team's library sent with
// the runbooks) a hash of its modules in b.
func (c *checker) libraryReleases(b *sbruntime.Bundle) {
	sent := map[string][]string{}
	for n := range b.Files {
		if lib, ok := sbruntime.LibraryOf(n); ok {
			sent[lib] = append(sent[lib], n)
		}
	}
	for lib, files := range sent {
		if b.Libraries == nil {
			b.Libraries = map[string]string{}
		}
		if c.opts.Libraries != nil && c.opts.Libraries.Has(lib) {
			b.Libraries[lib] = c.opts.Libraries.Release(lib)
			continue
		}
		lf := map[string]string{}
		for _, n := range files {
			lf[n] = b.Files[n]
		}
		b.Libraries[lib] = sbruntime.BundleVersion(lf)[:12]
	}
}

// bundle checks one runbook; it reports whether it compiled. A runbook that
// does not compile is still scanned, and its literal trigger declarations
// checked, so that one pass reports everything that needs no run.
func (c *checker) bundle(b *sbruntime.Bundle) bool {
	names := make([]string, 0, len(b.Files))
	for n := range b.Files {
		names = append(names, n)
	}
	slices.Sort(names)
	ok := true
	for _, n := range names {
		// Resolve a fresh tree: resolving annotates (mutates) it.
		if _, _, err := starlark.SourceProgramOptions(sbruntime.FileOptions, n, b.Files[n], c.opts.Builtins.Has); err != nil {
			c.addErr(n, err)
			ok = false
		}
	}
	s := c.scan(b)
	if c.res.Facts == nil {
		c.res.Facts = map[string]*Facts{}
	}
	c.res.Facts[b.Name] = s.facts.sorted()
	var prog *sbruntime.Program
	var err error
	if ok {
		if prog, err = sbruntime.Compile(b, c.opts.Builtins); err != nil {
			c.addErr(b.Main, err)
			ok = false
		}
	}
	if !ok {
		s.literalTriggers()
		c.inputSchema(b, nil, nil, s) // a schema file is checked all the same
		return false
	}
	assign := schemaAssignment(c.parsed[b.Main])
	var globals starlark.StringDict
	if b.Triggers, globals, err = topLevel(prog, c.opts.Builtins, assign != nil); err != nil {
		c.addErr(b.Main, err)
		return false
	}
	return c.inputSchema(b, assign, globals, s)
}

// moduleOf returns the bundle file a load() in from names.
func moduleOf(from, module string, files map[string]string) (string, bool) {
	name, err := sbruntime.ResolveLoad(from, module, files)
	if err != nil {
		return "", false
	}
	return path.Clean(name), true
}
