package runtime

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"

	"go.starlark.net/starlark"
	"go.starlark.net/syntax"
)

// Secret is a value read with secret(name). It prints, encodes and hashes as
// "<secret NAME>"; only Go code holding it can read the value (Reveal). A string
// concatenated with a secret is a secret.
type Secret struct {
	display string
	value   string
}

var _ starlark.HasBinary = (*Secret)(nil)

// NewSecret returns the secret called name holding value and registers the
// value with th's execution so it is scrubbed from results, errors and logs.
func NewSecret(th *starlark.Thread, name, value string) *Secret {
	s := &Secret{display: "<secret " + name + ">", value: value}
	if f := frameOf(th); f != nil {
		f.run.secrets.add(s.value, s.display)
	}
	return s
}

func (s *Secret) String() string        { return s.display }
func (s *Secret) Type() string          { return "secret" }
func (s *Secret) Freeze()               {}
func (s *Secret) Truth() starlark.Bool  { return s.value != "" }
func (s *Secret) Hash() (uint32, error) { return starlark.String(s.display).Hash() }

// Reveal returns the secret's value, for effects that must send it.
func (s *Secret) Reveal() string { return s.value }

// Binary implements string concatenation on either side.
func (s *Secret) Binary(op syntax.Token, y starlark.Value, side starlark.Side) (starlark.Value, error) {
	if op != syntax.PLUS {
		return nil, nil
	}
	var display, value string
	switch y := y.(type) {
	case starlark.String:
		if side == starlark.Left {
			display, value = s.display+string(y), s.value+string(y)
		} else {
			display, value = string(y)+s.display, string(y)+s.value
		}
	case *Secret:
		if side == starlark.Left {
			display, value = s.display+y.display, s.value+y.value
		} else {
			display, value = y.display+s.display, y.value+s.value
		}
	default:
		return nil, nil
	}
	return &Secret{display: display, value: value}, nil
}

// RevealString returns v's text: a secret's value or a string's contents.
func RevealString(v starlark.Value) (string, error) {
	switch v := v.(type) {
	case *Secret:
		return v.value, nil
	case starlark.String:
		return string(v), nil
	}
	return "", fmt.Errorf("got %s, want string or secret", v.Type())
}

// secretSet holds the secret values an execution has read, to scrub them from
// anything stored or shown.
type secretSet struct {
	mu     sync.RWMutex
	values map[string]string // value -> placeholder
}

func (s *secretSet) add(value, display string) {
	if len(value) < 3 { // scrubbing one or two characters would mangle everything
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.values == nil {
		s.values = map[string]string{}
	}
	s.values[value] = display
	// The JSON-escaped form is what appears inside stored results.
	if b, _ := json.Marshal(value); string(b[1:len(b)-1]) != value {
		s.values[string(b[1:len(b)-1])] = display
	}
}

// scrub replaces every known secret value in text with its placeholder.
func (s *secretSet) scrub(text string) string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for v, d := range s.values {
		if strings.Contains(text, v) {
			text = strings.ReplaceAll(text, v, d)
		}
	}
	return text
}

// Scrub replaces the values of the secrets th's execution has read with their
// placeholders. Built-ins use it on anything they log or return.
func Scrub(th *starlark.Thread, text string) string {
	if f := frameOf(th); f != nil {
		return f.run.secrets.scrub(text)
	}
	return text
}
