package check_test

import (
	"reflect"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/starbook/starbook/builtins"
	"github.com/starbook/starbook/check"
	"github.com/starbook/starbook/stdlib"
)

// testLibraries is a set with a small @std: notify.star posts through a
// step and loads a helper of its own library; leaky.star posts outside one.
func testLibraries(t *testing.T) *stdlib.Set {
	t.Helper()
	set := stdlib.NewSet()
	err := set.Add(stdlib.Std, fstest.MapFS{
		"notify.star": {Data: []byte(`"""Notify."""
load("util.star", "join")

def _post(url, text):
    return http.post(join(url, "/notify"), json = {"text": text})

def send(url, text, tags = []):
    """Sends text."""
    return call(_post, url, text, name = "notify.send")

def leaky_send(url):
    """Sends outside a step."""
    return _post(url, "x")

notify = struct(send = send, leaky_send = leaky_send)
`)},
		"util.star": {Data: []byte("def join(a, b):\n    return a.rstrip(\"/\") + b\n")},
	})
	if err != nil {
		t.Fatal(err)
	}
	return set
}

func checkWith(files map[string]string, libs check.Libraries) *check.Result {
	return check.Files(files, check.Options{Builtins: builtins.New(builtins.Options{}), Libraries: libs})
}

// TestLibraryModulesInBundle: check adds the modules a runbook loads,
// transitively, to its bundle, names @std's release, and the module's
// effects are in the runbook's Facts at their place in the module.
func TestLibraryModulesInBundle(t *testing.T) {
	set := testLibraries(t)
	r := checkWith(map[string]string{"ping.star": "load(\"@std/notify.star\", \"notify\")\n\ndef main(event):\n    return notify.send(event.url, \"hi\")\n"}, set)
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	if len(r.Bundles) != 1 {
		t.Fatalf("bundles %v", r.Bundles)
	}
	b := r.Bundles[0]
	if got := strings.Join(b.FileNames(), ","); got != "@std/notify.star,@std/util.star,ping.star" {
		t.Errorf("bundle files %s, want the runbook, notify.star and the util.star it loads", got)
	}
	if b.Libraries[stdlib.Std] != set.Release(stdlib.Std) || !strings.Contains(b.Libraries[stdlib.Std], "+") {
		t.Errorf("libraries %v, want @std %s", b.Libraries, set.Release(stdlib.Std))
	}
	want := []check.Effect{{Kind: "http", Method: "POST", Host: "*", File: "@std/notify.star", Line: 5}}
	if got := r.Facts["ping"].Effects; !reflect.DeepEqual(got, want) {
		t.Errorf("effects %+v, want the module's http.post %+v", got, want)
	}
	// call(notify.send, ...) reaches it too.
	r = checkWith(map[string]string{"ping.star": "load(\"@std/notify.star\", \"notify\")\n\ndef main(event):\n    return call(notify.send, event.url, \"hi\")\n"}, set)
	if got := r.Facts["ping"].Effects; !reflect.DeepEqual(got, want) {
		t.Errorf("through call(): effects %+v, want %+v", got, want)
	}
}

