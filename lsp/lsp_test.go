package lsp_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	protocol "github.com/tliron/glsp/protocol_3_16"

	"github.com/starbook/starbook/lsp"
	"github.com/starbook/starbook/starfmt"
)

var (
	buildOnce sync.Once
	starbook  string // the binary the tests drive
	buildErr  error
)

// binary builds cmd/starbook once per test process (not in fuzz workers,
// which do not call it).
func binary(t *testing.T) string {
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "starbook-lsp")
		if err != nil {
			buildErr = err
			return
		}
		starbook = filepath.Join(dir, "starbook")
		if out, err := exec.Command("go", "build", "-o", starbook, "github.com/starbook/starbook/cmd/starbook").CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return starbook
}

func TestMain(m *testing.M) {
	code := m.Run()
	if starbook != "" {
		os.RemoveAll(filepath.Dir(starbook))
	}
	os.Exit(code)
}

const libSrc = `def helper(x):
    """Helper returns x."""
    return x
`

const runbookSrc = `load("lib.star", "helper")
load("@std/k8s.star", "k8s")

def main(event):
    k8s.rollout_restart("shop", "api")
    return call(helper, event)
`

// session starts `starbook lsp`, initializes it and returns the client and
// a directory holding lib.star.
func session(t *testing.T) (*client, string) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "lib.star"), []byte(libSrc), 0o644); err != nil {
		t.Fatal(err)
	}
	c := startServer(t, binary(t), "XDG_CACHE_HOME="+filepath.Join(dir, "cache"), "HOME="+dir)
	var init protocol.InitializeResult
	if err := c.call("initialize", map[string]any{"processId": nil, "rootUri": lsp.PathURI(dir), "capabilities": map[string]any{}}, &init); err != nil {
		t.Fatal(err)
	}
	if init.Capabilities.HoverProvider != true || init.Capabilities.CompletionProvider == nil {
		t.Fatalf("capabilities %+v: want hover and completion", init.Capabilities)
	}
	c.notify("initialized", map[string]any{})
	return c, dir
}

func open(c *client, uri, text string) {
	c.notify("textDocument/didOpen", map[string]any{"textDocument": map[string]any{"uri": uri, "languageId": "starlark", "version": 1, "text": text}})
}

func at(uri string, line, char int) map[string]any {
	return map[string]any{"textDocument": map[string]any{"uri": uri}, "position": map[string]any{"line": line, "character": char}}
}

func hasMessage(want string) func([]protocol.Diagnostic) bool {
	return func(ds []protocol.Diagnostic) bool {
		for _, d := range ds {
			if strings.Contains(d.Message, want) {
				return true
			}
		}
		return false
	}
}

func empty(ds []protocol.Diagnostic) bool { return len(ds) == 0 }

