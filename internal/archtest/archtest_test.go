package archtest_test

import (
	"slices"
	"testing"

	"github.com/starbook/starbook/internal/archtest"
)

// graph is a module "sb" made of pkgs.
func graph(pkgs ...*archtest.Package) *archtest.Graph {
	g := &archtest.Graph{Module: "sb", Packages: map[string]*archtest.Package{}}
	for _, p := range pkgs {
		g.Packages[p.Path] = p
	}
	return g
}

func pkg(path string, imports ...string) *archtest.Package {
	return &archtest.Package{Path: path, Imports: imports}
}

func withTests(p *archtest.Package, test, xtest []string) *archtest.Package {
	p.TestImports, p.XTestImports = test, xtest
	return p
}

func strs(vs []archtest.Violation) []string {
	var out []string
	for _, v := range vs {
		out = append(out, v.String())
	}
	return out
}

func TestCheck(t *testing.T) {
	base := []*archtest.Package{
		pkg("fmt"),
		pkg("sb/runtime", "fmt"),
		pkg("sb/triggers", "sb/runtime"),
		pkg("sb/builtins", "sb/runtime", "sb/triggers"),
		pkg("sb/api", "sb/runtime", "sb/triggers"),
	}
	tests := []struct {
		name        string
		pkgs        []*archtest.Package
		rule        archtest.Rule
		allowed     []archtest.Allowed
		want        []string
		wantAllowed []string
		wantStale   []archtest.Allowed
		wantSkipped bool
	}{
		{
			name: "clean",
			rule: archtest.Rule{Pkg: "runtime/...", Tests: true, Forbid: []string{"builtins/...", "api"}, Why: "why"},
		},
		{
			name: "direct import",
			pkgs: []*archtest.Package{pkg("sb/cluster", "sb/api")},
			rule: archtest.Rule{Pkg: "cluster", Forbid: []string{"api/..."}, Why: "why"},
			want: []string{"forbidden import: cluster -> api (via cluster -> api) : why"},
		},
		{
			name: "transitive, by the shortest chain",
			pkgs: []*archtest.Package{pkg("sb/cluster", "sb/a", "sb/check"), pkg("sb/a", "sb/b"), pkg("sb/b", "sb/builtins"), pkg("sb/check", "sb/builtins")},
			rule: archtest.Rule{Pkg: "cluster", Forbid: []string{"builtins"}, Why: "why"},
			want: []string{"forbidden import: cluster -> builtins (via cluster -> check -> builtins) : why"},
		},
		{
			name: "stops at the first forbidden package on a chain",
			pkgs: []*archtest.Package{pkg("sb/runtime/sub", "sb/builtins")},
			rule: archtest.Rule{Pkg: "runtime/...", Forbid: []string{"builtins", "triggers"}, Why: "why"},
			want: []string{"forbidden import: runtime/sub -> builtins (via runtime/sub -> builtins) : why"},
		},
		{
			name: "every forbidden package reached, each once",
			pkgs: []*archtest.Package{pkg("sb/cluster", "sb/api", "sb/ui"), pkg("sb/ui", "sb/api")},
			rule: archtest.Rule{Pkg: "cluster", Forbid: []string{"api", "ui"}, Why: "why"},
			want: []string{
				"forbidden import: cluster -> api (via cluster -> api) : why",
				"forbidden import: cluster -> ui (via cluster -> ui) : why",
			},
		},
		{
			name: "an in-package test import counts with Tests",
			pkgs: []*archtest.Package{withTests(pkg("sb/runtime", "fmt"), []string{"sb/builtins"}, nil)},
			rule: archtest.Rule{Pkg: "runtime", Tests: true, Forbid: []string{"builtins"}, Why: "why"},
			want: []string{"forbidden import: runtime -> builtins (via runtime (test) -> builtins) : why"},
		},
		{
			name: "an external test import counts with Tests",
			pkgs: []*archtest.Package{withTests(pkg("sb/runtime", "fmt"), nil, []string{"sb/runtime", "sb/api"})},
			rule: archtest.Rule{Pkg: "runtime", Tests: true, Forbid: []string{"builtins", "triggers"}, Why: "why"},
			want: []string{"forbidden import: runtime -> triggers (via runtime_test -> api -> triggers) : why"},
		},
		{
			name: "test imports do not count without Tests",
			pkgs: []*archtest.Package{withTests(pkg("sb/cluster", "sb/runtime"), []string{"sb/builtins"}, []string{"sb/builtins"})},
			rule: archtest.Rule{Pkg: "cluster", Forbid: []string{"builtins"}, Why: "why"},
		},
		{
			name: "a test importing the package under test is fine",
			pkgs: []*archtest.Package{withTests(pkg("sb/cmd/sb", "sb/api"), nil, []string{"sb/cmd/sb"})},
			rule: archtest.Rule{Pkg: "...", Tests: true, Forbid: []string{"cmd/..."}, Why: "why"},
		},
		{
			name: "only what Except allows",
			pkgs: []*archtest.Package{pkg("sb", "fmt", "sb/runtime", "sb/api")},
			rule: archtest.Rule{Pkg: ".", Forbid: []string{"..."}, Except: []string{"runtime/..."}, Why: "why"},
			want: []string{"forbidden import: sb -> api (via sb -> api) : why"},
		},
		{
			name: "a package may import its own sub-packages, not another command's",
			pkgs: []*archtest.Package{
				pkg("sb/cmd/a", "sb/cmd/a/flags"), pkg("sb/cmd/a/flags"),
				pkg("sb/cmd/b", "sb/cmd/a/flags"),
				pkg("sb/bench", "sb/cmd/a/flags"),
				pkg("sb", "sb/cmd/a/flags"), // everything is under the root: no exemption
			},
			rule: archtest.Rule{Pkg: "...", Tests: true, Forbid: []string{"cmd/..."}, Why: "why"},
			want: []string{
				"forbidden import: sb -> cmd/a/flags (via sb -> cmd/a/flags) : why",
				"forbidden import: bench -> cmd/a/flags (via bench -> cmd/a/flags) : why",
				"forbidden import: cmd/b -> cmd/a/flags (via cmd/b -> cmd/a/flags) : why",
			},
		},
		{
			name: "a package outside the module",
			pkgs: []*archtest.Package{pkg("sb/runtime/store", "example.com/kv"), pkg("example.com/kv", "go.etcd.io/etcd/client/v3"), pkg("go.etcd.io/etcd/client/v3")},
			rule: archtest.Rule{Pkg: "runtime/...", Forbid: []string{"go.etcd.io/..."}, Why: "why"},
			want: []string{"forbidden import: runtime/store -> go.etcd.io/etcd/client/v3 (via runtime/store -> example.com/kv -> go.etcd.io/etcd/client/v3) : why"},
		},
		{
			name:        "a rule about no package is skipped",
			rule:        archtest.Rule{Pkg: "node/...", Forbid: []string{"api"}, Why: "why"},
			wantSkipped: true,
		},
		{
			name:        "an allowed edge is walked through: it hides no other",
			pkgs:        []*archtest.Package{pkg("sb/cluster", "sb/api"), pkg("sb/api", "sb/ui"), pkg("sb/ui")},
			rule:        archtest.Rule{Pkg: "cluster", Forbid: []string{"api", "ui"}, Why: "why"},
			allowed:     []archtest.Allowed{{From: "cluster", To: "api", Why: "issue 17"}},
			want:        []string{"forbidden import: cluster -> ui (via cluster -> api -> ui) : why"},
			wantAllowed: []string{"forbidden import: cluster -> api (via cluster -> api) : why"},
		},
		{
			name:      "an entry that allows nothing is stale",
			pkgs:      []*archtest.Package{pkg("sb/cluster", "sb/runtime")},
			rule:      archtest.Rule{Pkg: "cluster", Forbid: []string{"api"}, Why: "why"},
			allowed:   []archtest.Allowed{{From: "cluster", To: "api", Why: "issue 17"}},
			wantStale: []archtest.Allowed{{From: "cluster", To: "api", Why: "issue 17"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := graph(append(slices.Clone(base), tt.pkgs...)...)
			r := archtest.Check(g, []archtest.Rule{tt.rule}, tt.allowed)
			if got := strs(r.Violations); !slices.Equal(got, tt.want) {
				t.Errorf("violations:\n%q\nwant:\n%q", got, tt.want)
			}
			if got := strs(r.Allowed); !slices.Equal(got, tt.wantAllowed) {
				t.Errorf("allowed:\n%q\nwant:\n%q", got, tt.wantAllowed)
			}
			for _, v := range r.Allowed {
				if v.Allowed == nil || v.Allowed.Why != "issue 17" {
					t.Errorf("%v: allowed by %+v", v, v.Allowed)
				}
			}
			if !slices.Equal(r.Stale, tt.wantStale) {
				t.Errorf("stale: %+v, want %+v", r.Stale, tt.wantStale)
			}
			if skipped := len(r.Skipped) == 1; skipped != tt.wantSkipped {
				t.Errorf("skipped: %+v, want skipped %v", r.Skipped, tt.wantSkipped)
			}
		})
	}
}
