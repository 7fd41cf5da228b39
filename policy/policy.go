package policy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"sync"

	sljson "go.starlark.net/lib/json"
	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
	"go.starlark.net/syntax"

	sbruntime "github.com/starbook/starbook/runtime"
)

// MaxSteps bounds one evaluation of a policy function (and the loading of
// a file, and one test): a loop that does not end fails instead of hanging.
const MaxSteps = 1_000_000

// Denial is a policy's refusal.
type Denial struct {
	Policy string // file:line of the deny() call, or of the failure
	At     string // file:line of the runbook it is about, when known (on_apply)
	Why    string
}

func (d Denial) String() string {
	if d.At != "" {
		return d.Policy + ": " + d.At + ": " + d.Why
	}
	return d.Policy + ": " + d.Why
}

// Error is a policy file that does not load or a policy function that
// failed: Pos is its file:line.
type Error struct {
	Pos string
	Msg string
}

func (e *Error) Error() string { return e.Pos + ": " + e.Msg }

// Set is a loaded set of policy files. The zero of *Set (nil) allows all.
type Set struct {
	// Files are the sources loaded, tests included: what is stored.
	Files map[string]string
	// Version is a content hash of Files.
	Version  string
	policies []*loaded // those defining on_apply or on_effect, by name
}

type loaded struct {
	name     string
	onApply  starlark.Callable
	onEffect starlark.Callable
}

// IsPolicyFile reports whether name is a policy (not a test) file.
func IsPolicyFile(name string) bool {
	return strings.HasSuffix(name, ".star") && !strings.HasSuffix(name, "_test.star")
}

// fileOptions are the dialect of policies: that of runbooks.
var fileOptions = sbruntime.FileOptions

// Load loads every policy file of files (name -> source; *_test.star files
// are kept but not loaded). A file that does not parse, fails while
// loading, or defines on_apply/on_effect with the wrong parameters is an
// *Error naming its file:line; nothing is loaded then.
func Load(files map[string]string) (*Set, error) {
	l := newLoader(files, predeclared())
	s := &Set{Files: files, Version: version(files)}
	for _, name := range sortedNames(files) {
		if !IsPolicyFile(name) {
			continue
		}
		g, err := l.load(name)
		if err != nil {
			return nil, err
		}
		p := &loaded{name: name}
		var perr error
		if p.onApply, perr = function(name, g, "on_apply", 1); perr != nil {
			return nil, perr
		}
		if p.onEffect, perr = function(name, g, "on_effect", 2); perr != nil {
			return nil, perr
		}
		if p.onApply != nil || p.onEffect != nil {
			s.policies = append(s.policies, p)
		}
	}
	return s, nil
}

// function returns the global name of a file if it is a function of n
// parameters.
func function(file string, g starlark.StringDict, name string, n int) (starlark.Callable, error) {
	v, ok := g[name]
	if !ok {
		return nil, nil
	}
	fn, ok := v.(*starlark.Function)
	if !ok {
		return nil, &Error{Pos: file, Msg: fmt.Sprintf("%s is a %s, want a function", name, v.Type())}
	}
	if fn.NumParams() != n {
		pos := fn.Position()
		return nil, &Error{Pos: fmt.Sprintf("%s:%d", pos.Filename(), pos.Line),
			Msg: fmt.Sprintf("%s takes %d parameters, want %d", name, fn.NumParams(), n)}
	}
	return fn, nil
}

// HasEffectPolicy reports whether a policy of s defines on_effect.
func (s *Set) HasEffectPolicy() bool {
	return s != nil && slices.ContainsFunc(s.policies, func(p *loaded) bool { return p.onEffect != nil })
}

// HasApplyPolicy reports whether a policy of s defines on_apply.
func (s *Set) HasApplyPolicy() bool {
	return s != nil && slices.ContainsFunc(s.policies, func(p *loaded) bool { return p.onApply != nil })
}

// OnApply evaluates every on_apply against rb and returns the denials. A
// policy that fails is an *Error.
func (s *Set) OnApply(ctx context.Context, rb *Runbook) ([]Denial, error) {
	if !s.HasApplyPolicy() {
		return nil, nil
	}
	v, err := value(rb)
	if err != nil {
		return nil, err
	}
	var out []Denial
	for _, p := range s.policies {
		if p.onApply == nil {
			continue
		}
		ds, err := call(ctx, p.name, p.onApply, starlark.Tuple{v})
		if err != nil {
			return nil, err
		}
		for _, d := range ds {
			if d.At == "" {
				d.At = rb.File + ":1"
			}
			out = append(out, d)
		}
	}
	return out, nil
}

// OnEffect evaluates every on_effect against eff and history (in
// position order) and returns the first denial, if any. A policy that fails
// is an *Error.
func (s *Set) OnEffect(ctx context.Context, eff *Effect, history []*sbruntime.Event) (*Denial, error) {
	return s.NewRun().OnEffect(ctx, eff, history)
}

