package check_test

import (
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
)

func readSchemaData(t *testing.T, names ...string) map[string]string {
	t.Helper()
	files := map[string]string{}
	for _, n := range names {
		b, err := os.ReadFile("testdata/schema/" + n)
		if err != nil {
			t.Fatal(err)
		}
		files[n] = string(b)
	}
	return files
}

// TestInputSchema: a runbook's schema, from NAME.schema.json or a top
// level input_schema, is compiled and stored with the bundle; one that does
// not compile is an error at its file:line and stores nothing.
func TestInputSchema(t *testing.T) {
	bad := "def main(event):\n    return event\n"
	tests := []struct {
		name  string
		files map[string]string
		want  []string // error findings; none for valid
		at    string   // where a valid schema is declared
	}{
		{"file", readSchemaData(t, "scale.star", "scale.schema.json"), nil, "scale.schema.json"},
		{"assignment", readSchemaData(t, "inline.star"), nil, "inline.star:3"},
		{"syntax error line", map[string]string{"scale.star": bad, "scale.schema.json": readSchemaData(t, "syntax.schema.json")["syntax.schema.json"]},
			[]string{"scale.schema.json:5: invalid input schema: not JSON: invalid character '}' looking for beginning of object key string"}, ""},
		{"not a schema", map[string]string{"scale.star": bad, "scale.schema.json": readSchemaData(t, "badrule.schema.json")["badrule.schema.json"]},
			[]string{"scale.schema.json:1: invalid input schema: at /properties/replicas/minimum: got string, want number"}, ""},
		{"assignment not a schema", map[string]string{"a.star": "X = 1\ninput_schema = {\"type\": \"object\", \"required\": \"x\"}\n" + bad},
			[]string{"a.star:2: invalid input schema: at /required: got string, want array"}, ""},
		{"assignment not JSON", map[string]string{"a.star": "input_schema = {\"f\": len}\n" + bad},
			[]string{"a.star:1:1: input_schema: "}, ""},
		{"declared twice", map[string]string{"a.star": "input_schema = {}\n" + bad, "a.schema.json": "{}"},
			[]string{"a.star:1:1: input_schema is also declared by a.schema.json: declare a runbook's input schema once"}, ""},
		{"beside no runbook", map[string]string{"a.star": bad, "b.schema.json": "{}"},
			[]string{"b.schema.json:1: no runbook b.star beside this schema"}, ""},
		{"in a runbook that does not compile", map[string]string{"a.star": "def main(event):\n    return nope\n", "a.schema.json": "{"},
			[]string{"a.schema.json:1: invalid input schema: not JSON", "a.star:2:12: undefined: nope"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := run(tt.files, nil)
			var errs []string
			for _, f := range res.Findings {
				if f.Severity == 0 {
					errs = append(errs, f.String())
				}
			}
			if len(errs) != len(tt.want) {
				t.Fatalf("errors %q, want %q", errs, tt.want)
			}
			for i, w := range tt.want {
				if !strings.HasPrefix(errs[i], w) {
					t.Errorf("error %q, want prefix %q", errs[i], w)
				}
			}
			if tt.want != nil {
				if res.Err() == nil {
					t.Errorf("no error: apply would store a bad schema")
				}
				return
			}
			if len(res.Bundles) != 1 {
				t.Fatalf("%d bundles", len(res.Bundles))
			}
			b := res.Bundles[0]
			if b.InputSchemaAt != tt.at || !json.Valid(b.InputSchema) || len(b.InputSchema) == 0 {
				t.Errorf("stored schema %s at %q, want one at %q", b.InputSchema, b.InputSchemaAt, tt.at)
			}
		})
	}
}

// TestInputSchemaFileCountsInVersion: changing only NAME.schema.json makes
// a new version; a runbook without one keeps the version it had.
func TestInputSchemaFileCountsInVersion(t *testing.T) {
	files := readSchemaData(t, "scale.star", "scale.schema.json")
	version := func(files map[string]string) string {
		res := run(files, nil)
		if err := res.Err(); err != nil {
			t.Fatal(err)
		}
		return res.Bundles[0].Version
	}
	v1 := version(files)
	files["scale.schema.json"] = strings.Replace(files["scale.schema.json"], `"minimum": 1`, `"minimum": 2`, 1)
	v2 := version(files)
	delete(files, "scale.schema.json")
	v3 := version(files)
	if v1 == v2 || v2 == v3 || v1 == v3 {
		t.Errorf("versions %s, %s, %s: want three different", v1, v2, v3)
	}
}

// TestInputSchemaWarnsOnUnknownFields: event.x, event["x"] and
// event.get("x") of a name a closed schema does not declare are warnings,
// with the schema's names; declared names are not.
func TestInputSchemaWarnsOnUnknownFields(t *testing.T) {
	res := run(readSchemaData(t, "scale.star", "scale.schema.json"), nil)
	if err := res.Err(); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range res.Warnings() {
		got = append(got, w.String())
	}
	want := []string{`scale.star:7:61: warning: event.replica_count: the input schema (scale.schema.json) declares no property "replica_count" (it declares dry_run, replicas, service)`}
	if !slices.Equal(got, want) {
		t.Errorf("warnings\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// Shadowed, open, or through a dict method: no warning.
	for name, src := range map[string]string{
		"lambda shadows": "input_schema = {\"properties\": {\"a\": {}}, \"additionalProperties\": False}\ndef main(event):\n    f = lambda event: event.b\n    return event.keys()\n",
		"open":           "input_schema = {\"properties\": {\"a\": {}}, \"additionalProperties\": True}\ndef main(event):\n    return event.b\n",
	} {
		res := run(map[string]string{"a.star": src}, nil)
		if err := res.Err(); err != nil || len(res.Warnings()) != 0 {
			t.Errorf("%s: %v, warnings %v", name, err, res.Warnings())
		}
	}
	res = run(map[string]string{"a.star": "input_schema = {\"properties\": {\"a\": {}}, \"additionalProperties\": False}\ndef main(ev = None):\n    return ev[\"b\"], ev.get(\"c\")\n"}, nil)
	if got := len(res.Warnings()); got != 2 {
		t.Errorf("warnings %v, want ev[\"b\"] and ev.get(\"c\")", res.Warnings())
	}
}

// TestInputSchemaRefusesTestInputs: a constant input a runbook's test gives
// run() is validated against the runbook's schema; a computed one is not.
func TestInputSchemaRefusesTestInputs(t *testing.T) {
	res := run(readSchemaData(t, "scale.star", "scale.schema.json", "scale_test.star"), nil)
	var errs []string
	for _, f := range res.Findings {
		if f.Severity == 0 {
			errs = append(errs, f.String())
		}
	}
	want := []string{
		`scale_test.star:8:8: run("scale.star"): its schema (scale.schema.json) refuses this input: input /replicas: minimum: got 0, want >= 1`,
		`scale_test.star:11:8: run("scale.star"): its schema (scale.schema.json) refuses this input: input /dry_run: type: got string, want boolean`,
	}
	if !slices.Equal(errs, want) {
		t.Errorf("errors\n%s\nwant\n%s", strings.Join(errs, "\n"), strings.Join(want, "\n"))
	}
}
