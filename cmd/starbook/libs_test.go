package main

import (
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/starbook/starbook/builtins"
	"github.com/starbook/starbook/cluster"
	sbruntime "github.com/starbook/starbook/runtime"
	"github.com/starbook/starbook/service"
)

// payments is a team's module, its fee a parameter.
func payments(fee string) string {
	return `"""Payments: the team's helpers."""

def fee(amount):
    """Returns the fee on amount."""
    return amount * ` + fee + `

payments = struct(fee = fee)
`
}

// TestLibFlag drives --lib team=DIR through check, test, apply and show
// against a real service over embedded etcd: without the flag the load is
// an error at its file:line and nothing is stored; with it the team's test
// passes, apply pins @team/payments.star in the version's bundle and names
// its release, the same module again is unchanged, a changed one is a new
// version, and show names the release a run's version uses.
func TestLibFlag(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	emb, err := cluster.StartEmbedded(ctx, cluster.EmbeddedConfig{Dir: t.TempDir(), Fast: true, NoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Close()
	store := cluster.NewStore(emb.Client, "/lib/")
	defer store.Close()
	svc := service.New(store, builtins.New(builtins.Options{}))

	root := t.TempDir()
	rb, lib := filepath.Join(root, "runbooks"), filepath.Join(root, "team")
	writeFiles(t, rb, map[string]string{
		"charge.star":      "load(\"@team/payments.star\", \"payments\")\n\ndef main(event):\n    return {\"fee\": payments.fee(event[\"amount\"])}\n",
		"charge_test.star": "def test_fee():\n    r = run(\"charge.star\", {\"amount\": 10})\n    assert.eq(r.status, \"completed\")\n    assert.eq(r.result, {\"fee\": 20})\n",
	})
	writeFiles(t, lib, map[string]string{"payments.star": payments("2")})
	teamFlag := "--lib=team=" + lib

	r := cli(t, svc, "", "check", rb)
	if r.code == 0 || !strings.Contains(r.stdout+r.stderr, `charge.star:1:1: load "@team/payments.star": no library @team here`) {
		t.Errorf("check without --lib: exit %d, %s%s", r.code, r.stdout, r.stderr)
	}
	r = cli(t, svc, "", "apply", rb)
	if r.code == 0 || !strings.Contains(r.stderr, `charge.star:1:1: load "@team/payments.star"`) {
		t.Errorf("apply without --lib: exit %d, %s%s", r.code, r.stdout, r.stderr)
	}
	if _, err := svc.Runbook(ctx, "charge"); err == nil {
		t.Fatal("a refused apply stored the runbook")
	}
	if r = cli(t, svc, "", "check", teamFlag, rb); r.code != 0 {
		t.Fatalf("check --lib: exit %d, %s%s", r.code, r.stdout, r.stderr)
	}
	if r = cli(t, svc, "", "test", rb, "--lib", "team="+lib); r.code != 0 || !strings.Contains(r.stdout, "1 passed, 0 failed") {
		t.Fatalf("test --lib: exit %d, %s%s", r.code, r.stdout, r.stderr)
	}
	if r = cli(t, svc, "", "test", rb); r.code == 0 {
		t.Errorf("test without --lib passed: %s", r.stdout)
	}

	applied := regexp.MustCompile(`^applied charge (\w+) \(@team (\w{12})\)\n$`)
	r = cli(t, svc, "", "apply", teamFlag, rb)
	m := applied.FindStringSubmatch(r.stdout)
	if r.code != 0 || m == nil {
		t.Fatalf("apply --lib: exit %d, %q, want %s; %s", r.code, r.stdout, applied, r.stderr)
	}
	first, release := m[1], m[2]
	b, _, err := svc.RunbookVersion(ctx, "charge", first)
	if err != nil {
		t.Fatal(err)
	}
	if b.Files["@team/payments.star"] != payments("2") || b.Libraries["@team"] != release {
		t.Errorf("the bundle: libraries %v, files %v", b.Libraries, b.FileNames())
	}
	if r = cli(t, svc, "", "apply", teamFlag, rb); r.code != 0 || r.stdout != "unchanged charge "+first+" (@team "+release+")\n" {
		t.Errorf("apply again: exit %d, %q", r.code, r.stdout)
	}

	writeFiles(t, lib, map[string]string{"payments.star": payments("3")})
	r = cli(t, svc, "", "apply", teamFlag, rb)
	m = applied.FindStringSubmatch(r.stdout)
	if r.code != 0 || m == nil || m[1] == first || m[2] == release {
		t.Fatalf("apply of a changed team module: exit %d, %q, want a new version and release than %s, %s", r.code, r.stdout, first, release)
	}
	if b, _, err = svc.RunbookVersion(ctx, "charge", ""); err != nil || b.Files["@team/payments.star"] != payments("3") {
		t.Errorf("the current version does not hold the changed module (%v)", err)
	}

	dry := filepath.Join(rb, "charge.star")
	if r = cli(t, svc, "", "run", "--dry-run", dry, "--lib", "team="+lib, "--input", `{"amount": 10}`); r.code != 0 || !strings.Contains(r.stdout, `completed: {"fee":30}`) {
		t.Errorf("run --dry-run --lib: exit %d, %s%s", r.code, r.stdout, r.stderr)
	}
	if r = cli(t, svc, "", "run", "--dry-run", dry, "--input", `{"amount": 10}`); r.code == 0 || !strings.Contains(r.stderr, `load "@team/payments.star": no library @team here`) {
		t.Errorf("run --dry-run without --lib: exit %d, %s%s", r.code, r.stdout, r.stderr)
	}

	e, err := svc.Start(ctx, "charge", nil, sbruntime.Trigger{Type: "manual"})
	if err != nil {
		t.Fatal(err)
	}
	if r = cli(t, svc, "", "show", e.ID); r.code != 0 || !strings.Contains(r.stdout, "\nLibraries: @team "+m[2]+"\n") {
		t.Errorf("show: exit %d, want Libraries: @team %s in\n%s%s", r.code, m[2], r.stdout, r.stderr)
	}
}

// TestLibFlagRefused: a --lib that is not NAME=DIR, names @std, or names
// no directory is refused before anything is sent.
func TestLibFlagRefused(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"a.star": "def main(event):\n    return 1\n"})
	for flag, want := range map[string]string{
		"--lib=team":                     "want NAME=DIR",
		"--lib=std=" + dir:               "@std is starbook's own library",
		"--lib=team=" + dir + "/missing": "is not a directory",
		"--lib=Team=" + dir:              "a library is @ and a lower-case name",
	} {
		r := cli(t, nil, "", "apply", flag, dir)
		if r.code == 0 || !strings.Contains(r.stderr, want) || r.requests != 0 {
			t.Errorf("apply %s: exit %d, %d requests, %q; want %q", flag, r.code, r.requests, r.stderr, want)
		}
	}
}
