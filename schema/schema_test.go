package schema_test

import (
	"encoding/json"
	"errors"
	"os"
	"slices"
	"testing"

	"github.com/starbook/starbook/schema"
)

func compileFile(t *testing.T, name string) *schema.Schema {
	t.Helper()
	doc, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := schema.Compile(name, doc)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestValidateMessages(t *testing.T) {
	s := compileFile(t, "scale.schema.json")
	for _, tc := range []struct {
		name, input string
		pointer     string
		keyword     string
		want        string // the whole message; "" for a valid input
	}{
		{name: "valid", input: `{"service": "api", "replicas": 3, "labels": {"team": "sre"}}`},
		{name: "minimum", input: `{"service": "api", "replicas": 0}`, pointer: "/replicas", keyword: "minimum",
			want: "input /replicas: minimum: got 0, want >= 1"},
		{name: "maximum", input: `{"service": "api", "replicas": 51}`, pointer: "/replicas", keyword: "maximum",
			want: "input /replicas: maximum: got 51, want <= 50"},
		{name: "type", input: `{"service": "api", "replicas": "3"}`, pointer: "/replicas", keyword: "type",
			want: "input /replicas: type: got string, want integer"},
		{name: "required", input: `{"service": "api"}`, pointer: "", keyword: "required",
			want: `input (root): required: missing property 'replicas'`},
		{name: "additional", input: `{"service": "api", "replicas": 1, "replica": 2}`, pointer: "", keyword: "additionalProperties",
			want: `input (root): additionalProperties: additional properties 'replica' not allowed`},
		{name: "nested", input: `{"service": "api", "replicas": 1, "labels": {"team": 7}}`, pointer: "/labels/team", keyword: "type",
			want: "input /labels/team: type: got number, want string"},
		{name: "escaped pointer", input: `{"service": "api", "replicas": 1, "a/b": 1}`, pointer: "/a~1b", keyword: "type",
			want: "input /a~1b: type: got number, want boolean"},
		{name: "format", input: `{"service": "api", "replicas": 1, "email": "nobody"}`, pointer: "/email", keyword: "format",
			want: `input /email: format: 'nobody' is not valid email: missing @`},
		{name: "no input", input: ``, pointer: "", keyword: "type",
			want: "input (root): type: got null, want object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := s.Validate(json.RawMessage(tc.input))
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			var se *schema.Error
			if !errors.As(err, &se) {
				t.Fatalf("Validate = %v, want a *schema.Error", err)
			}
			if se.Pointer != tc.pointer || se.Keyword != tc.keyword || se.Error() != tc.want {
				t.Errorf("Validate = (%q, %q) %q\nwant (%q, %q) %q", se.Pointer, se.Keyword, se.Error(), tc.pointer, tc.keyword, tc.want)
			}
		})
	}
}

func TestCompileErrors(t *testing.T) {
	read := func(name string) []byte {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, tc := range []struct {
		name, where string
		doc         []byte
		want        string
	}{
		{"syntax error line", "syntax.schema.json", read("syntax.schema.json"),
			"syntax.schema.json:5: invalid input schema: not JSON: invalid character '}' looking for beginning of object key string"},
		{"metaschema", "badrule.schema.json", read("badrule.schema.json"),
			"badrule.schema.json: invalid input schema: at /properties/replicas/minimum: got string, want number"},
		{"declared at a line keeps it", "scale.star:3", []byte(`{"type": 3}`),
			"scale.star:3: invalid input schema: at /type: value must be one of 'array', 'boolean', 'integer', 'null', 'number', 'object', 'string'"},
		{"not an object", "x.schema.json", []byte(`[1]`),
			"x.schema.json: invalid input schema: want a JSON object (or true/false)"},
		{"external ref", "x.schema.json", []byte(`{"$ref": "file:///etc/passwd"}`), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := schema.Compile(tc.where, tc.doc)
			var ce *schema.CompileError
			if !errors.As(err, &ce) {
				t.Fatalf("Compile = %v, want a *schema.CompileError", err)
			}
			if tc.want != "" && err.Error() != tc.want {
				t.Errorf("Compile = %q\nwant %q", err, tc.want)
			}
		})
	}
}

func TestProperties(t *testing.T) {
	for _, tc := range []struct {
		doc   string
		props []string
		open  bool
	}{
		{`{"properties": {"b": {}, "a": {}}, "additionalProperties": false}`, []string{"a", "b"}, false},
		{`{"properties": {"a": {}}}`, []string{"a"}, false},
		{`{"properties": {"a": {}}, "additionalProperties": {"type": "string"}}`, []string{"a"}, true},
		{`{"properties": {"a": {}}, "patternProperties": {"^x-": {}}}`, []string{"a"}, true},
		{`{"type": "object"}`, nil, true},
	} {
		s, err := schema.Compile("t.schema.json", []byte(tc.doc))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(s.Properties, tc.props) || s.Open != tc.open {
			t.Errorf("%s: properties %v open %v, want %v %v", tc.doc, s.Properties, s.Open, tc.props, tc.open)
		}
	}
}
