package lsp

import (
	"encoding/binary"
	"testing"

	protocol "github.com/tliron/glsp/protocol_3_16"
)

// FuzzEdits feeds random didChange sequences to the document store and
// runs every analysis the handlers run on each resulting text: none may
// panic, whatever the text and however wrong the ranges.
func FuzzEdits(f *testing.F) {
	f.Add("def main(event):\n    return call(http.get, \"http://x\")\n", []byte{1, 0, 4, 1, 0, 9, 'h', 't', 't', 'p', '.'})
	f.Add("load(\"@std/k8s.star\", \"k8s\")\ndef main(event):\n    k8s.", []byte{2, 8, 2, 8, '(', '"'})
	f.Add("load(\"lib.star\", \"x\")\n", []byte{0, 255, 3, 0, 'é', 0xf0, 0x9f, 0x98, 0x80})
	f.Add("", []byte{9, 9, 9, 9, '"', '"', '"'})
	base, err := New(Options{CacheDir: f.TempDir()})
	if err != nil {
		f.Fatal(err)
	}
	const uri = "file:///fuzz/rb.star"
	f.Fuzz(func(t *testing.T, text string, edits []byte) {
		// A server per input: the last good parse an input leaves must not
		// change what the next one does.
		s, err := New(Options{CacheDir: base.cacheDir, Std: base.std})
		if err != nil {
			t.Fatal(err)
		}
		s.docs.Open(uri, text, 1)
		version := int32(1)
		for len(edits) >= 4 {
			var change protocol.TextDocumentContentChangeEvent
			change.Range = &protocol.Range{
				Start: protocol.Position{Line: protocol.UInteger(edits[0] % 8), Character: protocol.UInteger(edits[1] % 64)},
				End:   protocol.Position{Line: protocol.UInteger(edits[2] % 8), Character: protocol.UInteger(edits[3] % 64)},
			}
			edits = edits[4:]
			n := 0
			if len(edits) > 0 {
				n = int(edits[0]) % 16
				edits = edits[1:]
			}
			n = min(n, len(edits))
			change.Text = string(edits[:n])
			edits = edits[n:]
			version++
			d, err := s.docs.Change(uri, version, []any{change})
			if err != nil {
				t.Fatal(err)
			}
			analyse(s, d, edits)
		}
		d, _ := s.docs.Get(uri)
		if len(d.Text) < 4096 {
			s.Diagnose(d)
		}
	})
}

// analyse runs what the handlers run at a position taken from seed.
func analyse(s *Server, d Document, seed []byte) {
	var pos protocol.Position
	if len(seed) >= 4 {
		pos = protocol.Position{Line: protocol.UInteger(binary.BigEndian.Uint16(seed) % 16), Character: protocol.UInteger(binary.BigEndian.Uint16(seed[2:]) % 80)}
	}
	off := offsetOf(d.Text, pos)
	if off < 0 || off > len(d.Text) {
		panic("offset outside the text")
	}
	_, p, _ := s.current(d.URI)
	s.complete(d.URI, p, off)
	if name := dottedAt(d.Text, off); name != "" {
		s.resolve(d.URI, p, name)
	}
	if name, _, ok := callAt(d.Text, off); ok {
		s.resolve(d.URI, p, name)
	}
	s.loadModuleAt(d, p, off)
	symbols(p)
	positionOf(d.Text, off)
}
