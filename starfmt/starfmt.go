package starfmt

import (
	"bytes"
	"errors"
	"fmt"

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
func Format(name string, src []byte) ([]byte, error) {
	f, err := build.ParseDefault(name, src)
	if err != nil {
		var pe build.ParseError
		if errors.As(err, &pe) {
			return nil, &Error{File: name, Line: pe.Pos.Line, Col: pe.Pos.LineRune, Msg: pe.Message}
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
