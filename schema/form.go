package schema

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Field kinds: what control a form shows for a field.
const (
	KindString  = "string"
	KindNumber  = "number"
	KindInteger = "integer"
	KindBoolean = "boolean"
	KindEnum    = "enum"   // one of Enum: a select
	KindArray   = "array"  // a list of Items
	KindObject  = "object" // nested Fields
	KindJSON    = "json"   // anything the mapping cannot make a control of: a JSON text
)

// Form is the form an input schema maps to: the one mapping the web UI's run
// form and Slack's run modal are built from. A Form with no Fields and Raw
// set asks for the input as JSON text (no schema, or one that is not an
// object of properties).
type Form struct {
	Fields []*Field `json:"fields"`
	Raw    bool     `json:"raw,omitempty"`
	// Open reports whether properties beyond Fields are allowed.
	Open bool `json:"open,omitempty"`
}

// Field is one input of a form: a property of the schema, at Pointer (the
// JSON pointer of its value in the input, as a schema error names it).
type Field struct {
	Pointer     string   `json:"pointer"`
	Name        string   `json:"name"`
	Label       string   `json:"label"` // the title, or the name
	Kind        string   `json:"kind"`
	Description string   `json:"description,omitempty"`
	Required    bool     `json:"required,omitempty"`
	Default     any      `json:"default,omitempty"`
	Enum        []any    `json:"enum,omitempty"`
	Minimum     *float64 `json:"minimum,omitempty"`
	Maximum     *float64 `json:"maximum,omitempty"`
	// ExclusiveMinimum and ExclusiveMaximum are bounds the value may not reach.
	ExclusiveMinimum *float64 `json:"exclusive_minimum,omitempty"`
	ExclusiveMaximum *float64 `json:"exclusive_maximum,omitempty"`
	MinLength        *int     `json:"min_length,omitempty"`
	MaxLength        *int     `json:"max_length,omitempty"`
	Pattern          string   `json:"pattern,omitempty"`
	Format           string   `json:"format,omitempty"`
	MinItems         *int     `json:"min_items,omitempty"`
	MaxItems         *int     `json:"max_items,omitempty"`
	// Items is the element of an array field (its Pointer ends in "/-").
	Items *Field `json:"items,omitempty"`
	// Fields are the properties of an object field.
	Fields []*Field `json:"fields,omitempty"`
}

// maxFormDepth bounds nesting (and $ref cycles): deeper values are JSON text.
const maxFormDepth = 8

// FormOf maps the input schema doc (a runbook's NAME.schema.json or
// input_schema; nil for none) to a form. Local $refs ("#/$defs/x") are
// followed; a property the mapping cannot make a control of (oneOf, a type
// union, a remote $ref) becomes a KindJSON field, so that every schema still
// gets a form.
func FormOf(doc []byte) (*Form, error) {
	if len(doc) == 0 {
		return &Form{Raw: true, Open: true}, nil
	}
	var root any
	if err := json.Unmarshal(doc, &root); err != nil {
		return nil, fmt.Errorf("input schema: %w", err)
	}
	obj, ok := root.(map[string]any)
	if !ok {
		return &Form{Raw: true, Open: true}, nil
	}
	m := mapper{root: obj}
	obj = m.resolve(obj)
	if _, ok := obj["properties"].(map[string]any); !ok {
		return &Form{Raw: true, Open: true}, nil
	}
	return &Form{Fields: m.properties("", obj, 0), Open: open(obj)}, nil
}

type mapper struct{ root map[string]any }

// resolve follows a local $ref, a bounded number of times.
func (m mapper) resolve(s map[string]any) map[string]any {
	for range maxFormDepth {
		ref, ok := s["$ref"].(string)
		if !ok || !strings.HasPrefix(ref, "#") {
			return s
		}
		var cur any = m.root
		for _, tok := range strings.Split(strings.TrimPrefix(ref, "#"), "/")[1:] {
			tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
			next, ok := cur.(map[string]any)
			if !ok {
				return s
			}
			cur = next[tok]
		}
		target, ok := cur.(map[string]any)
		if !ok {
			return s
		}
		s = target
	}
	return s
}

