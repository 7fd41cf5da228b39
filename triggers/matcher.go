package triggers

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MatchType is a label matcher's operator.
type MatchType string

// Matcher operators, as in Alertmanager.
const (
	MatchEqual     MatchType = "="
	MatchNotEqual  MatchType = "!="
	MatchRegexp    MatchType = "=~"
	MatchNotRegexp MatchType = "!~"
)

// Matcher matches one label of an alert, like an Alertmanager matcher: a
// missing label has the empty value, and regular expressions are anchored at
// both ends.
type Matcher struct {
	Name  string
	Type  MatchType
	Value string
	re    *regexp.Regexp
}

// NewMatcher returns a matcher, compiling an anchored regexp for =~ and !~.
func NewMatcher(name string, t MatchType, value string) (*Matcher, error) {
	if !validLabelName(name) {
		return nil, fmt.Errorf("invalid label name %q: want letters, digits and '_', not starting with a digit", name)
	}
	m := &Matcher{Name: name, Type: t, Value: value}
	switch t {
	case MatchEqual, MatchNotEqual:
	case MatchRegexp, MatchNotRegexp:
		re, err := regexp.Compile("^(?:" + value + ")$")
		if err != nil {
			return nil, fmt.Errorf("matcher %s: invalid regular expression: %w", m, err)
		}
		m.re = re
	default:
		return nil, fmt.Errorf("unknown match type %q", t)
	}
	return m, nil
}

// matcherRE splits a matcher as Alertmanager's classic parser does.
var matcherRE = regexp.MustCompile(`^\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(=~|=|!=|!~)\s*((?s).*?)\s*$`)

// ParseMatcher parses one matcher in Alertmanager's syntax: name, operator
// (=, !=, =~, !~) and a value, optionally double-quoted with \" \\ and \n
// escapes: `pod=~"api-.*"`, `severity!=info`.
func ParseMatcher(s string) (*Matcher, error) {
	ms := matcherRE.FindStringSubmatch(s)
	if ms == nil {
		return nil, fmt.Errorf("bad matcher %q: want NAME OP VALUE with OP one of =, !=, =~, !~ (for example pod=~\"api-.*\")", s)
	}
	raw := ms[3]
	quoted := strings.HasPrefix(raw, `"`)
	if quoted {
		raw = raw[1:]
	}
	if !utf8.ValidString(raw) {
		return nil, fmt.Errorf("bad matcher %q: value is not valid UTF-8", s)
	}
	var value strings.Builder
	escaped := false
	for i, r := range raw {
		if escaped {
			escaped = false
			switch r {
			case 'n':
				value.WriteByte('\n')
			case '"', '\\':
				value.WriteRune(r)
			default: // kept as written, so regexp escapes like \d survive
				value.WriteByte('\\')
				value.WriteRune(r)
			}
			continue
		}
		switch r {
		case '\\':
			if i < len(raw)-1 {
				escaped = true
				continue
			}
			value.WriteByte('\\')
		case '"':
			if !quoted || i < len(raw)-1 {
				return nil, fmt.Errorf("bad matcher %q: unescaped double quote in the value", s)
			}
			quoted = false
		default:
			value.WriteRune(r)
		}
	}
	if quoted {
		return nil, fmt.Errorf("bad matcher %q: missing closing double quote", s)
	}
	m, err := NewMatcher(ms[1], MatchType(ms[2]), value.String())
	if err != nil {
		return nil, fmt.Errorf("bad matcher %q: %w", s, err)
	}
	return m, nil
}

// String is the matcher in the syntax ParseMatcher reads.
func (m *Matcher) String() string {
	return m.Name + string(m.Type) + strconv.Quote(m.Value)
}

// Matches reports whether the label value v (empty if absent) matches.
func (m *Matcher) Matches(v string) bool {
	switch m.Type {
	case MatchEqual:
		return v == m.Value
	case MatchNotEqual:
		return v != m.Value
	case MatchRegexp:
		return m.re.MatchString(v)
	case MatchNotRegexp:
		return !m.re.MatchString(v)
	}
	return false
}

// MarshalJSON encodes the matcher as its string form.
func (m *Matcher) MarshalJSON() ([]byte, error) { return json.Marshal(m.String()) }

// UnmarshalJSON parses and compiles the matcher.
func (m *Matcher) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	p, err := parseCanonical(s)
	if err != nil {
		return err
	}
	*m = *p
	return nil
}

// parseCanonical reads String's output, whose value is a Go-quoted string.
func parseCanonical(s string) (*Matcher, error) {
	ms := matcherRE.FindStringSubmatch(s)
	if ms == nil {
		return nil, fmt.Errorf("bad stored matcher %q", s)
	}
	v, err := strconv.Unquote(ms[3])
	if err != nil {
		return ParseMatcher(s)
	}
	return NewMatcher(ms[1], MatchType(ms[2]), v)
}

// Matchers are all true for an alert to match.
type Matchers []*Matcher

// Matches reports whether every matcher matches labels.
func (ms Matchers) Matches(labels map[string]string) bool {
	for _, m := range ms {
		if !m.Matches(labels[m.Name]) {
			return false
		}
	}
	return true
}

func validLabelName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_' || r == ':' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}
