package starfmt

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/bazelbuild/buildtools/build"
)

// Error is a source that buildtools' parser refuses, at File:Line:Col
// (1-based; Col counts runes).
type Error struct {
	File string
	Line int
	Col  int
	Msg  string
}

// Error formats as file:line:col: message, like the compilers and gofmt.
func (e *Error) Error() string {
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg)
}

// Format returns src formatted as buildifier formats a generic Starlark
// file, whatever name's extension. name is used only in errors. A source
// that does not parse returns an *Error at the parser's position.
func Format(name string, src []byte) (out []byte, err error) {
	// The language server formats half-typed files: a panic in buildtools
	// must be an error, not the editor's server gone.
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, fmt.Errorf("%s: the formatter failed: %v", name, r)
		}
	}()
	f, err := build.ParseDefault(name, src)
	if err != nil {
		var pe build.ParseError
		if errors.As(err, &pe) {
			e := &Error{File: name, Line: pe.Pos.Line, Col: pe.Pos.LineRune, Msg: pe.Message}
			whileLoop(e, src)
			return nil, e
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return build.Format(f), nil
}

// IsFormatted reports whether src is already formatted; its error is
// Format's.
func IsFormatted(name string, src []byte) (bool, error) {
	out, err := Format(name, src)
	if err != nil {
		return false, err
	}
	return bytes.Equal(out, src), nil
}

// whileLoop rewords e when it is buildtools' parser meeting a while loop,
// which runbooks may use (runtime.FileOptions) but Bazel's Starlark, and so
// buildifier, does not have: "syntax error near True" would mislead.
func whileLoop(e *Error, src []byte) {
	lines := bytes.Split(src, []byte("\n"))
	if e.Line < 1 || e.Line > len(lines) {
		return
	}
	line := lines[e.Line-1]
	rest := bytes.TrimLeft(line, " \t")
	if !bytes.HasPrefix(rest, []byte("while")) || len(rest) == 5 || !strings.ContainsRune(" \t(", rune(rest[5])) {
		return
	}
	e.Col = len(line) - len(rest) + 1
	e.Msg = "while loops cannot be formatted: buildifier's parser does not know them (" + e.Msg + ")"
}
