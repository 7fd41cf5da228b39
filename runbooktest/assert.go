package runbooktest

import (
	"errors"
	"fmt"
	"regexp"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
	"go.starlark.net/syntax"
)

// Failure is a failed assertion: where the assert call is and what failed.
type Failure struct {
	Pos syntax.Position
	Msg string
}

func (f *Failure) Error() string {
	return fmt.Sprintf("%s:%d: %s", f.Pos.Filename(), f.Pos.Line, f.Msg)
}

// AssertModule is the assert module of test files. Each function fails the
// test with the file:line of its call.
var AssertModule = &starlarkstruct.Module{
	Name: "assert",
	Members: starlark.StringDict{
		"eq":       starlark.NewBuiltin("assert.eq", assertEq),
		"ne":       starlark.NewBuiltin("assert.ne", assertNe),
		"true":     starlark.NewBuiltin("assert.true", assertTrue),
		"contains": starlark.NewBuiltin("assert.contains", assertContains),
		"fails":    starlark.NewBuiltin("assert.fails", assertFails),
	},
}

func fail(th *starlark.Thread, b *starlark.Builtin, msg starlark.Value, format string, args ...any) error {
	text := fmt.Sprintf(format, args...)
	if s, ok := starlark.AsString(msg); ok && s != "" {
		text = s + ": " + text
	} else if msg != nil && msg != starlark.None {
		text = msg.String() + ": " + text
	}
	var pos syntax.Position
	if th.CallStackDepth() > 1 {
		pos = th.CallFrame(1).Pos
	}
	return &Failure{Pos: pos, Msg: b.Name() + ": " + text}
}

func assertEq(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var got, want, msg starlark.Value
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "got", &got, "want", &want, "msg?", &msg); err != nil {
		return nil, err
	}
	eq, err := starlark.Equal(plain(got), plain(want))
	if err != nil {
		return nil, fail(th, b, msg, "cannot compare %s and %s: %v", got.Type(), want.Type(), err)
	}
	if !eq {
		return nil, fail(th, b, msg, "got %s, want %s", got.String(), want.String())
	}
	return starlark.None, nil
}

func assertNe(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var got, other, msg starlark.Value
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "got", &got, "other", &other, "msg?", &msg); err != nil {
		return nil, err
	}
	eq, err := starlark.Equal(plain(got), plain(other))
	if err != nil {
		return nil, fail(th, b, msg, "cannot compare %s and %s: %v", got.Type(), other.Type(), err)
	}
	if eq {
		return nil, fail(th, b, msg, "got %s, want anything else", got.String())
	}
	return starlark.None, nil
}

func assertTrue(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var cond, msg starlark.Value
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "cond", &cond, "msg?", &msg); err != nil {
		return nil, err
	}
	if !cond.Truth() {
		return nil, fail(th, b, msg, "%s is not true", cond.String())
	}
	return starlark.None, nil
}

func assertContains(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var container, item, msg starlark.Value
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "container", &container, "item", &item, "msg?", &msg); err != nil {
		return nil, err
	}
	in, err := starlark.Binary(syntax.IN, plain(item), plain(container))
	if err != nil {
		return nil, fail(th, b, msg, "%v", err)
	}
	if !in.Truth() {
		return nil, fail(th, b, msg, "%s does not contain %s", container.String(), item.String())
	}
	return starlark.None, nil
}

// assertFails implements assert.fails(fn, pattern=None): fn() must fail,
// with an error matching the regular expression pattern; the error's
// message is returned.
func assertFails(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var fn starlark.Callable
	var pattern string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "fn", &fn, "pattern?", &pattern); err != nil {
		return nil, err
	}
	_, err := starlark.Call(th, fn, nil, nil)
	if err == nil {
		return nil, fail(th, b, nil, "%s() did not fail", fn.Name())
	}
	msg := err.Error()
	var ee *starlark.EvalError
	if errors.As(err, &ee) {
		msg = ee.Msg
	}
	if pattern != "" {
		re, rerr := regexp.Compile(pattern)
		if rerr != nil {
			return nil, fmt.Errorf("%s: pattern: %w", b.Name(), rerr)
		}
		if !re.MatchString(msg) {
			return nil, fail(th, b, nil, "error %q does not match %q", msg, pattern)
		}
	}
	return starlark.String(msg), nil
}