// TestLanguageServer drives the real binary over stdio as an editor does.
func TestLanguageServer(t *testing.T) {
	c, dir := session(t)
	uri := lsp.PathURI(filepath.Join(dir, "rb.star"))
	bad := strings.Replace(runbookSrc, "call(helper", "call(helpr", 1)
	open(c, uri, bad)

	t.Run("diagnostic", func(t *testing.T) {
		ds := c.diagnostics(t, uri, hasMessage("undefined: helpr"))
		for _, d := range ds {
			if strings.Contains(d.Message, "helpr") && (d.Range.Start.Line != 5 || d.Range.Start.Character != 16 || d.Range.End.Character != 21) {
				t.Errorf("range %+v: want line 5, characters 16-21 (helpr)", d.Range)
			}
		}
	})
	t.Run("fixed clears it", func(t *testing.T) {
		c.notify("textDocument/didChange", map[string]any{"textDocument": map[string]any{"uri": uri, "version": 2},
			"contentChanges": []any{map[string]any{"range": map[string]any{"start": map[string]any{"line": 5, "character": 16},
				"end": map[string]any{"line": 5, "character": 21}}, "text": "helper"}}})
		c.diagnostics(t, uri, empty)
	})
	t.Run("completion after http.", func(t *testing.T) {
		curi := lsp.PathURI(filepath.Join(dir, "typing.star"))
		open(c, curi, "def main(event):\n    http.")
		var items []protocol.CompletionItem
		if err := c.call("textDocument/completion", at(curi, 1, 9), &items); err != nil {
			t.Fatal(err)
		}
		got := labels(items)
		for _, want := range []string{"get", "post", "request"} {
			if !strings.Contains(got, " "+want+" ") {
				t.Errorf("completion %s: lacks %s", got, want)
			}
		}
		if strings.Contains(got, " call ") {
			t.Errorf("completion after http. offers call: %s", got)
		}
	})
	t.Run("completion of names", func(t *testing.T) {
		var items []protocol.CompletionItem
		if err := c.call("textDocument/completion", at(uri, 5, 11), &items); err != nil {
			t.Fatal(err)
		}
		got := labels(items)
		for _, want := range []string{"call", "wait_for_approval", "helper", "k8s", "main", "trigger", "event"} {
			if !strings.Contains(got, " "+want+" ") {
				t.Errorf("completion lacks %s: %s", want, got)
			}
		}
	})
	t.Run("completion of @std modules and members", func(t *testing.T) {
		suri := lsp.PathURI(filepath.Join(dir, "std.star"))
		open(c, suri, "load(\"@std/\nk8s.")
		var items []protocol.CompletionItem
		if err := c.call("textDocument/completion", at(suri, 0, 11), &items); err != nil {
			t.Fatal(err)
		}
		if got := labels(items); !strings.Contains(got, " k8s.star ") || !strings.Contains(got, " prometheus.star ") {
			t.Errorf("load(\"@std/ completion: %s", got)
		}
		if err := c.call("textDocument/completion", at(uri, 4, 8), &items); err != nil {
			t.Fatal(err)
		}
		if got := labels(items); !strings.Contains(got, " rollout_restart ") || !strings.Contains(got, " wait_ready ") {
			t.Errorf("k8s. completion: %s", got)
		}
	})
	t.Run("hover on call", func(t *testing.T) {
		var h protocol.Hover
		if err := c.call("textDocument/hover", at(uri, 5, 13), &h); err != nil {
			t.Fatal(err)
		}
		text := fmt.Sprint(h.Contents)
		if !strings.Contains(text, "call(fn, *args, retry=") || !strings.Contains(text, "durable step") {
			t.Errorf("hover on call: %s", text)
		}
	})
	t.Run("hover on a loaded function's docstring", func(t *testing.T) {
		var h protocol.Hover
		if err := c.call("textDocument/hover", at(uri, 5, 18), &h); err != nil {
			t.Fatal(err)
		}
		if text := fmt.Sprint(h.Contents); !strings.Contains(text, "helper(x)") || !strings.Contains(text, "Helper returns x.") {
			t.Errorf("hover on helper: %s", text)
		}
	})
	t.Run("signature help", func(t *testing.T) {
		var sh protocol.SignatureHelp
		if err := c.call("textDocument/signatureHelp", at(uri, 4, 31), &sh); err != nil {
			t.Fatal(err)
		}
		if len(sh.Signatures) != 1 || !strings.HasPrefix(sh.Signatures[0].Label, "k8s.rollout_restart(namespace, deployment") ||
			sh.ActiveParameter == nil || *sh.ActiveParameter != 1 {
			t.Errorf("signature help in k8s.rollout_restart's second argument: %+v", sh)
		}
	})
	t.Run("definition across load", func(t *testing.T) {
		var loc protocol.Location
		if err := c.call("textDocument/definition", at(uri, 5, 18), &loc); err != nil {
			t.Fatal(err)
		}
		if loc.URI != lsp.PathURI(filepath.Join(dir, "lib.star")) || loc.Range.Start.Line != 0 || loc.Range.Start.Character != 4 {
			t.Errorf("definition of helper: %+v, want lib.star 0:4", loc)
		}
	})
	t.Run("definition into @std", func(t *testing.T) {
		var loc protocol.Location
		if err := c.call("textDocument/definition", at(uri, 4, 10), &loc); err != nil {
			t.Fatal(err)
		}
		path := lsp.URIPath(loc.URI)
		if !strings.HasPrefix(path, filepath.Join(dir, "cache")) || filepath.Base(path) != "k8s.star" {
			t.Fatalf("definition of k8s.rollout_restart: %+v, want k8s.star under the cache directory", loc)
		}
		src, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		line := strings.Split(string(src), "\n")[loc.Range.Start.Line]
		if !strings.HasPrefix(line, "def rollout_restart(") {
			t.Errorf("definition lands on %q, want def rollout_restart", line)
		}
		if st, err := os.Stat(path); err != nil || st.Mode().Perm()&0o222 != 0 {
			t.Errorf("the @std copy is writable: %v %v", st.Mode(), err)
		}
	})
	t.Run("definition on a load path", func(t *testing.T) {
		var loc protocol.Location
		if err := c.call("textDocument/definition", at(uri, 0, 8), &loc); err != nil {
			t.Fatal(err)
		}
		if loc.URI != lsp.PathURI(filepath.Join(dir, "lib.star")) {
			t.Errorf("definition on \"lib.star\": %+v, want lib.star", loc)
		}
	})
	t.Run("document symbols", func(t *testing.T) {
		var syms []protocol.DocumentSymbol
		if err := c.call("textDocument/documentSymbol", map[string]any{"textDocument": map[string]any{"uri": uri}}, &syms); err != nil {
			t.Fatal(err)
		}
		if len(syms) != 1 || syms[0].Name != "main" || syms[0].Kind != protocol.SymbolKindFunction {
			t.Errorf("symbols %+v: want main", syms)
		}
	})
	t.Run("formatting", func(t *testing.T) {
		furi := lsp.PathURI(filepath.Join(dir, "messy.star"))
		messy := "def main( event ):\n  return call(helper,event)\n"
		open(c, furi, messy)
		var edits []protocol.TextEdit
		opts := map[string]any{"textDocument": map[string]any{"uri": furi}, "options": map[string]any{"tabSize": 4, "insertSpaces": true}}
		if err := c.call("textDocument/formatting", opts, &edits); err != nil {
			t.Fatal(err)
		}
		want, err := starfmt.Format("messy.star", []byte(messy))
		if err != nil {
			t.Fatal(err)
		}
		if len(edits) != 1 || edits[0].NewText != string(want) || edits[0].Range.Start != (protocol.Position{}) ||
			edits[0].Range.End != (protocol.Position{Line: 2, Character: 0}) {
			t.Errorf("formatting edits %+v, want the whole file replaced by %q", edits, want)
		}
		if !strings.Contains(edits[0].NewText, "def main(event):\n    return call(helper, event)\n") {
			t.Errorf("formatted %q", edits[0].NewText)
		}
		// A file that does not parse is an error answer, not a crash.
		buri := lsp.PathURI(filepath.Join(dir, "broken.star"))
		open(c, buri, "def main(:\n")
		if err := c.call("textDocument/formatting", map[string]any{"textDocument": map[string]any{"uri": buri}, "options": map[string]any{}}, &edits); err == nil || !strings.Contains(err.Error(), "broken.star:1:") {
			t.Errorf("formatting a broken file: %v, want its file:line", err)
		}
	})
	t.Run("shutdown and exit", func(t *testing.T) {
		if err := c.call("shutdown", nil, nil); err != nil {
			t.Fatal(err)
		}
		c.notify("exit", nil)
		if err := c.cmd.Wait(); err != nil {
			t.Errorf("starbook lsp after exit: %v, want status 0", err)
		}
	})
}

