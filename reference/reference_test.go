package reference_test

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.starlark.net/starlark"

	"github.com/starbook/starbook/builtins"
	"github.com/starbook/starbook/reference"
)

var update = flag.Bool("update", false, "rewrite docs/builtins.md")

// TestEveryBuiltinHasAnEntry fails when a predeclared name or a member of a
// predeclared module has no documentation.
func TestEveryBuiltinHasAnEntry(t *testing.T) {
	names := []string{"fail", "input_schema"}
	for name, v := range builtins.New(builtins.Options{}) {
		names = append(names, name)
		if m, ok := v.(starlark.HasAttrs); ok {
			for _, a := range m.AttrNames() {
				names = append(names, name+"."+a)
			}
		}
	}
	for _, name := range names {
		e, ok := reference.Lookup(name)
		if !ok {
			t.Errorf("%s has no entry in package reference", name)
			continue
		}
		if e.Summary == "" || e.Signature == "" {
			t.Errorf("%s: entry without a summary or signature: %+v", name, e)
		}
	}
}

func TestStdEntries(t *testing.T) {
	tests := []struct{ name, sig, summary string }{
		{"k8s", `load("@std/k8s.star", "k8s")`, "Kubernetes"},
		{"k8s.rollout_restart", "k8s.rollout_restart(namespace, deployment", ""},
		{"prometheus.query", "prometheus.query(", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, ok := reference.Lookup(tt.name)
			if !ok {
				t.Fatalf("no entry")
			}
			if !strings.HasPrefix(e.Signature, tt.sig) || !strings.HasPrefix(e.Summary, tt.summary) || e.Module == "" {
				t.Errorf("got %+v", e)
			}
		})
	}
	if got := reference.Members("k8s"); len(got) < 5 {
		t.Errorf("k8s has %d members documented, want its exports", len(got))
	}
}

func TestParams(t *testing.T) {
	e, _ := reference.Lookup("retry")
	got := strings.Join(e.Params(), "|")
	want := `attempts=3|initial="1s"|max="1m"|multiplier=2|jitter=0.2|non_retryable=[]`
	if got != want {
		t.Errorf("Params = %s, want %s", got, want)
	}
}

// TestBuiltinsMarkdown fails when docs/builtins.md is not what Markdown
// writes; -update rewrites it.
func TestBuiltinsMarkdown(t *testing.T) {
	file := filepath.Join("..", "docs", "builtins.md")
	want := reference.Markdown()
	if *update {
		if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (go test ./reference -update writes it)", err)
	}
	if string(got) != want {
		t.Errorf("%s differs from package reference: run go test ./reference -update", file)
	}
}
