package runtime

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
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
	s.register(th)
	return s
}

// NewSecretShown returns a secret holding value shown as display (a token
// a node fetched: "<token of ...>"), registered with th's execution to be
// scrubbed as secret(name)'s value is.
func NewSecretShown(th *starlark.Thread, display, value string) *Secret {
	s := &Secret{display: display, value: value}
	s.register(th)
	return s
}

// register adds s's value to the scrubbers of th's execution. Its
// placeholder is its display with no character a JSON string would have to
// escape: it replaces the value inside stored JSON as it is.
func (s *Secret) register(th *starlark.Thread) {
	placeholder := placeholderSafe.Replace(s.display)
	if f := frameOf(th); f != nil {
		f.run.secrets.Add(s.value, placeholder)
	} else if sc, ok := th.Local(scrubberKey).(*Scrubber); ok {
		sc.Add(s.value, placeholder)
	}
}

// placeholderSafe turns what JSON escapes in a display into what it does not.
var placeholderSafe = strings.NewReplacer(`"`, `'`, `\`, `/`, "\n", " ", "\r", " ", "\t", " ")

// DeriveSecret returns a secret computed from from (its base64 encoding,
// say): shown as how(<secret NAME>), and its value registered with th's
// execution to be scrubbed as a secret's is.
func DeriveSecret(th *starlark.Thread, how string, from *Secret, value string) *Secret {
	s := &Secret{display: how + "(" + from.display + ")", value: value}
	s.register(th)
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

// Scrubber replaces secret values with their placeholders. Each run keeps
// one for the secrets it read; a node may keep one more for every secret any
// of its runs read (builtins.Options.Scrubber), to scrub its logs and what
// its API receives. The zero value is ready; it is safe for concurrent use.
//
// A value is matched as it is, JSON-escaped once to three times (as it
// appears inside stored JSON, or a JSON body inside it), URL-escaped and base64-encoded (as an echoing service may return
// it). Values
// shorter than MinSecretLength are not scrubbed: replacing one or two
// characters everywhere would mangle every text.
type Scrubber struct {
	mu     sync.RWMutex
	values map[string]string // form -> placeholder
	forms  []string          // the keys of values, longest first
}

// MinSecretLength is the shortest secret value that is scrubbed.
const MinSecretLength = 3

// NewScrubber returns an empty scrubber.
func NewScrubber() *Scrubber { return &Scrubber{} }

// Add makes s replace value, in each of its forms, with display.
func (s *Scrubber) Add(value, display string) {
	if len(value) < MinSecretLength {
		return
	}
	forms := []string{value}
	if trimmed := strings.TrimSpace(value); trimmed != value && len(trimmed) >= MinSecretLength {
		// A key file's value ends in a newline its readers trim.
		forms = append(forms, trimmed)
	}
	for _, escapeHTML := range []bool{true, false} {
		// A JSON text quoting a JSON text quoting the value (an echoed
		// response body, stored in a result) holds it escaped twice.
		f := value
		for range maxEscapeDepth {
			f = jsonEscape(f, escapeHTML)
			forms = append(forms, f)
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		forms = append(forms, enc.EncodeToString([]byte(value)))
	}
	forms = append(forms, url.QueryEscape(value), url.PathEscape(value))
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.values == nil {
		s.values = map[string]string{}
	}
	changed := false
	for _, f := range forms {
		if _, ok := s.values[f]; !ok {
			s.values[f] = display
			s.forms = append(s.forms, f)
			changed = true
		}
	}
	if changed {
		// Longest first: a secret that contains another is replaced whole.
		slices.SortStableFunc(s.forms, func(a, b string) int { return len(b) - len(a) })
	}
}

// maxEscapeDepth is how many times over a JSON-escaped value is recognised.
const maxEscapeDepth = 3

// jsonEscape is s as it appears inside a JSON string.
func jsonEscape(s string, escapeHTML bool) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(escapeHTML)
	_ = enc.Encode(s)
	b := bytes.TrimSpace(buf.Bytes())
	return string(b[1 : len(b)-1])
}

// Empty reports whether s knows no secret.
func (s *Scrubber) Empty() bool {
	if s == nil {
		return true
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.forms) == 0
}

// Scrub returns text with every known secret replaced by its placeholder.
func (s *Scrubber) Scrub(text string) string {
	if s == nil {
		return text
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, f := range s.forms {
		if strings.Contains(text, f) {
			text = strings.ReplaceAll(text, f, s.values[f])
		}
	}
	return text
}

// scrubJSON is Scrub for a stored JSON text: data itself, not a copy, when
// no secret is known.
func (s *Scrubber) scrubJSON(data json.RawMessage) json.RawMessage {
	if s.Empty() {
		return data
	}
	return json.RawMessage(s.Scrub(string(data)))
}

// Contains reports whether text holds a known secret in any form.
func (s *Scrubber) Contains(text string) bool {
	if s == nil {
		return false
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, f := range s.forms {
		if strings.Contains(text, f) {
			return true
		}
	}
	return false
}

// scrubberKey holds the run's scrubber on threads that run a runbook's top
// level: they have no frame (no durable calls there), but a secret read at
// top level must still be scrubbed from what the run records.
const scrubberKey = "starbook.scrubber"

// Scrub replaces the values of the secrets th's execution has read with their
// placeholders. Built-ins use it on anything they log or return.
func Scrub(th *starlark.Thread, text string) string {
	if f := frameOf(th); f != nil {
		return f.run.secrets.Scrub(text)
	}
	if s, ok := th.Local(scrubberKey).(*Scrubber); ok {
		return s.Scrub(text)
	}
	return text
}