// TestLibraryFindings: what is wrong in using a module is an error at its
// file:line, and the runbook has no bundle.
func TestLibraryFindings(t *testing.T) {
	set := testLibraries(t)
	main := func(load, body string) map[string]string {
		return map[string]string{"ping.star": load + "\n\ndef main(event):\n    " + body + "\n"}
	}
	good := `load("@std/notify.star", "notify")`
	for _, tc := range []struct {
		name  string
		files map[string]string
		libs  check.Libraries
		want  string
	}{
		{"typo in the module", main(`load("@std/notfy.star", "notify")`, `return 1`), set,
			`ping.star:1:1: load "@std/notfy.star": library @std has no module notfy.star (it has notify.star, util.star)`},
		{"no such library", main(`load("@ops/notify.star", "notify")`, `return 1`), set,
			`ping.star:1:1: load "@ops/notify.star": no library @ops here`},
		{"no libraries at all", main(good, `return 1`), nil,
			`ping.star:1:1: load "@std/notify.star": no library @std here`},
		{"escape from the library", main(`load("@std/../ping.star", "main")`, `return 1`), set,
			`outside the library @std`},
		{"missing function", main(`load("@std/notify.star", "notify", "page")`, `return page()`), set,
			`ping.star:1:37: load "@std/notify.star": the module has no page (it has leaky_send, notify, send)`},
		{"private function", main(`load("@std/notify.star", "_post")`, `return _post(1, 2)`), set,
			`ping.star:1:27: load "@std/notify.star": _post is private to the module`},
		{"missing struct member", main(good, `return notify.page(event.url)`), set,
			`ping.star:4:19: notify.page: notify has no function page (it has leaky_send, send)`},
		{"wrong argument type", main(good, `return notify.send(event.url, "hi", tags = "a")`), set,
			`ping.star:4:48: notify.send: argument tags is a string, want a list (its default is [])`},
		{"missing argument", main(good, `return notify.send(event.url)`), set,
			`ping.star:4:12: notify.send: missing argument text (it takes (url, text, tags = []))`},
		{"too many arguments", main(good, `return notify.send(1, 2, [], 4)`), set,
			`ping.star:4:12: notify.send: too many arguments, 4 positional`},
		{"unknown keyword", main(good, `return notify.send(1, 2, channel = "#ops")`), set,
			`ping.star:4:30: notify.send: unexpected keyword argument channel`},
		{"module effect outside a step", main(good, `return notify.leaky_send(event.url)`), set,
			`@std/notify.star:5:12: http.post called outside a step (in _post, called directly from leaky_send)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := checkWith(tc.files, tc.libs)
			err := r.Err()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("check: %v, want %q", err, tc.want)
			}
		})
	}
	// *args and **kwargs are not counted, and a good call passes.
	for _, body := range []string{`return notify.send(*event.args, **event.kwargs)`, `return notify.send(event.url, text = "x", tags = ["a"])`,
		`return notify.send(event.url, "x", ("a", "b"))`} {
		if err := checkWith(main(good, body), set).Err(); err != nil {
			t.Errorf("%s: %v", body, err)
		}
	}
}

// TestLibrarySecretOutsideStep: a library module that reads a secret in
// main's context (or at load) is an error at the read; a runbook may.
func TestLibrarySecretOutsideStep(t *testing.T) {
	set := stdlib.NewSet()
	if err := set.Add("@team", fstest.MapFS{"tok.star": {Data: []byte(
		"def _get(url, token):\n    return http.get(url, headers = {\"Authorization\": token})\n\n" +
			"def get(url):\n    return call(_get, url, secret(\"TOKEN\"))\n\ntok = struct(get = get)\n")}}); err != nil {
		t.Fatal(err)
	}
	r := checkWith(map[string]string{"a.star": "load(\"@team/tok.star\", \"tok\")\n\ndef main(event):\n    return tok.get(event.url)\n"}, set)
	want := "@team/tok.star:5:28: secret() called outside a step (in get, called directly from main)"
	if err := r.Err(); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("check: %v, want %q", err, want)
	}
	r = checkWith(map[string]string{"a.star": "def _get(url, token):\n    return http.get(url, headers = {\"Authorization\": token})\n\n" +
		"def main(event):\n    return call(_get, event.url, secret(\"TOKEN\"))\n"}, nil)
	if err := r.Err(); err != nil {
		t.Errorf("a runbook's own secret read in main: %v", err)
	}
}

// TestTeamModuleMissing: a module a team's library sent with the runbooks
// does not hold is named as the library's, with what it has.
func TestTeamModuleMissing(t *testing.T) {
	r := checkWith(map[string]string{
		"a.star":              "load(\"@team/fees.star\", \"fees\")\n\ndef main(event):\n    return 1\n",
		"@team/payments.star": "payments = struct()\n",
	}, testLibraries(t))
	want := `a.star:1:1: load "@team/fees.star": library @team has no module fees.star (it has payments.star)`
	if err := r.Err(); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("check: %v, want %q", err, want)
	}
}

// TestSpreadStruct: a module that exports struct(**_PUBLIC), _PUBLIC a dict
// literal of its functions, is followed as one that names them, and one
// spread from a computed dict checks no attribute it cannot see.
func TestSpreadStruct(t *testing.T) {
	set := stdlib.NewSet()
	if err := set.Add("@team", fstest.MapFS{"kube.star": {Data: []byte(`
def _get(url):
    return http.get(url)

def get(url):
    """Gets."""
    return call(_get, url)

def leaky(url):
    """Gets outside a step."""
    return _get(url)

_PUBLIC = {"get": get, "leaky": leaky}

kube = struct(VERSION = "1", **_PUBLIC)
dyn = struct(**{n: get for n in ["a", "b"]})
`)}}); err != nil {
		t.Fatal(err)
	}
	r := checkWith(map[string]string{"a.star": "load(\"@team/kube.star\", \"kube\", \"dyn\")\n\ndef main(event):\n    return [kube.get(event.url), dyn.a(event.url)]\n"}, set)
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	want := []check.Effect{{Kind: "http", Method: "GET", Host: "*", File: "@team/kube.star", Line: 3}}
	if got := r.Facts["a"].Effects; !reflect.DeepEqual(got, want) {
		t.Errorf("effects %+v, want %+v", got, want)
	}
	for body, want := range map[string]string{
		"kube.leaky(event.url)":   "@team/kube.star:3:12: http.get called outside a step (in _get, called directly from leaky)",
		"kube.gett(event.url, 2)": "a.star:4:17: kube.gett: kube has no function gett (it has VERSION, get, leaky)",
	} {
		r = checkWith(map[string]string{"a.star": "load(\"@team/kube.star\", \"kube\")\n\ndef main(event):\n    return " + body + "\n"}, set)
		if err := r.Err(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("check: %v, want %q", err, want)
		}
	}
}
