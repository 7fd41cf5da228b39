// Package starfmt formats starbook's Starlark files (runbooks, their tests,
// policies and library modules) with bazelbuild/buildtools' printer, the one
// buildifier uses for generic ("default") .star files. It owns no printer of
// its own: starbook's formatting is exactly buildifier's.
//
// Invariants: Format is idempotent (Format of its own output returns the same
// bytes), its output parses with go.starlark.net under runtime.FileOptions
// (tested over every shipped file), and a source that does not parse is
// refused with an *Error carrying file:line:col; nothing is written on error.
// Both `starbook fmt` and the language server's formatting call Format.
package starfmt
