package service

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/starbook/starbook/builtins"
	"github.com/starbook/starbook/cluster"
	sbruntime "github.com/starbook/starbook/runtime"
	"github.com/starbook/starbook/stdlib"
)

// annotating is a runbook that loads @std/grafana.star.
const annotating = `load("@std/grafana.star", "grafana")

def main(event):
    return grafana.annotate(event.url, "restarted")
`

// libraryService is a Service on an embedded etcd, with the embedded @std.
func libraryService(t *testing.T, ctx context.Context) *Service {
	t.Helper()
	emb, err := cluster.StartEmbedded(ctx, cluster.EmbeddedConfig{Dir: t.TempDir(), Fast: true, NoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emb.Close() })
	store := cluster.NewStore(emb.Client, "/libs/")
	t.Cleanup(func() { store.Close() })
	s := New(store, builtins.New(builtins.Options{}))
	if s.Libraries, err = stdlib.Default(func(string) string { return "" }); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestApplyPinsLibraryModules: apply stores the @std modules a runbook
// loads in its version's bundle and names @std's release there, in apply's
// answer and in the runbook's versions; a team's modules sent with the
// runbook are pinned the same way, and a change to one is a new version.
func TestApplyPinsLibraryModules(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := libraryService(t, ctx)
	grafana, err := s.Libraries.Module("@std/grafana.star")
	if err != nil {
		t.Fatal(err)
	}
	release := s.Libraries.Release(stdlib.Std)

	applied, err := s.Apply(ctx, map[string]string{"annotating.star": annotating})
	if err != nil {
		t.Fatal(err)
	}
	if len(applied) != 1 || applied[0].Libraries[stdlib.Std] != release ||
		strings.Join(applied[0].Files, ",") != "@std/grafana.star,annotating.star" {
		t.Fatalf("apply answered %+v, want the files with @std/grafana.star and @std %s", applied, release)
	}
	b, _, err := s.RunbookVersion(ctx, "annotating", "")
	if err != nil {
		t.Fatal(err)
	}
	if b.Files["@std/grafana.star"] != grafana || b.Libraries[stdlib.Std] != release {
		t.Errorf("the stored bundle: libraries %v, holds grafana.star: %v", b.Libraries, b.Files["@std/grafana.star"] == grafana)
	}
	info, err := s.Runbook(ctx, "annotating")
	if err != nil {
		t.Fatal(err)
	}
	if len(info.Versions) != 1 || info.Versions[0].Libraries[stdlib.Std] != release {
		t.Errorf("the runbook's versions: %+v, want @std %s", info.Versions, release)
	}
	list, err := s.Runbooks(ctx)
	if err != nil || len(list) != 1 || list[0].Libraries[stdlib.Std] != release {
		t.Errorf("the runbooks: %+v, %v; want @std %s", list, err, release)
	}

	// A team's library, sent with the runbook (apply --lib team=DIR).
	team := func(fee string) map[string]string {
		return map[string]string{
			"pay.star": "load(\"@team/payments.star\", \"payments\")\n\ndef main(event):\n    return payments.fee(event.amount)\n",
			"@team/payments.star": "\"\"\"Payments.\"\"\"\n\ndef fee(amount):\n    \"\"\"The fee.\"\"\"\n    return amount * " + fee +
				"\n\npayments = struct(fee = fee)\n",
			"@team/unused.star": "x = 1\n",
		}
	}
	first, err := s.Apply(ctx, team("2"))
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != 1 || strings.Join(first[0].Files, ",") != "@team/payments.star,pay.star" || first[0].Libraries["@team"] == "" {
		t.Fatalf("apply of a team's library: %+v, want pay.star with @team/payments.star (not unused.star) and @team's release", first)
	}
	again, err := s.Apply(ctx, team("2"))
	if err != nil || !again[0].Unchanged {
		t.Errorf("the same team module again: %+v, %v; want unchanged", again, err)
	}
	changed, err := s.Apply(ctx, team("3"))
	if err != nil {
		t.Fatal(err)
	}
	if changed[0].Unchanged || changed[0].Version == first[0].Version || changed[0].Libraries["@team"] == first[0].Libraries["@team"] {
		t.Errorf("a changed team module: %+v, want a new version and release than %+v", changed[0], first[0])
	}
	old, _, err := s.RunbookVersion(ctx, "pay", first[0].Version)
	if err != nil || !strings.Contains(old.Files["@team/payments.star"], "amount * 2") {
		t.Errorf("the first version no longer holds its team module: %v", err)
	}
}

// TestApplyRefusesBadLibraryUse: a request uploading an @std module, a
// module the node does not have, a name the module does not define, a
// function with a wrong argument: each is refused with file:line, and
// nothing is stored.
func TestApplyRefusesBadLibraryUse(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := libraryService(t, ctx)
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"upload of @std", map[string]string{"annotating.star": annotating, "@std/grafana.star": "grafana = struct()\n"},
			"@std/grafana.star: @std modules are the node's own and cannot be uploaded"},
		{"typo in a module name", map[string]string{"annotating.star": strings.Replace(annotating, "grafana.star", "grafna.star", 1)},
			`annotating.star:1:1: load "@std/grafna.star": library @std has no module grafna.star (it has `},
		{"library not on the node", map[string]string{"annotating.star": strings.Replace(annotating, "@std/", "@ops/", 1)},
			`annotating.star:1:1: load "@ops/grafana.star": no library @ops here`},
		{"missing function", map[string]string{"annotating.star": strings.Replace(annotating, `"grafana")`, `"grafana", "nope")`, 1)},
			`annotating.star:1:39: load "@std/grafana.star": the module has no nope (it has annotate, grafana)`},
		{"missing struct function", map[string]string{"annotating.star": strings.Replace(annotating, "annotate(", "annotat(", 1)},
			`annotating.star:4:20: grafana.annotat: grafana has no function annotat (it has annotate, steps)`},
		{"wrong argument type", map[string]string{"annotating.star": strings.Replace(annotating, `"restarted")`, `"restarted", tags = "api")`, 1)},
			`annotating.star:4:60: grafana.annotate: argument tags is a string, want a list (its default is [])`},
		{"unknown keyword", map[string]string{"annotating.star": strings.Replace(annotating, `"restarted")`, `"restarted", colour = "red")`, 1)},
			`annotating.star:4:53: grafana.annotate: unexpected keyword argument colour`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Apply(ctx, tc.files)
			var input *sbruntime.InputError
			if !errors.As(err, &input) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("apply: %v, want an input error with %q", err, tc.want)
			}
			if _, err := s.Runbook(ctx, "annotating"); !errors.Is(err, sbruntime.ErrNotFound) {
				t.Errorf("after a refused apply the runbook is there (%v)", err)
			}
		})
	}
}

// TestPolicyGovernsLibraryEffects: the effects of a module a runbook loads
// are in what on_apply sees, at their file:line in the module, so that a
// policy can refuse a runbook for what its library does.
func TestPolicyGovernsLibraryEffects(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := libraryService(t, ctx)
	if _, err := s.ApplyPolicies(ctx, map[string]string{"no_posts.star": `
def on_apply(r):
    return [deny("no POST from " + e.file, at = e) for e in r.effects if e.kind == "http" and e.method == "POST"]
`}); err != nil {
		t.Fatal(err)
	}
	_, err := s.Apply(ctx, map[string]string{"annotating.star": annotating})
	if err == nil || !regexp.MustCompile(`policy: no_posts.star:3: @std/grafana.star:\d+: no POST from @std/grafana.star`).MatchString(err.Error()) {
		t.Fatalf("apply: %v, want the policy's denial at grafana.star's http.post", err)
	}
	if _, err := s.Runbook(ctx, "annotating"); !errors.Is(err, sbruntime.ErrNotFound) {
		t.Errorf("after a denied apply the runbook is there (%v)", err)
	}
}
