package lsp

import (
	"fmt"
	"sync"

	protocol "github.com/tliron/glsp/protocol_3_16"
)

// Document is one open file as the editor sees it.
type Document struct {
	URI     string
	Version int32
	Text    string
}

// Store holds the open documents. Its methods are safe for concurrent use.
type Store struct {
	mu   sync.Mutex
	docs map[string]*Document
}

// NewStore returns an empty store.
func NewStore() *Store { return &Store{docs: map[string]*Document{}} }

// Open records a document the editor opened.
func (s *Store) Open(uri, text string, version int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.docs[uri] = &Document{URI: uri, Version: version, Text: text}
}

// Change applies didChange's content changes, in order, to an open
// document. A change is either the whole text or a range replacement; a
// range outside the text is clamped to it, never a panic.
func (s *Store) Change(uri string, version int32, changes []any) (Document, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.docs[uri]
	if !ok {
		return Document{}, fmt.Errorf("change %s: document not open", uri)
	}
	text := d.Text
	for _, c := range changes {
		switch c := c.(type) {
		case protocol.TextDocumentContentChangeEventWhole:
			text = c.Text
		case protocol.TextDocumentContentChangeEvent:
			if c.Range == nil {
				text = c.Text
				continue
			}
			start, end := offsetOf(text, c.Range.Start), offsetOf(text, c.Range.End)
			if end < start {
				start, end = end, start
			}
			text = text[:start] + c.Text + text[end:]
		default:
			return Document{}, fmt.Errorf("change %s: unknown change %T", uri, c)
		}
	}
	d.Text, d.Version = text, version
	return *d, nil
}

// Close forgets a document.
func (s *Store) Close(uri string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.docs, uri)
}

// Get returns a copy of an open document.
func (s *Store) Get(uri string) (Document, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.docs[uri]
	if !ok {
		return Document{}, false
	}
	return *d, true
}
