package lsp

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	protocol "github.com/tliron/glsp/protocol_3_16"
	"go.starlark.net/syntax"

	"github.com/starbook/starbook/check"
	sbruntime "github.com/starbook/starbook/runtime"
	"github.com/starbook/starbook/schema"
)

// schedule checks a document after delay, replacing a check scheduled
// before that has not started; one that runs publishes only if no change
// came meanwhile.
func (s *Server) schedule(uri string, delay time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.checks[uri]
	if p == nil {
		p = &pending{}
		s.checks[uri] = p
	} else {
		s.stopLocked(p)
	}
	p.gen++
	gen := p.gen
	s.wg.Add(1)
	p.timer = time.AfterFunc(delay, func() {
		defer s.wg.Done()
		s.runCheck(uri, gen)
	})
}

// stopLocked stops p's timer; a check it stops before it fires is done.
// s.mu is held.
func (s *Server) stopLocked(p *pending) {
	if p.timer != nil && p.timer.Stop() {
		s.wg.Done()
	}
	p.gen++
}

// stale reports whether a newer change or a close superseded check gen.
func (s *Server) stale(uri string, gen int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.checks[uri]
	return p == nil || p.gen != gen
}

func (s *Server) runCheck(uri string, gen int) {
	if s.stale(uri, gen) {
		return
	}
	s.sem <- struct{}{}
	defer func() { <-s.sem }()
	d, ok := s.docs.Get(uri)
	if !ok || s.stale(uri, gen) {
		return
	}
	diags := s.Diagnose(d)
	if s.stale(uri, gen) {
		return
	}
	version := protocol.UInteger(max(d.Version, 0))
	s.publish(uri, &version, diags)
}

func (s *Server) publish(uri string, version *protocol.UInteger, diags []protocol.Diagnostic) {
	s.mu.Lock()
	notify := s.notify
	s.mu.Unlock()
	if notify == nil {
		return
	}
	notify(protocol.ServerTextDocumentPublishDiagnostics, protocol.PublishDiagnosticsParams{URI: uri, Version: version, Diagnostics: diags})
}

// Diagnose is check's findings for a document: the document checked with
// the files it loads (from the editor when open, else from disk) and @std.
// It never panics: a panic of the check is a diagnostic.
func (s *Server) Diagnose(d Document) (diags []protocol.Diagnostic) {
	diags = []protocol.Diagnostic{}
	source := "starbook"
	if len(d.Text) > MaxCheckBytes {
		sev := protocol.DiagnosticSeverityInformation
		return append(diags, protocol.Diagnostic{Severity: &sev, Source: &source,
			Message: fmt.Sprintf("not checked: %d bytes, larger than the %d the language server checks (starbook check checks it)", len(d.Text), MaxCheckBytes)})
	}
	defer func() {
		if r := recover(); r != nil {
			sev := protocol.DiagnosticSeverityError
			diags = []protocol.Diagnostic{{Severity: &sev, Source: &source, Message: fmt.Sprintf("check failed: internal error: %v", r)}}
		}
	}()
	path := URIPath(d.URI)
	name := "runbook.star"
	if path != "" {
		name = filepath.Base(path)
	}
	files, via := s.gather(path, name, d.Text)
	res := check.Files(files, check.Options{Builtins: s.builtins, LookupEnv: os.LookupEnv, Libraries: s.std})
	loads := loadRanges(name, d.Text)
	for _, f := range res.Findings {
		sev := protocol.DiagnosticSeverityError
		if f.Severity == check.Warning {
			sev = protocol.DiagnosticSeverityWarning
		}
		switch r, ok := loads[via[f.File]]; {
		case f.File == name:
			diags = append(diags, protocol.Diagnostic{Range: findingRange(d.Text, f), Severity: &sev, Source: &source, Message: f.Message})
		case ok:
			// A finding in a file this one loads: on the load that
			// brings it, naming where it is.
			diags = append(diags, protocol.Diagnostic{Range: r, Severity: &sev, Source: &source, Message: f.String()})
		}
	}
	return diags
}

// loadRanges are the ranges of the module strings of a file's load()s, by
// the file name they resolve to.
func loadRanges(name, text string) map[string]protocol.Range {
	out := map[string]protocol.Range{}
	f, err := sbruntime.FileOptions.Parse(name, text, 0)
	if err != nil {
		return out
	}
	for _, st := range f.Stmts {
		if ld, ok := st.(*syntax.LoadStmt); ok {
			mod, _ := ld.Module.Value.(string)
			if rel, err := sbruntime.ResolveLoad(name, mod, nil); err == nil {
				out[rel] = rangeOf(text, ld.Module)
			}
		}
	}
	return out
}

// gather collects the files a check of the document needs: the document,
// what it loads (transitively, at most maxLoadedFiles), and its schema and
// test file beside it. via maps each loaded file, @std's too, to the file
// the document's own load() names on the way to it.
func (s *Server) gather(path, name, text string) (files, via map[string]string) {
	files = map[string]string{name: text}
	via = map[string]string{}
	if path == "" {
		return files, via
	}
	dir := filepath.Dir(path)
	base := strings.TrimSuffix(name, ".star")
	for _, extra := range []string{base + schema.FileSuffix, base + "_test.star"} {
		if t, ok := s.read(filepath.Join(dir, extra)); ok && extra != name {
			files[extra] = t
		}
	}
	todo := []string{name}
	for len(todo) > 0 && len(files) < maxLoadedFiles {
		from := todo[0]
		todo = todo[1:]
		f, err := sbruntime.FileOptions.Parse(from, files[from], 0)
		if err != nil {
			continue
		}
		for _, st := range f.Stmts {
			ld, ok := st.(*syntax.LoadStmt)
			if !ok {
				continue
			}
			mod, _ := ld.Module.Value.(string)
			rel, err := sbruntime.ResolveLoad(from, mod, nil)
			if err != nil {
				continue
			}
			if _, seen := via[rel]; !seen {
				via[rel] = rel
				if from != name {
					via[rel] = via[from]
				}
			}
			if isStd(mod) || strings.HasPrefix(mod, "@") {
				continue // the libraries serve these
			}
			if _, done := files[rel]; done {
				continue
			}
			if t, ok := s.read(filepath.Join(dir, filepath.FromSlash(rel))); ok {
				files[rel] = t
				todo = append(todo, rel)
			}
		}
	}
	return files, via
}

// findingRange is the range of a finding: its identifier, or the rest of
// its line.
func findingRange(text string, f check.Finding) protocol.Range {
	if f.Line == 0 {
		return protocol.Range{}
	}
	col := f.Col
	if col == 0 {
		col = 1
	}
	start := fromSyntax(text, syntax.Position{Line: int32(f.Line), Col: int32(col)})
	off := offsetOf(text, start)
	end := off
	for end < len(text) && isIdent(text[end]) {
		end++
	}
	if end == off {
		for end < len(text) && text[end] != '\n' {
			end++
		}
	}
	if end == off && off > 0 && text[off-1] != '\n' {
		// At the end of a line (a syntax error there): mark its last
		// character, so that the editor shows something.
		off--
		start = positionOf(text, off)
	}
	return protocol.Range{Start: start, End: positionOf(text, end)}
}