// properties maps obj's properties, in the schema's order where it has one
// ("x-order", else required first then by name: JSON objects have none).
func (m mapper) properties(ptr string, obj map[string]any, depth int) []*Field {
	props, _ := obj["properties"].(map[string]any)
	required := map[string]bool{}
	if list, ok := obj["required"].([]any); ok {
		for _, r := range list {
			if s, ok := r.(string); ok {
				required[s] = true
			}
		}
	}
	names := make([]string, 0, len(props))
	for name := range props {
		names = append(names, name)
	}
	order := func(name string) int {
		if s, ok := props[name].(map[string]any); ok {
			if f, ok := s["x-order"].(float64); ok {
				return int(f)
			}
		}
		return math.MaxInt
	}
	slices.SortFunc(names, func(a, b string) int {
		if oa, ob := order(a), order(b); oa != ob {
			return oa - ob
		}
		if required[a] != required[b] {
			if required[a] {
				return -1
			}
			return 1
		}
		return strings.Compare(a, b)
	})
	out := make([]*Field, 0, len(names))
	for _, name := range names {
		s, _ := props[name].(map[string]any)
		f := m.field(ptr+"/"+escapePointer(name), name, s, depth+1)
		f.Required = required[name]
		out = append(out, f)
	}
	return out
}

// field maps the schema s of the value at ptr.
func (m mapper) field(ptr, name string, s map[string]any, depth int) *Field {
	f := &Field{Pointer: ptr, Name: name, Label: name, Kind: KindJSON}
	if s == nil {
		return f
	}
	s = m.resolve(s)
	if t, ok := s["title"].(string); ok && t != "" {
		f.Label = t
	}
	f.Description, _ = s["description"].(string)
	f.Default = s["default"]
	if depth > maxFormDepth {
		return f
	}
	if enum, ok := s["enum"].([]any); ok && len(enum) > 0 {
		f.Kind, f.Enum = KindEnum, enum
		return f
	}
	if c, ok := s["const"]; ok {
		f.Kind, f.Enum = KindEnum, []any{c}
		return f
	}
	switch typeOf(s) {
	case "string":
		f.Kind = KindString
		f.MinLength, f.MaxLength = intKey(s, "minLength"), intKey(s, "maxLength")
		f.Pattern, _ = s["pattern"].(string)
		f.Format, _ = s["format"].(string)
	case "number", "integer":
		f.Kind = typeOf(s)
		f.Minimum, f.Maximum = numKey(s, "minimum"), numKey(s, "maximum")
		f.ExclusiveMinimum, f.ExclusiveMaximum = numKey(s, "exclusiveMinimum"), numKey(s, "exclusiveMaximum")
	case "boolean":
		f.Kind = KindBoolean
	case "array":
		items, _ := s["items"].(map[string]any)
		if items == nil {
			return f // items of any shape: JSON text
		}
		f.Kind = KindArray
		f.MinItems, f.MaxItems = intKey(s, "minItems"), intKey(s, "maxItems")
		f.Items = m.field(ptr+"/-", name, items, depth+1)
	case "object":
		if _, ok := s["properties"].(map[string]any); !ok {
			return f // a map of any keys: JSON text
		}
		f.Kind = KindObject
		f.Fields = m.properties(ptr, s, depth)
	}
	return f
}

// typeOf returns s's one type ("string", ...), or "" for none or a union.
// A union with "null" counts as its other type: an optional value.
func typeOf(s map[string]any) string {
	switch t := s["type"].(type) {
	case string:
		return t
	case []any:
		var found string
		for _, v := range t {
			name, _ := v.(string)
			if name == "null" {
				continue
			}
			if found != "" {
				return ""
			}
			found = name
		}
		return found
	}
	if _, ok := s["properties"]; ok {
		return "object"
	}
	return ""
}

func numKey(s map[string]any, key string) *float64 {
	if v, ok := s[key].(float64); ok {
		return &v
	}
	return nil
}