// Run judges the effects of one run of an execution: each event of its
// history is converted for the policies once, however many effects follow.
// Safe for concurrent use (fan_out items).
type Run struct {
	set  *Set
	mu   sync.Mutex
	seen map[*sbruntime.Event]starlark.Value
}

// NewRun returns a judge for one run.
func (s *Set) NewRun() *Run { return &Run{set: s, seen: map[*sbruntime.Event]starlark.Value{}} }

// OnEffect is Set.OnEffect, converting each event once per Run.
func (r *Run) OnEffect(ctx context.Context, eff *Effect, history []*sbruntime.Event) (*Denial, error) {
	if !r.set.HasEffectPolicy() {
		return nil, nil
	}
	steps := make([]starlark.Value, len(history))
	r.mu.Lock()
	for i, ev := range history {
		v, ok := r.seen[ev]
		if !ok {
			v = stepValue(ev)
			r.seen[ev] = v
		}
		steps[i] = v
	}
	r.mu.Unlock()
	hv := starlark.NewList(steps)
	hv.Freeze()
	ev := effectValue(eff)
	for _, p := range r.set.policies {
		if p.onEffect == nil {
			continue
		}
		ds, err := call(ctx, p.name, p.onEffect, starlark.Tuple{ev, hv})
		if err != nil {
			return nil, err
		}
		if len(ds) > 0 {
			return &ds[0], nil
		}
	}
	return nil, nil
}

// call runs fn(args) in a fresh bounded thread and reads its verdict.
func call(ctx context.Context, file string, fn starlark.Callable, args starlark.Tuple) ([]Denial, error) {
	th := newThread(file)
	stop := context.AfterFunc(ctx, func() { th.Cancel("policy evaluation stopped") })
	defer stop()
	v, err := starlark.Call(th, fn, args, nil)
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return nil, cerr
		}
		return nil, evalError(file, fmt.Sprintf("%s failed", fn.Name()), err)
	}
	ds, err := verdict(v)
	if err != nil {
		pos := fn.(*starlark.Function).Position()
		return nil, &Error{Pos: fmt.Sprintf("%s:%d", pos.Filename(), pos.Line), Msg: fn.Name() + " " + err.Error()}
	}
	return ds, nil
}

// verdict reads what a policy function returned.
func verdict(v starlark.Value) ([]Denial, error) {
	switch v := v.(type) {
	case starlark.NoneType:
		return nil, nil
	case starlark.Bool:
		if v {
			return nil, nil
		}
	case *denial:
		return []Denial{v.d}, nil
	case *starlark.List:
		var out []Denial
		for i := range v.Len() {
			d, ok := v.Index(i).(*denial)
			if !ok {
				return nil, fmt.Errorf("returned a list holding a %s: want deny(...) values", v.Index(i).Type())
			}
			out = append(out, d.d)
		}
		return out, nil
	}
	return nil, fmt.Errorf("returned %s: want None (allow), deny(\"why\") or a list of deny(...)", v.Type())
}

// evalError turns a Starlark failure into an *Error at its innermost frame.
func evalError(file, what string, err error) *Error {
	var ee *starlark.EvalError
	if errors.As(err, &ee) && len(ee.CallStack) > 0 {
		for i := len(ee.CallStack) - 1; i >= 0; i-- {
			if pos := ee.CallStack[i].Pos; pos.IsValid() && strings.HasSuffix(pos.Filename(), ".star") {
				return &Error{Pos: fmt.Sprintf("%s:%d", pos.Filename(), pos.Line), Msg: what + ": " + ee.Msg}
			}
		}
		return &Error{Pos: file, Msg: what + ": " + ee.Msg}
	}
	var se syntax.Error
	if errors.As(err, &se) {
		return &Error{Pos: fmt.Sprintf("%s:%d", se.Pos.Filename(), se.Pos.Line), Msg: se.Msg}
	}
	var le interface{ Unwrap() []error }
	if errors.As(err, &le) {
		// resolve.ErrorList: report the first.
		if errs := le.Unwrap(); len(errs) > 0 {
			return evalError(file, what, errs[0])
		}
	}
	if pos, msg, ok := leadingPos(err.Error()); ok {
		return &Error{Pos: pos, Msg: msg}
	}
	return &Error{Pos: file, Msg: what + ": " + err.Error()}
}

// leadingPos splits "file.star:3:5: msg" into "file.star:3" and msg.
func leadingPos(s string) (string, string, bool) {
	file, rest, ok := strings.Cut(s, ".star:")
	if !ok || strings.ContainsAny(file, " \n") {
		return "", "", false
	}
	line, rest, ok := strings.Cut(rest, ":")
	if !ok || line == "" || strings.Trim(line, "0123456789") != "" {
		return "", "", false
	}
	if col, msg, ok := strings.Cut(rest, ": "); ok && strings.Trim(col, "0123456789") == "" {
		rest = msg
	}
	return file + ".star:" + line, strings.TrimSpace(rest), true
}

func newThread(name string) *starlark.Thread {
	th := &starlark.Thread{Name: "policy " + name}
	th.SetMaxExecutionSteps(MaxSteps)
	th.Print = func(*starlark.Thread, string) {} // policies have no log
	return th
}

