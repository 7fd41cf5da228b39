package scaffold_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/starbook/starbook/scaffold"
	"github.com/starbook/starbook/starfmt"
)

func TestParseLabel(t *testing.T) {
	tests := []struct {
		in   string
		want scaffold.Label
		err  string
	}{
		{"alertname=HighLatency", scaffold.Label{Name: "alertname", Value: "HighLatency"}, ""},
		{"team=a=b", scaffold.Label{Name: "team", Value: "a=b"}, ""},
		{"_x=1", scaffold.Label{Name: "_x", Value: "1"}, ""},
		{"severity", scaffold.Label{}, "want LABEL=VALUE"},
		{"=page", scaffold.Label{}, "is not a label name"},
		{"se-v=page", scaffold.Label{}, "is not a label name"},
		{"sev=", scaffold.Label{}, "give a value"},
	}
	for _, tt := range tests {
		got, err := scaffold.ParseLabel(tt.in)
		if got != tt.want || (err == nil) != (tt.err == "") || err != nil && !strings.Contains(err.Error(), tt.err) {
			t.Errorf("ParseLabel(%q) = %+v, %v; want %+v, %q", tt.in, got, err, tt.want, tt.err)
		}
	}
}

// TestGenerate: the files come formatted, in a stable order, and the same
// options give the same bytes.
func TestGenerate(t *testing.T) {
	o := scaffold.Options{Name: "disk-full", Alert: []scaffold.Label{{Name: "alertname", Value: "DiskFull"}}, Webhook: "disk"}
	a, err := scaffold.Generate(o)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := scaffold.Generate(o)
	names := []string{"disk-full.star", "disk-full.schema.json", "disk-full_test.star"}
	if len(a) != 3 {
		t.Fatalf("%d files", len(a))
	}
	for i, f := range a {
		if f.Name != names[i] || string(f.Data) != string(b[i].Data) {
			t.Errorf("file %d: %s (want %s), stable: %v", i, f.Name, names[i], string(f.Data) == string(b[i].Data))
		}
		if strings.HasSuffix(f.Name, ".star") {
			if ok, err := starfmt.IsFormatted(f.Name, f.Data); !ok || err != nil {
				t.Errorf("%s is not formatted (%v)", f.Name, err)
			}
		}
	}
	if !strings.Contains(string(a[0].Data), `secret_env = "DISK_FULL_HOOK_SECRET"`) {
		t.Errorf("webhook secret not named after the runbook:\n%s", a[0].Data)
	}
}

func TestWriteKeepsExistingFiles(t *testing.T) {
	dir := t.TempDir()
	files := []scaffold.File{{Name: "a.star", Data: []byte("new\n")}, {Name: "a_test.star", Data: []byte("new\n")}}
	if err := os.WriteFile(filepath.Join(dir, "a_test.star"), []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := scaffold.Write(dir, files, false)
	if err == nil || !strings.Contains(err.Error(), "a_test.star: exists already") {
		t.Fatalf("Write = %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "a.star")); !os.IsNotExist(err) {
		t.Errorf("a.star written although a_test.star exists: %v", err)
	}
	if err := scaffold.Write(dir, files, true); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "a_test.star")); string(b) != "new\n" {
		t.Errorf("force: a_test.star is %q", b)
	}
}
