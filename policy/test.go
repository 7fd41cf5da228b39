package policy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"

	sbruntime "github.com/starbook/starbook/runtime"
)

// TestResult is the outcome of one test_* function of a *_test.star file.
type TestResult struct {
	File string
	Name string
	Err  error // nil: passed
}

func (r TestResult) String() string {
	if r.Err == nil {
		return "ok   " + r.File + " " + r.Name
	}
	return "FAIL " + r.File + " " + r.Name + ": " + r.Err.Error()
}

// Failed returns the results that failed.
func Failed(results []TestResult) []TestResult {
	var out []TestResult
	for _, r := range results {
		if r.Err != nil {
			out = append(out, r)
		}
	}
	return out
}

// Test loads the policies of files, then runs every test_* function of
// every *_test.star file among them, each in a fresh bounded thread, in
// file and name order. A policy or test file that does not load is an
// *Error; a failing test is a result with Err set (an *Error at the
// failing line).
func Test(ctx context.Context, files map[string]string) ([]TestResult, error) {
	if _, err := Load(files); err != nil {
		return nil, err
	}
	l := newLoader(files, predeclared())
	l.tests = testPredeclared()
	var out []TestResult
	for _, name := range sortedNames(files) {
		if !strings.HasSuffix(name, "_test.star") {
			continue
		}
		g, err := l.load(name)
		if err != nil {
			return nil, err
		}
		var tests []string
		for n, v := range g {
			if _, ok := v.(*starlark.Function); ok && strings.HasPrefix(n, "test_") {
				tests = append(tests, n)
			}
		}
		slices.Sort(tests)
		for _, t := range tests {
			fn := g[t].(*starlark.Function)
			if fn.NumParams() != 0 {
				pos := fn.Position()
				out = append(out, TestResult{File: name, Name: t, Err: &Error{
					Pos: fmt.Sprintf("%s:%d", pos.Filename(), pos.Line), Msg: "a test takes no parameters"}})
				continue
			}
			th := newThread(name)
			stop := context.AfterFunc(ctx, func() { th.Cancel("policy tests stopped") })
			_, err := starlark.Call(th, fn, nil, nil)
			stop()
			if err != nil {
				if ctx.Err() != nil {
					return out, ctx.Err()
				}
				err = evalError(name, "failed", err)
			}
			out = append(out, TestResult{File: name, Name: t, Err: err})
		}
	}
	return out, nil
}

// ReadFiles reads policy files: each path a .star file, or a directory
// whose *.star files (and those of its subdirectories) are read, keyed by
// their path relative to it ('/'-separated); a file is keyed by its base
// name.
func ReadFiles(paths ...string) (map[string]string, error) {
	files := map[string]string{}
	add := func(name, p string) error {
		if _, dup := files[name]; dup {
			return fmt.Errorf("two policy files named %s", name)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		files[name] = string(data)
		return nil
	}
	for _, p := range paths {
		info, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !info.IsDir() {
			if !strings.HasSuffix(p, ".star") {
				return nil, fmt.Errorf("%s: not a .star file", p)
			}
			if err := add(filepath.Base(p), p); err != nil {
				return nil, err
			}
			continue
		}
		err = filepath.WalkDir(p, func(fp string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if fp != p && strings.HasPrefix(d.Name(), ".") {
					return filepath.SkipDir
				}
				return nil
			}
			if !strings.HasSuffix(d.Name(), ".star") {
				return nil
			}
			rel, err := filepath.Rel(p, fp)
			if err != nil {
				return err
			}
			return add(filepath.ToSlash(rel), fp)
		})
		if err != nil {
			return nil, err
		}
	}
	if len(files) == 0 {
		return nil, errors.New("no policy files")
	}
	return files, nil
}

