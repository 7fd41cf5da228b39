package schema

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

var printer = message.NewPrinter(language.English)

// FileSuffix ends the name of a runbook's schema file: NAME.schema.json
// beside NAME.star.
const FileSuffix = ".schema.json"

// Global is the top level name a runbook assigns its schema to.
const Global = "input_schema"

// Schema is a compiled input schema.
type Schema struct {
	s *jsonschema.Schema
	// Properties are the top level property names the schema declares;
	// Open reports whether other top level names are allowed too.
	Properties []string
	Open       bool
}

// CompileError is a schema that does not compile. Where is "file:line".
type CompileError struct {
	Where string
	Msg   string
}

func (e *CompileError) Error() string { return e.Where + ": invalid input schema: " + e.Msg }

// Compile compiles doc, the schema declared at where ("file" or
// "file:line"; a JSON syntax error in a file gets its own line). It refuses
// invalid JSON, a document that is not a valid JSON Schema, and a $ref out
// of the document.
func Compile(where string, doc []byte) (*Schema, error) {
	var probe any
	if err := json.Unmarshal(doc, &probe); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) && !strings.Contains(where, ":") {
			where = fmt.Sprintf("%s:%d", where, 1+bytes.Count(doc[:min(int(se.Offset), len(doc))], []byte("\n")))
		}
		return nil, &CompileError{Where: where, Msg: "not JSON: " + err.Error()}
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return nil, &CompileError{Where: where, Msg: "not JSON: " + err.Error()}
	}
	if _, ok := v.(map[string]any); !ok {
		if _, ok := v.(bool); !ok {
			return nil, &CompileError{Where: where, Msg: "want a JSON object (or true/false)"}
		}
	}
	const url = "starbook:///input.schema.json"
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	c.UseLoader(jsonschema.SchemeURLLoader{}) // no file, no URL: a schema is self-contained
	if err := c.AddResource(url, v); err != nil {
		return nil, &CompileError{Where: where, Msg: err.Error()}
	}
	s, err := c.Compile(url)
	if err != nil {
		return nil, &CompileError{Where: where, Msg: compileMessage(err)}
	}
	out := &Schema{s: s, Open: true}
	if obj, ok := v.(map[string]any); ok {
		if props, ok := obj["properties"].(map[string]any); ok {
			for name := range props {
				out.Properties = append(out.Properties, name)
			}
			slices.Sort(out.Properties)
			out.Open = open(obj)
		}
	}
	return out, nil
}

// open reports whether a schema with properties allows other top level
// names on purpose: additionalProperties given and not false,
// patternProperties, or a composition that may add some. An absent
// additionalProperties counts as closed here: reading a name the schema does
// not declare is more likely a typo than a use of the default.
func open(obj map[string]any) bool {
	for _, k := range []string{"additionalProperties", "unevaluatedProperties"} {
		if b, ok := obj[k].(bool); ok && !b {
			return false
		}
	}
	_, patterns := obj["patternProperties"]
	_, extra := obj["additionalProperties"]
	return patterns || extra || obj["$ref"] != nil || obj["allOf"] != nil || obj["anyOf"] != nil || obj["oneOf"] != nil
}

// compileMessage says why a document is not a schema: a metaschema failure
// names the pointer in the schema and the rule.
func compileMessage(err error) string {
	var sve *jsonschema.SchemaValidationError
	if errors.As(err, &sve) {
		var ve *jsonschema.ValidationError
		if errors.As(sve.Err, &ve) {
			e := first(ve)
			return fmt.Sprintf("at %s: %s", pointer(e.InstanceLocation), describe(e))
		}
	}
	var lue *jsonschema.LoadURLError
	var use *jsonschema.UnsupportedURLSchemeError
	if errors.As(err, &lue) || errors.As(err, &use) {
		return "a $ref must point inside the schema (#/$defs/...): " + err.Error()
	}
	return err.Error()
}

// Error is an input a schema refused: the JSON pointer of the refused value
// ("" for the whole input), the keyword that refused it, and why.
type Error struct {
	Pointer string
	Keyword string
	Msg     string
}

func (e *Error) Error() string {
	where := e.Pointer
	if where == "" {
		where = "(root)"
	}
	if e.Keyword == "" || strings.HasPrefix(e.Msg, e.Keyword+":") {
		return fmt.Sprintf("input %s: %s", where, e.Msg)
	}
	return fmt.Sprintf("input %s: %s: %s", where, e.Keyword, e.Msg)
}

// Validate checks input (JSON; empty is no input, validated as null)
// against s. It returns nil, an *Error naming the first refusal, or an
// error for input that is not JSON.
func (s *Schema) Validate(input json.RawMessage) error {
	if len(bytes.TrimSpace(input)) == 0 {
		input = json.RawMessage("null")
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(input))
	if err != nil {
		return fmt.Errorf("input is not valid JSON: %w", err)
	}
	err = s.s.Validate(v)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return fmt.Errorf("validate input: %w", err)
	}
	leaf := first(ve)
	return &Error{Pointer: pointer(leaf.InstanceLocation), Keyword: keyword(leaf), Msg: describe(leaf)}
}

// first returns the first innermost cause of e: the rule that refused.
func first(e *jsonschema.ValidationError) *jsonschema.ValidationError {
	for len(e.Causes) > 0 {
		e = e.Causes[0]
	}
	return e
}

func keyword(e *jsonschema.ValidationError) string {
	path := e.ErrorKind.KeywordPath()
	if len(path) == 0 {
		if _, ok := e.ErrorKind.(*kind.FalseSchema); ok {
			return "false"
		}
		return ""
	}
	return path[len(path)-1]
}

// describe is the library's message, with bounds written as comparisons.
func describe(e *jsonschema.ValidationError) string {
	bound := func(name string, got, want *big.Rat, op string) string {
		return fmt.Sprintf("%s: got %s, want %s %s", name, got.RatString(), op, want.RatString())
	}
	switch k := e.ErrorKind.(type) {
	case *kind.Minimum:
		return bound("minimum", k.Got, k.Want, ">=")
	case *kind.Maximum:
		return bound("maximum", k.Got, k.Want, "<=")
	case *kind.ExclusiveMinimum:
		return bound("exclusiveMinimum", k.Got, k.Want, ">")
	case *kind.ExclusiveMaximum:
		return bound("exclusiveMaximum", k.Got, k.Want, "<")
	case *kind.FalseSchema:
		return "not allowed here (the schema is false)"
	}
	return e.ErrorKind.LocalizedString(printer)
}

// pointer is the JSON pointer (RFC 6901) of a location.
func pointer(loc []string) string {
	var b strings.Builder
	for _, tok := range loc {
		b.WriteByte('/')
		b.WriteString(strings.NewReplacer("~", "~0", "/", "~1").Replace(tok))
	}
	return b.String()
}
