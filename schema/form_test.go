package schema_test

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/starbook/starbook/schema"
)

func TestFormOf(t *testing.T) {
	doc, err := os.ReadFile("testdata/form.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	f, err := schema.FormOf(doc)
	if err != nil {
		t.Fatal(err)
	}
	if f.Raw || f.Open {
		t.Fatalf("raw %v open %v, want a closed form of fields", f.Raw, f.Open)
	}
	var got []string
	var walk func(fields []*schema.Field)
	walk = func(fields []*schema.Field) {
		for _, fd := range fields {
			line := fd.Pointer + " " + fd.Kind
			if fd.Required {
				line += " required"
			}
			if fd.Items != nil {
				line += " of " + fd.Items.Kind + " " + fd.Items.Format
			}
			got = append(got, line)
			walk(fd.Fields)
		}
	}
	walk(f.Fields)
	want := []string{
		"/namespace string required", // x-order first
		"/replicas integer required", // then the required
		"/dry_run boolean",
		"/either json", // oneOf: JSON text
		"/hosts array of string hostname",
		"/labels json", // a map of any keys
		"/note string", // a union with null is its other type
		"/owner object",
		"/owner/team string required",
		"/owner/email string",
		"/ratio number",
		"/severity enum",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("fields:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	byPtr := map[string]*schema.Field{}
	for _, fd := range f.Fields {
		byPtr[fd.Pointer] = fd
	}
	if r := byPtr["/replicas"]; *r.Minimum != 1 || *r.Maximum != 50 || r.Default != float64(3) {
		t.Errorf("replicas: min %v max %v default %v", *r.Minimum, *r.Maximum, r.Default)
	}
	if n := byPtr["/namespace"]; n.Label != "Namespace" || n.Pattern != "^[a-z0-9-]+$" {
		t.Errorf("namespace: label %q pattern %q", n.Label, n.Pattern)
	}
	if h := byPtr["/hosts"]; h.Items.Pointer != "/hosts/-" || h.Items.Description != "a host name" || *h.MinItems != 1 {
		t.Errorf("hosts items: %+v", h.Items)
	}
}

func TestFormOfWithoutProperties(t *testing.T) {
	for _, doc := range []string{"", "true", `{"type": "array"}`} {
		f, err := schema.FormOf([]byte(doc))
		if err != nil {
			t.Fatalf("%q: %v", doc, err)
		}
		if !f.Raw {
			t.Errorf("%q: want a JSON editor (raw)", doc)
		}
	}
	if _, err := schema.FormOf([]byte("{")); err == nil {
		t.Error("a schema that is not JSON: no error")
	}
}

func TestFormValues(t *testing.T) {
	doc, _ := os.ReadFile("testdata/form.schema.json")
	f, err := schema.FormOf(doc)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		text    map[string]string
		want    string
		wantErr string // the pointer of the field error
	}{
		{name: "typed", text: map[string]string{"/namespace": "web", "/replicas": " 4 ", "/dry_run": "false",
			"/hosts": "a.example\n\nb.example\n", "/owner/team": "sre", "/severity": "page", "/either": "7", "/ratio": "0.5"},
			want: `{"dry_run":false,"either":7,"hosts":["a.example","b.example"],"namespace":"web","owner":{"team":"sre"},"ratio":0.5,"replicas":4,"severity":"page"}`},
		{name: "empty values are left out", text: map[string]string{"/namespace": "web", "/replicas": "", "/owner/email": " "},
			want: `{"namespace":"web"}`},
		{name: "not an integer", text: map[string]string{"/replicas": "4.5"}, wantErr: "/replicas"},
		{name: "not a boolean", text: map[string]string{"/dry_run": "maybe"}, wantErr: "/dry_run"},
		{name: "not in the enum", text: map[string]string{"/severity": "email"}, wantErr: "/severity"},
		{name: "not JSON", text: map[string]string{"/either": "{"}, wantErr: "/either"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := f.Values(tt.text)
			if tt.wantErr != "" {
				var fe *schema.FieldError
				if !errors.As(err, &fe) || fe.Pointer != tt.wantErr {
					t.Fatalf("error %v, want one at %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Fatalf("got %s\nwant %s", got, tt.want)
			}
		})
	}
	raw := &schema.Form{Raw: true}
	if got, err := raw.Values(map[string]string{"": ` {"a": 1} `}); err != nil || !json.Valid(got) {
		t.Fatalf("raw: %s %v", got, err)
	}
	if _, err := raw.Values(map[string]string{"": `{`}); err == nil {
		t.Fatal("raw: bad JSON accepted")
	}
}