func intKey(s map[string]any, key string) *int {
	if v, ok := s[key].(float64); ok && v == math.Trunc(v) {
		n := int(v)
		return &n
	}
	return nil
}

func escapePointer(name string) string {
	return strings.ReplaceAll(strings.ReplaceAll(name, "~", "~0"), "/", "~1")
}

// FieldError is a form value that does not parse as its field's kind.
type FieldError struct {
	Pointer string
	Msg     string
}

func (e *FieldError) Error() string { return "input at " + e.Pointer + ": " + e.Msg }

// Values builds the input from a form's values as text, keyed by field
// pointer (what a Slack modal or an HTML form submits): numbers are parsed,
// booleans are "true"/"false", an array is one value per line, a JSON field
// is JSON text. An empty value leaves its property out (the schema's
// default, or its "required" error, then applies). It checks kinds only;
// the schema's Validate checks the rest, and its error names the same
// pointers.
func (f *Form) Values(text map[string]string) (json.RawMessage, error) {
	if f.Raw {
		raw := strings.TrimSpace(text[""])
		if raw == "" {
			return json.RawMessage("{}"), nil
		}
		if !json.Valid([]byte(raw)) {
			return nil, &FieldError{Pointer: "", Msg: "not valid JSON"}
		}
		return json.RawMessage(raw), nil
	}
	out, err := values(f.Fields, text)
	if err != nil {
		return nil, err
	}
	return json.Marshal(out)
}

func values(fields []*Field, text map[string]string) (map[string]any, error) {
	out := map[string]any{}
	for _, fd := range fields {
		if fd.Kind == KindObject {
			sub, err := values(fd.Fields, text)
			if err != nil {
				return nil, err
			}
			if len(sub) > 0 {
				out[fd.Name] = sub
			}
			continue
		}
		raw, ok := text[fd.Pointer]
		if !ok || strings.TrimSpace(raw) == "" {
			continue
		}
		v, err := fd.parse(raw)
		if err != nil {
			return nil, err
		}
		out[fd.Name] = v
	}
	return out, nil
}

// parse reads one value of f from text.
func (f *Field) parse(text string) (any, error) {
	bad := func(format string, args ...any) error {
		return &FieldError{Pointer: f.Pointer, Msg: fmt.Sprintf(format, args...)}
	}
	trimmed := strings.TrimSpace(text)
	switch f.Kind {
	case KindString:
		return text, nil
	case KindNumber:
		n, err := strconv.ParseFloat(trimmed, 64)
		if err != nil {
			return nil, bad("%q is not a number", trimmed)
		}
		return n, nil
	case KindInteger:
		n, err := strconv.ParseInt(trimmed, 10, 64)
		if err != nil {
			return nil, bad("%q is not an integer", trimmed)
		}
		return n, nil
	case KindBoolean:
		b, err := strconv.ParseBool(trimmed)
		if err != nil {
			return nil, bad("%q is not true or false", trimmed)
		}
		return b, nil
	case KindEnum:
		for _, e := range f.Enum {
			if s, ok := e.(string); ok && s == trimmed {
				return e, nil
			}
			if js, _ := json.Marshal(e); string(js) == trimmed {
				return e, nil
			}
		}
		return nil, bad("%q is not one of %s", trimmed, enumText(f.Enum))
	case KindArray:
		var list []any
		for line := range strings.SplitSeq(text, "\n") {
			if strings.TrimSpace(line) == "" {
				continue
			}
			v, err := f.Items.parse(line)
			if err != nil {
				return nil, err
			}
			list = append(list, v)
		}
		return list, nil
	default:
		var v any
		if err := json.Unmarshal([]byte(trimmed), &v); err != nil {
			return nil, bad("not valid JSON")
		}
		return v, nil
	}
}

// enumText lists enum's values for an error.
func enumText(enum []any) string {
	parts := make([]string, len(enum))
	for i, e := range enum {
		js, _ := json.Marshal(e)
		parts[i] = string(js)
	}
	return strings.Join(parts, ", ")
}
