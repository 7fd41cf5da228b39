package lsp

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/tliron/glsp"
	protocol "github.com/tliron/glsp/protocol_3_16"
)

// TestDebounce: changes wait for the debounce (here an hour, so they never
// fire by themselves); a save checks at once, the last text only, and
// Close does not wait for the pending ones.
func TestDebounce(t *testing.T) {
	s, err := New(Options{CacheDir: t.TempDir(), Debounce: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	published := make(chan protocol.PublishDiagnosticsParams, 10)
	ctx := &glsp.Context{Notify: func(method string, params any) {
		if method == protocol.ServerTextDocumentPublishDiagnostics {
			published <- params.(protocol.PublishDiagnosticsParams)
		}
	}}
	h := s.handler()
	const uri = "file:///runbooks/rb.star"
	must(t, h.TextDocumentDidOpen(ctx, &protocol.DidOpenTextDocumentParams{TextDocument: protocol.TextDocumentItem{URI: uri, Version: 1, Text: "def main(event):\n    return 1\n"}}))
	if p := <-published; p.Version == nil || *p.Version != 1 || len(p.Diagnostics) != 0 {
		t.Fatalf("on open: %+v, want version 1 clean", p)
	}
	for v := int32(2); v <= 6; v++ {
		var params protocol.DidChangeTextDocumentParams
		change := `{"textDocument": {"uri": "` + uri + `", "version": ` + string(rune('0'+v)) + `}, "contentChanges": [{"range": {"start": {"line": 1, "character": 11}, "end": {"line": 1, "character": 12}}, "text": "x"}]}`
		must(t, json.Unmarshal([]byte(change), &params))
		must(t, h.TextDocumentDidChange(ctx, &params))
	}
	select {
	case p := <-published:
		t.Fatalf("published %+v before the debounce or a save", p)
	default:
	}
	must(t, h.TextDocumentDidSave(ctx, &protocol.DidSaveTextDocumentParams{TextDocument: protocol.TextDocumentIdentifier{URI: uri}}))
	p := <-published
	if p.Version == nil || *p.Version != 6 || len(p.Diagnostics) != 1 || p.Diagnostics[0].Message != "undefined: x" {
		t.Fatalf("on save: %+v, want version 6 with undefined: x", p)
	}
	s.Close()
	select {
	case p := <-published:
		t.Errorf("published %+v after the save: the debounced checks ran too", p)
	default:
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
