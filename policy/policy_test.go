package policy_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/starbook/starbook/policy"
	sbruntime "github.com/starbook/starbook/runtime"
)

func TestLoadErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  string // the error starts with it
	}{
		{"syntax", map[string]string{"a.star": "def on_apply(r):\n    return deny(\n"}, "a.star:3"},
		{"unknown name", map[string]string{"a.star": "x = 1\ndef on_apply(r):\n    return http.get(r)\n"}, "a.star:3"},
		{"raises at load", map[string]string{"a.star": "x = 1\nfail(\"nope\")\n"}, "a.star:2"},
		{"wrong arity", map[string]string{"a.star": "\n\ndef on_effect(e):\n    return None\n"}, "a.star:3: on_effect takes 1 parameters, want 2"},
		{"not a function", map[string]string{"a.star": "on_apply = 3\n"}, "a.star: on_apply is a int"},
		{"bad load", map[string]string{"a.star": "load(\"b.star\", \"x\")\n", "b.star": "x = 1 // 0\n"}, "b.star:1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := policy.Load(tc.files)
			var pe *policy.Error
			if !errors.As(err, &pe) || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("Load: %v, want an *Error starting %q", err, tc.want)
			}
		})
	}
}

func TestOnApplyVerdicts(t *testing.T) {
	rb := &policy.Runbook{Name: "crash", File: "crash.star", Effects: []policy.Reach{
		{Kind: "slack", Channel: "#general", File: "crash.star", Line: 9}}}
	for _, tc := range []struct {
		name, src string
		want      []string // denials as strings
		err       string   // an error starting with it
	}{
		{"allow", "def on_apply(r):\n    return None\n", nil, ""},
		{"allow true", "def on_apply(r):\n    return True\n", nil, ""},
		{"deny", "def on_apply(r):\n    if r.name == 'crash':\n        return deny('no')\n", []string{"p.star:3: crash.star:1: no"}, ""},
		{"deny at", "def on_apply(r):\n    return [deny('chan ' + e.channel, at = e) for e in r.effects]\n",
			[]string{"p.star:2: crash.star:9: chan #general"}, ""},
		{"raises", "def on_apply(r):\n    x = {}\n    return x['missing']\n", nil, "p.star:3: on_apply failed"},
		{"bad return", "def on_apply(r):\n    return 'no'\n", nil, "p.star:1: on_apply returned string"},
		{"loops", "def on_apply(r):\n    n = 0\n    for i in range(100000000):\n        n += i\n", nil, "p.star:3: on_apply failed: Starlark computation cancelled: too many steps"},
		{"frozen", "def on_apply(r):\n    r.effects.append(1)\n", nil, "p.star:2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := policy.Load(map[string]string{"p.star": tc.src})
			if err != nil {
				t.Fatal(err)
			}
			ds, err := s.OnApply(context.Background(), rb)
			if tc.err != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tc.err) {
					t.Fatalf("OnApply: %v, want an error starting %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, d := range ds {
				got = append(got, d.String())
			}
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Errorf("denials %q, want %q", got, tc.want)
			}
		})
	}
}

func TestOnEffectSeesHistory(t *testing.T) {
	s, err := policy.Load(map[string]string{"p.star": `
def on_effect(effect, history):
    if effect.method == "DELETE" and not [h for h in history if h.kind == "approval" and h.approved]:
        return deny("needs approval for " + effect.host)
`})
	if err != nil {
		t.Fatal(err)
	}
	eff := &policy.Effect{Kind: "http", Method: "DELETE", Host: "db.prod"}
	d, err := s.OnEffect(context.Background(), eff, nil)
	if err != nil || d == nil || d.String() != "p.star:4: needs approval for db.prod" {
		t.Fatalf("OnEffect = %v, %v; want a denial at p.star:4", d, err)
	}
	approved := []*sbruntime.Event{{Position: "1", Kind: sbruntime.KindApproval, Result: []byte(`{"approved":true,"by":["ann"]}`)}}
	if d, err := s.OnEffect(context.Background(), eff, approved); err != nil || d != nil {
		t.Fatalf("after an approval: %v, %v; want allowed", d, err)
	}
}

func TestTestReportsFailures(t *testing.T) {
	results, err := policy.Test(context.Background(), map[string]string{
		"p.star":      "def on_apply(r):\n    return None\n",
		"p_test.star": "load('p.star', 'on_apply')\ndef test_ok():\n    assert.allowed(on_apply(runbook()))\n\ndef test_bad():\n    assert.denied(on_apply(runbook()))\n",
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 2 || results[0].Name != "test_bad" || results[0].Err == nil || results[1].Err != nil {
		t.Fatalf("results %v, want test_bad failing and test_ok passing", results)
	}
	if got := results[0].Err.Error(); !strings.HasPrefix(got, "p_test.star:6: ") {
		t.Errorf("failure %q, want it at p_test.star:6", got)
	}
}

func TestOwnerOf(t *testing.T) {
	for src, want := range map[string]string{
		"# owner: team-sre\ndef main(e): pass\n": "team-sre",
		"x = 1\n  #owner:db  \n# owner: other\n": "db",
		"def main(e): pass\n":                    "",
	} {
		if got := policy.OwnerOf(src); got != want {
			t.Errorf("OwnerOf(%q) = %q, want %q", src, got, want)
		}
	}
}
