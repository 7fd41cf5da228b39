package runbooktest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"

	"github.com/starbook/starbook/builtins"
	sbruntime "github.com/starbook/starbook/runtime"
)

// Runner runs the test_* functions of *_test.star files and reports as
// `go test` does.
type Runner struct {
	Out     io.Writer
	Verbose bool           // list every test, passed or not, and its output
	Filter  *regexp.Regexp // run only the tests whose name matches; nil: all
	Limits  sbruntime.Limits
	// Now times the tests; time.Now when nil.
	Now func() time.Time
	// Libraries serves the library modules runbooks and tests load
	// (load("@std/k8s.star")); nil serves none.
	Libraries Libraries
}

// Summary counts the tests that ran.
type Summary struct {
	Passed, Failed int
}

// testFile is one *_test.star file to run.
type testFile struct {
	root    string // the directory names are relative to
	name    string // '/'-separated, relative to root
	display string // as the user named it
}

// Run finds the test files in paths (files, or directories searched
// recursively except hidden and testdata ones), runs their tests and writes
// the report to r.Out: a line per failed test (every test with Verbose),
// "ok" or "FAIL" per file, then "N passed, N failed". It returns an error
// only when paths hold no test file or cannot be read; failed tests are in
// the summary.
func (r *Runner) Run(ctx context.Context, paths []string) (Summary, error) {
	var sum Summary
	files, err := discover(paths)
	if err != nil {
		return sum, err
	}
	for _, f := range files {
		p, fl := r.runFile(ctx, f)
		sum.Passed += p
		sum.Failed += fl
	}
	fmt.Fprintf(r.Out, "%d passed, %d failed\n", sum.Passed, sum.Failed)
	return sum, nil
}

