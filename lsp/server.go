package lsp

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/tliron/glsp"
	protocol "github.com/tliron/glsp/protocol_3_16"
	glspserver "github.com/tliron/glsp/server"
	"go.starlark.net/starlark"
	"go.starlark.net/syntax"

	"github.com/starbook/starbook/builtins"
	"github.com/starbook/starbook/stdlib"
)

// MaxCheckBytes is the largest document the server checks and parses;
// a larger one gets one information diagnostic instead.
const MaxCheckBytes = 1 << 20

// Debounce is how long after the last change a document is checked.
const Debounce = 300 * time.Millisecond

// maxLoadedFiles bounds the files a check follows through load().
const maxLoadedFiles = 100

// Options configure a Server.
type Options struct {
	// Format formats a .star file (starfmt.Format); nil: no formatting.
	Format func(name string, src []byte) ([]byte, error)
	// CacheDir is where @std modules are written for go to definition;
	// by default the user's cache directory's starbook/.
	CacheDir string
	// Std serves load("@std/..."); by default stdlib.Default(os.Getenv).
	Std *stdlib.Set
	// Debounce overrides the package's Debounce (tests).
	Debounce time.Duration
}

// Server is a language server. Its handlers are safe for concurrent use.
type Server struct {
	opts     Options
	docs     *Store
	std      *stdlib.Set
	cacheDir string
	builtins starlark.StringDict

	mu     sync.Mutex
	notify glsp.NotifyFunc
	// checks are the pending and running checks by document URI.
	checks map[string]*pending
	good   map[string]*parsed // last document text that parsed, by URI
	wg     sync.WaitGroup
	// sem lets one check run at a time: a check is CPU work and the
	// editor's machine has other things to do.
	sem      chan struct{}
	shutdown bool
	exited   chan struct{}
	exitOnce sync.Once
}

type pending struct {
	timer *time.Timer
	gen   int
}

// New returns a server.
func New(opts Options) (*Server, error) {
	s := &Server{opts: opts, docs: NewStore(), checks: map[string]*pending{}, good: map[string]*parsed{},
		sem: make(chan struct{}, 1), exited: make(chan struct{}), builtins: builtins.New(builtins.Options{})}
	s.std = opts.Std
	if s.std == nil {
		std, err := stdlib.Default(os.Getenv)
		if err != nil {
			return nil, fmt.Errorf("lsp: %w", err)
		}
		s.std = std
	}
	s.cacheDir = opts.CacheDir
	if s.cacheDir == "" {
		dir, err := os.UserCacheDir()
		if err != nil {
			dir = os.TempDir()
		}
		s.cacheDir = filepath.Join(dir, "starbook")
	}
	if s.opts.Debounce == 0 {
		s.opts.Debounce = Debounce
	}
	return s, nil
}

// Serve answers the client on stdin and stdout until it says exit or
// closes stdin, or ctx ends. It returns nil after shutdown then exit.
func (s *Server) Serve(ctx context.Context) error {
	srv := glspserver.NewServer(s.handler(), "starbook", false)
	srv.Context = ctx
	done := make(chan error, 1)
	go func() { done <- srv.RunStdio() }()
	var err error
	select {
	case err = <-done:
	case <-s.exited:
	case <-ctx.Done():
		err = ctx.Err()
	}
	s.Close()
	s.mu.Lock()
	clean := s.shutdown
	s.mu.Unlock()
	if err == nil && !clean {
		err = fmt.Errorf("lsp: the client exited without shutdown")
	}
	return err
}

