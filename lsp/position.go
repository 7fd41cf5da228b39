package lsp

import (
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	protocol "github.com/tliron/glsp/protocol_3_16"
	"go.starlark.net/syntax"
)

// lineStart returns the byte offset where line (0-based) starts, or -1.
func lineStart(text string, line int) int {
	off := 0
	for l := 0; l < line; l++ {
		i := strings.IndexByte(text[off:], '\n')
		if i < 0 {
			return -1
		}
		off += i + 1
	}
	return off
}

// offsetOf converts an LSP position (0-based line, UTF-16 character) to a
// byte offset in text, clamped to the text and to the end of the line.
func offsetOf(text string, p protocol.Position) int {
	off := lineStart(text, int(p.Line))
	if off < 0 {
		return len(text)
	}
	units := int(p.Character)
	for units > 0 && off < len(text) && text[off] != '\n' {
		r, size := utf8.DecodeRuneInString(text[off:])
		n := 1
		if r >= 0x10000 {
			n = 2
		}
		units -= n
		off += size
	}
	return off
}

// positionOf converts a byte offset to an LSP position.
func positionOf(text string, off int) protocol.Position {
	if off > len(text) {
		off = len(text)
	}
	if off < 0 {
		off = 0
	}
	before := text[:off]
	line := strings.Count(before, "\n")
	start := strings.LastIndexByte(before, '\n') + 1
	return protocol.Position{Line: protocol.UInteger(line), Character: protocol.UInteger(len(utf16.Encode([]rune(before[start:]))))}
}

// fromSyntax converts a go.starlark.net position (1-based line, 1-based
// rune column) to an LSP position in text.
func fromSyntax(text string, p syntax.Position) protocol.Position {
	if p.Line < 1 {
		return protocol.Position{}
	}
	off := lineStart(text, int(p.Line)-1)
	if off < 0 {
		return positionOf(text, len(text))
	}
	for c := int32(1); c < p.Col && off < len(text) && text[off] != '\n'; c++ {
		_, size := utf8.DecodeRuneInString(text[off:])
		off += size
	}
	return positionOf(text, off)
}

// rangeOf is the LSP range of a syntax node in text.
func rangeOf(text string, n syntax.Node) protocol.Range {
	start, end := n.Span()
	return protocol.Range{Start: fromSyntax(text, start), End: fromSyntax(text, end)}
}