func discover(paths []string) ([]testFile, error) {
	if len(paths) == 0 {
		paths = []string{"."}
	}
	var out []testFile
	seen := map[string]bool{}
	add := func(f testFile) {
		abs, _ := filepath.Abs(filepath.Join(f.root, f.name))
		if !seen[abs] {
			seen[abs] = true
			out = append(out, f)
		}
	}
	for _, p := range paths {
		info, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !info.IsDir() {
			if !strings.HasSuffix(p, "_test.star") {
				return nil, fmt.Errorf("%s: not a test file (*_test.star)", p)
			}
			add(testFile{root: filepath.Dir(p), name: filepath.Base(p), display: p})
			continue
		}
		err = filepath.WalkDir(p, func(file string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if file != p && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") {
					return filepath.SkipDir
				}
				return nil
			}
			if strings.HasSuffix(d.Name(), "_test.star") {
				rel, err := filepath.Rel(p, file)
				if err != nil {
					return err
				}
				add(testFile{root: p, name: filepath.ToSlash(rel), display: file})
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no test files (*_test.star) in %s", strings.Join(paths, ", "))
	}
	return out, nil
}

func (r *Runner) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// testPredeclared are the names a test file sees: the built-ins of
// runbooks (so it can load them), mock, assert and run.
func testPredeclared() starlark.StringDict {
	pre := builtins.New(builtins.Options{Secrets: NewMocks().secret})
	pre["mock"] = MockModule
	pre["assert"] = AssertModule
	pre["run"] = starlark.NewBuiltin("run", runBuiltin)
	return pre
}

// runFile runs the tests of one file and reports them.
func (r *Runner) runFile(ctx context.Context, f testFile) (passed, failed int) {
	start := r.now()
	report := func() {
		status := "ok  "
		if failed > 0 {
			status = "FAIL"
		}
		note := ""
		if passed+failed == 0 {
			note = " [no tests to run]"
		}
		fmt.Fprintf(r.Out, "%s\t%s\t%.2fs%s\n", status, f.display, r.now().Sub(start).Seconds(), note)
	}
	pre := testPredeclared()
	src, err := os.ReadFile(filepath.Join(f.root, filepath.FromSlash(f.name)))
	if err == nil {
		var globals starlark.StringDict
		globals, err = r.initFile(f, pre, src)
		if err == nil {
			tests := testsOf(globals)
			for _, t := range tests {
				if r.Filter != nil && !r.Filter.MatchString(t.Name()) {
					continue
				}
				if r.runTest(ctx, f, pre, t) {
					passed++
				} else {
					failed++
				}
			}
			report()
			return passed, failed
		}
	}
	fmt.Fprintf(r.Out, "--- FAIL: %s [setup failed]\n%s\n", f.name, indent(errorText(err), 1))
	failed++
	report()
	return passed, failed
}

// initFile runs the top level of a test file; its load()s read files
// relative to it under f.root.
func (r *Runner) initFile(f testFile, pre starlark.StringDict, src []byte) (starlark.StringDict, error) {
	_, prog, err := starlark.SourceProgramOptions(sbruntime.FileOptions, f.name, src, pre.Has)
	if err != nil {
		return nil, err
	}
	th := &starlark.Thread{Name: "init " + f.name, Load: newLoader(f.root, pre, r.Libraries).load}
	th.SetMaxExecutionSteps(sbruntime.DefaultLimits.MaxSteps)
	g, err := prog.Init(th, pre)
	if err != nil {
		return nil, err
	}
	g.Freeze()
	return g, nil
}

// loader loads the modules of one test file, each once.
type loader struct {
	root    string
	pre     starlark.StringDict
	libs    Libraries
	modules map[string]*module
}

type module struct {
	globals starlark.StringDict
	err     error
}

func newLoader(root string, pre starlark.StringDict, libs Libraries) *loader {
	return &loader{root: root, pre: pre, libs: libs, modules: map[string]*module{}}
}

func (l *loader) load(th *starlark.Thread, mod string) (starlark.StringDict, error) {
	from := "."
	if cs := th.CallStack(); len(cs) > 0 {
		from = cs.At(0).Pos.Filename()
	}
	name, err := sbruntime.ResolveLoad(from, mod, nil)
	if err != nil {
		return nil, err
	}
	if m, ok := l.modules[name]; ok {
		if m == nil {
			return nil, fmt.Errorf("load cycle through %s", name)
		}
		return m.globals, m.err
	}
	l.modules[name] = nil
	src, err := readModule(l.root, name, l.libs)
	if err != nil {
		l.modules[name] = &module{err: err}
		return nil, err
	}
	_, prog, err := starlark.SourceProgramOptions(sbruntime.FileOptions, name, src, l.pre.Has)
	if err == nil {
		mt := &starlark.Thread{Name: "load " + name, Load: l.load}
		mt.SetMaxExecutionSteps(sbruntime.DefaultLimits.MaxSteps)
		var g starlark.StringDict
		if g, err = prog.Init(mt, l.pre); err == nil {
			g.Freeze()
			l.modules[name] = &module{globals: g}
			return g, nil
		}
	}
	l.modules[name] = &module{err: err}
	return nil, err
}

// testsOf returns the test_* functions of a file in the order they are defined.
func testsOf(globals starlark.StringDict) []*starlark.Function {
	var tests []*starlark.Function
	for name, v := range globals {
		if fn, ok := v.(*starlark.Function); ok && strings.HasPrefix(name, "test_") {
			tests = append(tests, fn)
		}
	}
	slices.SortFunc(tests, func(a, b *starlark.Function) int { return int(a.Position().Line) - int(b.Position().Line) })
	return tests
}

// testState is what run() needs from the test that calls it.
type testState struct {
	ctx    context.Context
	root   string
	dir    string // of the test file, relative to root
	limits sbruntime.Limits
	libs   Libraries
	last   *lastRun
}

type lastRun struct {
	path string
	res  *Result
}

const testKey = "runbooktest.test"

// runTest runs one test function and reports whether it passed.
func (r *Runner) runTest(ctx context.Context, f testFile, pre starlark.StringDict, fn *starlark.Function) bool {
	start := r.now()
	var out strings.Builder
	th := &starlark.Thread{Name: fn.Name(), Load: newLoader(f.root, pre, r.Libraries).load}
	th.SetMaxExecutionSteps(sbruntime.DefaultLimits.MaxSteps)
	th.Print = func(_ *starlark.Thread, msg string) { out.WriteString(indent(msg, 1) + "\n") }
	m := NewMocks()
	SetMocks(th, m)
	st := &testState{ctx: ctx, root: f.root, dir: path.Dir(f.name), limits: r.Limits, libs: r.Libraries}
	th.SetLocal(testKey, st)
	stop := context.AfterFunc(ctx, func() { th.Cancel("cancelled") })
	_, err := starlark.Call(th, fn, nil, nil)
	stop()
	took := r.now().Sub(start).Seconds()
	if r.Verbose {
		fmt.Fprintf(r.Out, "=== RUN   %s\n", fn.Name())
	}
	if err == nil {
		if r.Verbose {
			fmt.Fprintf(r.Out, "%s--- PASS: %s (%.2fs)\n", out.String(), fn.Name(), took)
		}
		return true
	}
	where, msg := failureOf(err, f.name)
	fmt.Fprintf(r.Out, "--- FAIL: %s (%s)\n%s%s\n", fn.Name(), where, out.String(), indent(msg, 1))
	if l := st.last; l != nil && l.res.Execution.Error != "" {
		fmt.Fprintf(r.Out, "%s\n%s\n", indent(fmt.Sprintf("the last run(%q) ended %s:", l.path, l.res.Execution.Status), 1),
			indent(l.res.Execution.Error, 2))
	}
	return false
}

// failureOf says where a test failed (file:line in the test file when it
// can) and why.
func failureOf(err error, file string) (string, string) {
	var fl *Failure
	if errors.As(err, &fl) {
		return fmt.Sprintf("%s:%d", fl.Pos.Filename(), fl.Pos.Line), fl.Error()
	}
	var ee *starlark.EvalError
	if errors.As(err, &ee) {
		where := ""
		for i := range ee.CallStack {
			fr := ee.CallStack[len(ee.CallStack)-1-i]
			if fr.Pos.Filename() == file {
				where = fmt.Sprintf("%s:%d", file, fr.Pos.Line)
				break
			}
		}
		if where == "" && len(ee.CallStack) > 0 {
			where = fmt.Sprintf("%s:%d", ee.CallStack.At(0).Pos.Filename(), ee.CallStack.At(0).Pos.Line)
		}
		return where, ee.Backtrace()
	}
	return file, err.Error()
}

func errorText(err error) string {
	var ee *starlark.EvalError
	if errors.As(err, &ee) {
		return ee.Backtrace()
	}
	return err.Error()
}

func indent(s string, depth int) string {
	pad := strings.Repeat("    ", depth)
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = pad + l
	}
	return strings.Join(lines, "\n")
}