// testPredeclared are the names a test file sees: a policy's, the assert
// module, and runbook/effect/step to build the values policies are given.
func testPredeclared() starlark.StringDict {
	env := predeclared()
	env["assert"] = &starlarkstruct.Module{Name: "assert", Members: starlark.StringDict{
		"eq":      starlark.NewBuiltin("assert.eq", assertEq),
		"true":    starlark.NewBuiltin("assert.true", assertTrue),
		"allowed": starlark.NewBuiltin("assert.allowed", assertAllowed),
		"denied":  starlark.NewBuiltin("assert.denied", assertDenied),
	}}
	env["runbook"] = builder("runbook", func() any {
		rb := &Runbook{Name: "test", File: "test.star", Triggers: []map[string]any{}, Limits: map[string]any{},
			Secrets: []string{}, Effects: []Reach{}}
		return rb
	}, map[string]func() any{"effects": func() any { return &Reach{Kind: "http", Method: "GET", Host: "*", File: "test.star", Line: 1} }})
	env["effect"] = builder("effect", func() any {
		return &Effect{Kind: "http", Method: "GET", Runbook: "test", Execution: "01TEST", Position: "1"}
	}, nil)
	env["step"] = builder("step", func() any { return &Step{Kind: sbruntime.KindCall, Status: "ok", By: []string{}} }, nil)
	return env
}

// builder returns a built-in that makes the value zero() describes, its
// fields overridden by keyword arguments; the items of a list field named
// in items are filled in from their own zero value likewise.
func builder(name string, zero func() any, items map[string]func() any) *starlark.Builtin {
	return starlark.NewBuiltin(name, func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		if len(args) > 0 {
			return nil, fmt.Errorf("%s: keyword arguments only", name)
		}
		base, err := toMap(zero())
		if err != nil {
			return nil, err
		}
		for _, kv := range kwargs {
			key := string(kv[0].(starlark.String))
			if _, ok := base[key]; !ok {
				return nil, fmt.Errorf("%s: no field %s (fields: %s)", name, key, strings.Join(keys(base), ", "))
			}
			data, err := sbruntime.Encode(kv[1])
			if err != nil {
				return nil, fmt.Errorf("%s: %s=: %w", name, key, err)
			}
			var v any
			if err := json.Unmarshal(data, &v); err != nil {
				return nil, err
			}
			if mk := items[key]; mk != nil {
				list, ok := v.([]any)
				if !ok {
					return nil, fmt.Errorf("%s: %s= wants a list", name, key)
				}
				for i, it := range list {
					m, ok := it.(map[string]any)
					if !ok {
						continue
					}
					full, err := toMap(mk())
					if err != nil {
						return nil, err
					}
					for k, x := range m {
						full[k] = x
					}
					list[i] = full
				}
			}
			base[key] = v
		}
		return value(base)
	})
}

func toMap(x any) (map[string]any, error) {
	data, err := json.Marshal(x)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	return m, json.Unmarshal(data, &m)
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func assertEq(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var got, want starlark.Value
	var msg string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "got", &got, "want", &want, "msg?", &msg); err != nil {
		return nil, err
	}
	eq, err := starlark.Equal(got, want)
	if err != nil {
		return nil, err
	}
	if !eq {
		return nil, fmt.Errorf("got %s, want %s%s", got, want, suffix(msg))
	}
	return starlark.None, nil
}

func assertTrue(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var v starlark.Value
	var msg string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "value", &v, "msg?", &msg); err != nil {
		return nil, err
	}
	if !v.Truth() {
		return nil, fmt.Errorf("%s is not true%s", v, suffix(msg))
	}
	return starlark.None, nil
}

func assertAllowed(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var v starlark.Value
	var msg string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "verdict", &v, "msg?", &msg); err != nil {
		return nil, err
	}
	ds, err := verdict(v)
	if err != nil {
		return nil, fmt.Errorf("the policy %s", err)
	}
	if len(ds) > 0 {
		return nil, fmt.Errorf("denied (%s), want allowed%s", ds[0].Why, suffix(msg))
	}
	return starlark.None, nil
}

func assertDenied(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var v starlark.Value
	var contains, msg string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "verdict", &v, "contains?", &contains, "msg?", &msg); err != nil {
		return nil, err
	}
	ds, err := verdict(v)
	if err != nil {
		return nil, fmt.Errorf("the policy %s", err)
	}
	if len(ds) == 0 {
		return nil, fmt.Errorf("allowed, want denied%s", suffix(msg))
	}
	if contains != "" && !slices.ContainsFunc(ds, func(d Denial) bool { return strings.Contains(d.Why, contains) }) {
		return nil, fmt.Errorf("denied (%s), want a denial saying %q%s", ds[0].Why, contains, suffix(msg))
	}
	return starlark.None, nil
}

func suffix(msg string) string {
	if msg == "" {
		return ""
	}
	return ": " + msg
}