// Close stops the pending checks and waits for a running one.
func (s *Server) Close() {
	s.mu.Lock()
	for _, p := range s.checks {
		s.stopLocked(p)
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// recovered turns a handler's panic into its error, so that one bad
// request never stops the server.
func recovered(method string, err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("%s: internal error: %v\n%s", method, r, debug.Stack())
	}
}

func (s *Server) remember(ctx *glsp.Context) {
	if ctx == nil || ctx.Notify == nil {
		return
	}
	s.mu.Lock()
	s.notify = ctx.Notify
	s.mu.Unlock()
}

func (s *Server) handler() *protocol.Handler {
	return &protocol.Handler{
		Initialize: func(ctx *glsp.Context, _ *protocol.InitializeParams) (_ any, err error) {
			defer recovered("initialize", &err)
			s.remember(ctx)
			sync := protocol.TextDocumentSyncKindIncremental
			yes := true
			caps := protocol.ServerCapabilities{
				TextDocumentSync: protocol.TextDocumentSyncOptions{OpenClose: &yes, Change: &sync,
					Save: protocol.SaveOptions{IncludeText: &yes}},
				CompletionProvider:     &protocol.CompletionOptions{TriggerCharacters: []string{".", "/", "\""}},
				HoverProvider:          true,
				SignatureHelpProvider:  &protocol.SignatureHelpOptions{TriggerCharacters: []string{"(", ","}},
				DefinitionProvider:     true,
				DocumentSymbolProvider: true,
			}
			if s.opts.Format != nil {
				caps.DocumentFormattingProvider = true
			}
			version := "1"
			return protocol.InitializeResult{Capabilities: caps, ServerInfo: &protocol.InitializeResultServerInfo{Name: "starbook", Version: &version}}, nil
		},
		Initialized: func(ctx *glsp.Context, _ *protocol.InitializedParams) error { s.remember(ctx); return nil },
		Shutdown: func(*glsp.Context) error {
			s.mu.Lock()
			s.shutdown = true
			s.mu.Unlock()
			return nil
		},
		Exit: func(*glsp.Context) error {
			s.exitOnce.Do(func() { close(s.exited) })
			return nil
		},
		SetTrace: func(*glsp.Context, *protocol.SetTraceParams) error { return nil },
		TextDocumentDidOpen: func(ctx *glsp.Context, p *protocol.DidOpenTextDocumentParams) (err error) {
			defer recovered("didOpen", &err)
			s.remember(ctx)
			s.docs.Open(p.TextDocument.URI, p.TextDocument.Text, p.TextDocument.Version)
			s.schedule(p.TextDocument.URI, 0)
			return nil
		},
		TextDocumentDidChange: func(ctx *glsp.Context, p *protocol.DidChangeTextDocumentParams) (err error) {
			defer recovered("didChange", &err)
			s.remember(ctx)
			if _, err := s.docs.Change(p.TextDocument.URI, p.TextDocument.Version, p.ContentChanges); err != nil {
				return err
			}
			s.schedule(p.TextDocument.URI, s.opts.Debounce)
			return nil
		},
		TextDocumentDidSave: func(ctx *glsp.Context, p *protocol.DidSaveTextDocumentParams) (err error) {
			defer recovered("didSave", &err)
			s.remember(ctx)
			if d, ok := s.docs.Get(p.TextDocument.URI); ok && p.Text != nil && *p.Text != d.Text {
				s.docs.Open(d.URI, *p.Text, d.Version)
			}
			s.schedule(p.TextDocument.URI, 0)
			return nil
		},
		TextDocumentDidClose: func(ctx *glsp.Context, p *protocol.DidCloseTextDocumentParams) (err error) {
			defer recovered("didClose", &err)
			s.docs.Close(p.TextDocument.URI)
			s.mu.Lock()
			if c := s.checks[p.TextDocument.URI]; c != nil {
				s.stopLocked(c)
				delete(s.checks, p.TextDocument.URI)
			}
			delete(s.good, p.TextDocument.URI)
			s.mu.Unlock()
			s.publish(p.TextDocument.URI, nil, []protocol.Diagnostic{})
			return nil
		},
		TextDocumentCompletion: func(_ *glsp.Context, p *protocol.CompletionParams) (_ any, err error) {
			defer recovered("completion", &err)
			d, pd, ok := s.current(p.TextDocument.URI)
			if !ok {
				return []protocol.CompletionItem{}, nil
			}
			items := s.complete(d.URI, pd, offsetOf(d.Text, p.Position))
			if items == nil {
				items = []protocol.CompletionItem{}
			}
			return items, nil
		},
		TextDocumentHover: func(_ *glsp.Context, p *protocol.HoverParams) (_ *protocol.Hover, err error) {
			defer recovered("hover", &err)
			d, pd, ok := s.current(p.TextDocument.URI)
			if !ok {
				return nil, nil
			}
			name := dottedAt(d.Text, offsetOf(d.Text, p.Position))
			if name == "" {
				return nil, nil
			}
			t, ok := s.resolve(d.URI, pd, name)
			if !ok || t.entry == nil {
				return nil, nil
			}
			return &protocol.Hover{Contents: markup(t.entry.Markdown())}, nil
		},
		TextDocumentSignatureHelp: func(_ *glsp.Context, p *protocol.SignatureHelpParams) (_ *protocol.SignatureHelp, err error) {
			defer recovered("signatureHelp", &err)
			d, pd, ok := s.current(p.TextDocument.URI)
			if !ok {
				return nil, nil
			}
			name, arg, ok := callAt(d.Text, offsetOf(d.Text, p.Position))
			if !ok {
				return nil, nil
			}
			t, ok := s.resolve(d.URI, pd, name)
			if !ok || t.entry == nil {
				return nil, nil
			}
			sig := protocol.SignatureInformation{Label: t.entry.Signature, Documentation: markup(t.entry.Summary)}
			for _, param := range t.entry.Params() {
				sig.Parameters = append(sig.Parameters, protocol.ParameterInformation{Label: param})
			}
			active := protocol.UInteger(0)
			if n := len(sig.Parameters); n > 0 {
				active = protocol.UInteger(min(arg, n-1))
			}
			zero := protocol.UInteger(0)
			return &protocol.SignatureHelp{Signatures: []protocol.SignatureInformation{sig}, ActiveSignature: &zero, ActiveParameter: &active}, nil
		},
		TextDocumentDefinition: func(_ *glsp.Context, p *protocol.DefinitionParams) (_ any, err error) {
			defer recovered("definition", &err)
			d, pd, ok := s.current(p.TextDocument.URI)
			if !ok {
				return nil, nil
			}
			off := offsetOf(d.Text, p.Position)
			if m, ok := s.loadModuleAt(d, pd, off); ok {
				return protocol.Location{URI: m.uri}, nil
			}
			name := dottedAt(d.Text, off)
			if name == "" {
				return nil, nil
			}
			t, ok := s.resolve(d.URI, pd, name)
			if !ok || t.uri == "" {
				return nil, nil
			}
			return protocol.Location{URI: t.uri, Range: t.rng}, nil
		},
		TextDocumentDocumentSymbol: func(_ *glsp.Context, p *protocol.DocumentSymbolParams) (_ any, err error) {
			defer recovered("documentSymbol", &err)
			_, pd, ok := s.current(p.TextDocument.URI)
			if !ok {
				return []protocol.DocumentSymbol{}, nil
			}
			return symbols(pd), nil
		},
		TextDocumentFormatting: func(_ *glsp.Context, p *protocol.DocumentFormattingParams) (_ []protocol.TextEdit, err error) {
			defer recovered("formatting", &err)
			d, ok := s.docs.Get(p.TextDocument.URI)
			if !ok || s.opts.Format == nil {
				return nil, nil
			}
			if len(d.Text) > MaxCheckBytes {
				return nil, fmt.Errorf("formatting: %d bytes: larger than the %d the server formats", len(d.Text), MaxCheckBytes)
			}
			out, err := s.opts.Format(filepath.Base(URIPath(d.URI)), []byte(d.Text))
			if err != nil {
				return nil, err
			}
			if string(out) == d.Text {
				return []protocol.TextEdit{}, nil
			}
			return []protocol.TextEdit{{Range: protocol.Range{End: positionOf(d.Text, len(d.Text))}, NewText: string(out)}}, nil
		},
	}
}

// current is an open document and its latest parse that succeeded (the
// text being typed usually does not parse).
func (s *Server) current(uri string) (Document, *parsed, bool) {
	d, ok := s.docs.Get(uri)
	if !ok {
		return Document{}, nil, false
	}
	s.mu.Lock()
	good := s.good[uri]
	s.mu.Unlock()
	if good != nil && good.text == d.Text {
		return d, good, true
	}
	if f := parse(filepath.Base(URIPath(uri)), d.Text); f != nil {
		good = &parsed{text: d.Text, file: f, fresh: true}
		s.mu.Lock()
		s.good[uri] = good
		s.mu.Unlock()
		return d, good, true
	}
	p := &parsed{text: d.Text}
	if good != nil {
		p.file = good.file
	}
	return d, p, true
}

// loadModuleAt is the module a load() names when the cursor is on its path.
func (s *Server) loadModuleAt(d Document, p *parsed, off int) (*module, bool) {
	if p.file == nil || !p.fresh || p.text != d.Text {
		return nil, false
	}
	pos := positionOf(d.Text, off)
	for _, st := range p.file.Stmts {
		ld, ok := st.(*syntax.LoadStmt)
		if !ok {
			continue
		}
		r := rangeOf(d.Text, ld.Module)
		if pos.Line == r.Start.Line && pos.Character >= r.Start.Character && pos.Character <= r.End.Character {
			name, _ := ld.Module.Value.(string)
			return s.openModule(d.URI, name)
		}
	}
	return nil, false
}

func isStd(name string) bool { return strings.HasPrefix(name, stdlib.Std+"/") }