// runBuiltin implements run(path, event=None): run the runbook in path
// (relative to the test file) offline with the test's mocks and return
// struct(status, result, error, steps, waits, logs, calls, runs).
func runBuiltin(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	st, _ := th.Local(testKey).(*testState)
	m, _ := th.Local(mocksKey).(*Mocks)
	if st == nil || m == nil {
		return nil, fmt.Errorf("run: only inside a test function (def test_...)")
	}
	var file string
	var event starlark.Value = starlark.None
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "path", &file, "event?", &event); err != nil {
		return nil, err
	}
	bundle, err := LoadBundleFrom(st.root, path.Join(st.dir, file), st.libs)
	if err != nil {
		return nil, fmt.Errorf("run: %w", err)
	}
	input, err := sbruntime.Encode(event)
	if err != nil {
		return nil, fmt.Errorf("run: event: %w", err)
	}
	if event == starlark.None {
		input = nil
	}
	res, err := m.Execute(st.ctx, bundle, input, st.limits)
	if err != nil {
		return nil, fmt.Errorf("run(%q): %w", file, err)
	}
	st.last = &lastRun{path: file, res: res}
	if unmatched := m.takeUnmatched(); len(unmatched) > 0 {
		return nil, fmt.Errorf("run(%q): effects no mock matched (an offline run touches nothing real):\n  %s",
			file, strings.Join(unmatched, "\n  "))
	}
	return resultValue(res), nil
}

// resultValue is a Result as tests see it.
func resultValue(res *Result) starlark.Value {
	e := res.Execution
	result, err := sbruntime.Decode(e.Result)
	if err != nil || result == nil {
		result = starlark.None
	}
	result = plain(result)
	steps := make([]starlark.Value, len(res.Steps))
	for i, s := range res.Steps {
		steps[i] = stepValue(s)
	}
	waits := make([]starlark.Value, len(res.Waits))
	for i, w := range res.Waits {
		msg := w.Name
		if req, err := sbruntime.ParseApprovalRequest(w); err == nil && w.Kind == sbruntime.KindApproval {
			msg = req.Message
		}
		waits[i] = starlarkstruct.FromStringDict(starlark.String("wait"), starlark.StringDict{
			"position": starlark.String(w.Position), "kind": starlark.String(w.Kind),
			"name": starlark.String(w.Name), "message": starlark.String(msg), "where": starlark.String(w.Where),
		})
	}
	logs := make([]starlark.Value, len(res.Logs))
	for i, l := range res.Logs {
		logs[i] = starlark.String(l.Msg)
	}
	calls := make([]starlark.Value, len(res.Calls))
	for i, c := range res.Calls {
		calls[i] = callValue(c)
	}
	return starlarkstruct.FromStringDict(starlark.String("run"), starlark.StringDict{
		"status": starlark.String(e.Status),
		"result": result,
		"error":  starlark.String(e.Error),
		"steps":  starlark.NewList(steps),
		"waits":  starlark.NewList(waits),
		"logs":   starlark.NewList(logs),
		"calls":  starlark.NewList(calls),
		"runs":   starlark.MakeInt(res.Runs),
	})
}