// predeclared are the names a policy sees.
func predeclared() starlark.StringDict {
	return starlark.StringDict{
		"deny":   starlark.NewBuiltin("deny", denyBuiltin),
		"json":   sljson.Module,
		"struct": starlark.NewBuiltin("struct", starlarkstruct.Make),
	}
}

// denial is the value deny() returns.
type denial struct{ d Denial }

func (d *denial) String() string        { return "deny(" + starlark.String(d.d.Why).String() + ")" }
func (d *denial) Type() string          { return "denial" }
func (d *denial) Freeze()               {}
func (d *denial) Truth() starlark.Bool  { return true }
func (d *denial) Hash() (uint32, error) { return starlark.String(d.d.Why).Hash() }

// Attr lets tests read why and policy.
func (d *denial) Attr(name string) (starlark.Value, error) {
	switch name {
	case "why":
		return starlark.String(d.d.Why), nil
	case "policy":
		return starlark.String(d.d.Policy), nil
	case "at":
		return starlark.String(d.d.At), nil
	}
	return nil, nil
}

// AttrNames lists the attributes of a denial.
func (d *denial) AttrNames() []string { return []string{"at", "policy", "why"} }

// denyBuiltin is deny(why, at=None): a refusal at the caller's file:line.
// at names what in the runbook it is about: a value with file and line
// (an effect of runbook.effects), or a "file:line" string.
func denyBuiltin(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var why string
	var at starlark.Value = starlark.None
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "why", &why, "at?", &at); err != nil {
		return nil, err
	}
	if strings.TrimSpace(why) == "" {
		return nil, fmt.Errorf("deny: say why")
	}
	d := Denial{Why: why}
	if th.CallStackDepth() > 1 {
		pos := th.CallFrame(1).Pos
		d.Policy = fmt.Sprintf("%s:%d", pos.Filename(), pos.Line)
	}
	switch at := at.(type) {
	case starlark.NoneType:
	case starlark.String:
		d.At = string(at)
	case starlark.Mapping:
		f, _, _ := at.Get(starlark.String("file"))
		l, _, _ := at.Get(starlark.String("line"))
		fs, _ := starlark.AsString(f)
		if w, ok, _ := at.Get(starlark.String("where")); ok && fs == "" {
			// a trigger's "file:line:col"
			where, _ := starlark.AsString(w)
			if i := strings.LastIndex(where, ":"); i > 0 && strings.Count(where, ":") >= 2 {
				where = where[:i]
			}
			d.At = where
			break
		}
		var line int
		if l != nil {
			_ = starlark.AsInt(l, &line)
		}
		if fs != "" && line > 0 {
			d.At = fmt.Sprintf("%s:%d", fs, line)
		} else if fs != "" {
			d.At = fs
		}
	default:
		return nil, fmt.Errorf("deny: at= wants an effect or trigger of the runbook or a \"file:line\" string, got %s", at.Type())
	}
	return &denial{d: d}, nil
}

// loader loads policy files and the files they load(), once each.
type loader struct {
	files map[string]string
	env   starlark.StringDict // of policy files
	tests starlark.StringDict // of *_test.star files; nil: env
	cache map[string]*entry
}

type entry struct {
	globals starlark.StringDict
	err     error
}

func newLoader(files map[string]string, env starlark.StringDict) *loader {
	return &loader{files: files, env: env, cache: map[string]*entry{}}
}

func (l *loader) load(name string) (starlark.StringDict, error) {
	if e, ok := l.cache[name]; ok {
		if e == nil {
			return nil, &Error{Pos: name, Msg: "load cycle"}
		}
		return e.globals, e.err
	}
	src, ok := l.files[name]
	if !ok {
		return nil, &Error{Pos: name, Msg: "no such policy file"}
	}
	l.cache[name] = nil
	th := newThread(name)
	th.Load = func(th *starlark.Thread, module string) (starlark.StringDict, error) {
		from := th.CallFrame(0).Pos.Filename()
		return l.load(path.Join(path.Dir(from), module))
	}
	env := l.env
	if l.tests != nil && !IsPolicyFile(name) {
		env = l.tests
	}
	g, err := starlark.ExecFileOptions(fileOptions, th, name, src, env)
	if err != nil {
		var pe *Error
		if !errors.As(err, &pe) {
			pe = evalError(name, "load", err)
		}
		err = pe
	}
	l.cache[name] = &entry{globals: g, err: err}
	return g, err
}

func sortedNames(files map[string]string) []string {
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// version is the content hash of files.
func version(files map[string]string) string {
	h := sha256.New()
	for _, n := range sortedNames(files) {
		fmt.Fprintf(h, "%s\x00%d\x00%s\x00", n, len(files[n]), files[n])
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}

// value converts a Go value to frozen Starlark through JSON: objects are
// records (r.key and r["key"]).
func value(x any) (starlark.Value, error) {
	data, err := json.Marshal(x)
	if err != nil {
		return nil, fmt.Errorf("policy value: %w", err)
	}
	return sbruntime.Decode(data)
}