func labels(items []protocol.CompletionItem) string {
	var b strings.Builder
	b.WriteString(" ")
	for _, it := range items {
		b.WriteString(it.Label + " ")
	}
	return b.String()
}

// TestBadInput: a half-typed file, an unknown load and a 10 MB file get
// diagnostics, and the server keeps answering.
func TestBadInput(t *testing.T) {
	c, dir := session(t)
	tests := []struct {
		name, text, want string
	}{
		{"half-typed", "def main(event):\n    call(http.po", "want ','"},
		{"unknown load", "load(\"nope.star\", \"x\")\ndef main(event):\n    return x\n", "nope.star"},
		{"10 MB", "def main(event):\n    pass\n" + strings.Repeat("# a comment line, over and over, to make the file large\n", 10<<20/56), "not checked"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			uri := lsp.PathURI(filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "_")+".star"))
			open(c, uri, tt.text)
			// Requests are answered whether or not its check has run.
			var items []protocol.CompletionItem
			if err := c.call("textDocument/completion", at(uri, 1, 12), &items); err != nil {
				t.Fatal(err)
			}
			var h *protocol.Hover
			if err := c.call("textDocument/hover", at(uri, 1, 5), &h); err != nil {
				t.Fatal(err)
			}
			c.diagnostics(t, uri, hasMessage(tt.want))
		})
	}
	t.Run("a finding in a loaded file", func(t *testing.T) {
		if err := os.WriteFile(filepath.Join(dir, "broken_lib.star"), []byte("def helper(x):\n    return y\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		uri := lsp.PathURI(filepath.Join(dir, "uses_broken.star"))
		open(c, uri, "load(\"broken_lib.star\", \"helper\")\n\ndef main(event):\n    return helper(event)\n")
		ds := c.diagnostics(t, uri, hasMessage("broken_lib.star:2:12: undefined: y"))
		if ds[0].Range.Start.Line != 0 || ds[0].Range.Start.Character != 5 {
			t.Errorf("range %+v: want the load's module string", ds[0].Range)
		}
	})
	t.Run("not open", func(t *testing.T) {
		var syms []protocol.DocumentSymbol
		if err := c.call("textDocument/documentSymbol", map[string]any{"textDocument": map[string]any{"uri": "file:///not/open.star"}}, &syms); err != nil || len(syms) != 0 {
			t.Errorf("symbols of a document not open: %v %v", syms, err)
		}
	})
	t.Run("requests while a check runs", func(t *testing.T) {
		// Just under the size the server checks: its check takes the best
		// part of a second, the hover a parse.
		var b strings.Builder
		b.WriteString("def main(event):\n    return f0(event)\n")
		for i := 0; b.Len() < lsp.MaxCheckBytes-200; i++ {
			fmt.Fprintf(&b, "def f%d(x):\n    return f%d(x + 1) if x < 0 else x\n", i, i+1)
		}
		b.WriteString("def f999999(x):\n    return x\n")
		uri := lsp.PathURI(filepath.Join(dir, "big.star"))
		open(c, uri, b.String())
		var h protocol.Hover
		if err := c.call("textDocument/hover", at(uri, 1, 12), &h); err != nil {
			t.Fatal(err)
		}
		if text := fmt.Sprint(h.Contents); !strings.Contains(text, "f0(x)") {
			t.Errorf("hover on f0: %s", text)
		}
	drain:
		for {
			select {
			case p := <-c.diags:
				if p.URI == uri {
					t.Errorf("the big file's diagnostics came before the hover's answer: a request waited for the check")
				}
			default:
				break drain
			}
		}
		c.diagnostics(t, uri, func(ds []protocol.Diagnostic) bool { return true })
	})
}
