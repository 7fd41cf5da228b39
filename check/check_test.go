package check_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/starbook/starbook/builtins"
	"github.com/starbook/starbook/check"
	"github.com/starbook/starbook/stdlib"
)

func run(files map[string]string, env map[string]string) *check.Result {
	return check.Files(files, check.Options{
		Builtins: builtins.New(builtins.Options{}),
		LookupEnv: func(name string) (string, bool) {
			v, ok := env[name]
			return v, ok
		},
	})
}

func findings(r *check.Result) []string {
	out := make([]string, len(r.Findings))
	for i, f := range r.Findings {
		out[i] = f.String()
	}
	return out
}

func TestFindings(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  []string // each finding, in order, as a prefix
	}{
		{"syntax error", map[string]string{"a.star": "def main(event):\n    return (\n"},
			[]string{"a.star:3:1: got outdent, want primary expression"}},
		{"unknown built-in", map[string]string{"a.star": "def main(event):\n    return call(fetch_logs, 1) + undefined_thing()\n"},
			[]string{"a.star:2:17: undefined: fetch_logs", "a.star:2:34: undefined: undefined_thing"}},
		{"no main", map[string]string{"a.star": "def main(event):\n    pass\n", "b.star": "def mian(event):\n    pass\n"},
			[]string{"b.star:1:1: no main(event) function, and no runbook loads this file"}},
		{"main without event", map[string]string{"a.star": "x = 1\ndef main():\n    pass\n"},
			[]string{"a.star:2:1: main must take one parameter, the event: def main(event)"}},
		{"main with two", map[string]string{"a.star": "def main(event, other):\n    pass\n"},
			[]string{"a.star:1:1: main must take one parameter"}},
		{"missing load", map[string]string{"a.star": "load(\"lib.star\", \"f\")\ndef main(event):\n    f()\n"},
			[]string{`a.star:1:1: load "lib.star": no such file lib.star`}},
		{"effect in main", map[string]string{"a.star": "def main(event):\n    r = http.get(\"https://x\")\n    return r\n"},
			[]string{"a.star:2:9: http.get called outside a step (in main): an effect must run inside call() or compensate()"}},
		{"effect at top level", map[string]string{"a.star": "X = slack.post(\"#ops\", text = \"hi\")\ndef main(event):\n    pass\n"},
			[]string{"a.star:1:5: slack.post called outside a step (at top level)"}},
		{"run_runbook in a step", map[string]string{"a.star": "def step():\n    return run_runbook(\"other\")\n\ndef main(event):\n    return call(step)\n"},
			[]string{"a.star:2:12: run_runbook() called inside a step"}},
		{"ssh outside a step", map[string]string{"a.star": "def main(event):\n    return ssh.run(event.host, \"df\", user = \"ops\", key = event.key, known_hosts = event.kh)\n"},
			[]string{"a.star:2:12: ssh.run called outside a step (in main)"}},
		{"ssh to a host known_hosts lacks", map[string]string{"a.star": "def main(event):\n    call(ssh.run, \"db1\", \"df\", user = \"ops\", key = event.key, port = 2222,\n        known_hosts = \"db1 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\")\n"},
			[]string{`a.star:2:5: warning: ssh.run to db1: known_hosts has no line for it (want one beginning "[db1]:2222"`}},
		{"ssh to a known host", map[string]string{"a.star": "def main(event):\n    call(ssh.run, \"db1\", \"df\", user = \"ops\", key = event.key, port = 2222,\n        known_hosts = \"[db1]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\")\n"},
			nil},
		{"effect in a helper main calls", map[string]string{"a.star": `
def restart(pod):
    return http.delete("https://k8s/pods/" + pod)

def main(event):
    restart(event.pod)
`}, []string{"a.star:3:12: http.delete called outside a step (in restart, called directly from main)"}},
		{"effect in a loaded helper", map[string]string{
			"a.star":       "load(\"lib/k8s.star\", \"restart\")\ndef main(event):\n    restart(event.pod)\n",
			"lib/k8s.star": "def restart(pod):\n    return http.delete(\"https://k8s/pods/\" + pod)\n",
		}, []string{"lib/k8s.star:2:12: http.delete called outside a step (in restart, called directly from main)"}},
		{"effect in a fan_out item", map[string]string{"a.star": "def main(event):\n    fan_out(lambda h: http.get(h), event.hosts)\n"},
			[]string{"a.star:2:23: http.get called outside a step (in the lambda at a.star:2, a fan_out item function at a.star:2)"}},
		{"fan_out of an effect", map[string]string{"a.star": "def main(event):\n    fan_out(http.get, event.hosts)\n"},
			[]string{"a.star:2:5: fan_out runs http.get in each item's thread, outside a step"}},
		{"durable call in a step", map[string]string{"a.star": `
def step(x):
    sleep("1s")
    return now()

def main(event):
    call(step, 1)
`}, []string{
			"a.star:3:5: sleep() called inside a step (in step, a step run by call() at a.star:7): steps do not nest",
			"a.star:4:12: now() called inside a step",
		}},
		{"durable call at load time", map[string]string{"a.star": "T = now()\ndef main(event):\n    pass\n"},
			[]string{"a.star:1:5: now() called at load time (at top level)"}},
		{"idempotency_key outside a step", map[string]string{"a.star": "def main(event):\n    return idempotency_key()\n"},
			[]string{"a.star:2:12: idempotency_key() called outside a step (in main)"}},
		{"unknown module member", map[string]string{"a.star": "def main(event):\n    call(http.gett, \"https://x\")\n"},
			[]string{"a.star:2:15: http has no member gett (it has delete, get, patch, post, put, request)"}},
		{"bad trigger", map[string]string{"a.star": "trigger.cron(\"*/5 * * *\")\ndef main(event):\n    pass\n"},
			[]string{`a.star:1:13: trigger.cron: cron "*/5 * * *": expected exactly 5 fields`}},
		{"top level fails at apply", map[string]string{"a.star": "trigger.cron(\"@hourly\")\nfail(\"boom\")\ndef main(event):\n    pass\n"},
			[]string{"a.star:2:5: runbook a: its top level failed while its triggers were collected"}},
		{"everything in one pass", map[string]string{"a.star": `trigger.cron("*/5 * * *")
X = http.get("https://x")

def main(event):
    http.post("https://y")
    return undefined_thing()
`}, []string{
			`a.star:1:13: trigger.cron: cron "*/5 * * *": expected exactly 5 fields`,
			"a.star:2:5: http.get called outside a step (at top level)",
			"a.star:5:5: http.post called outside a step (in main)",
			"a.star:6:12: undefined: undefined_thing",
		}},
		{"everything in one pass, across loads", map[string]string{
			"a.star":   "load(\"lib.star\", \"f\")\ntrigger.webhook(\"x\", token_env = \"T\")\ndef main(event):\n    f(undefined_thing)\n",
			"lib.star": "trigger.webhook(\"x\", token_env = \"T\")\ndef f(x):\n    http.get(x)\n",
		}, []string{
			`a.star:2:16: trigger.webhook: webhook "x" is already declared at lib.star:1:16`,
			"a.star:4:7: undefined: undefined_thing",
			"lib.star:3:5: http.get called outside a step (in f, called directly from main)",
		}},
		{"everything in one pass, main without event", map[string]string{"a.star": "trigger.cron(\"often\")\ndef main():\n    http.get(\"x\")\n"},
			[]string{
				`a.star:1:13: trigger.cron: cron "often"`,
				"a.star:2:1: main must take one parameter, the event: def main(event)",
				"a.star:3:5: http.get called outside a step (in main)",
			}},
		{"computed trigger arguments wait for a compiling runbook", map[string]string{"a.star": `
def spec():
    return "often"

trigger.cron(spec())
trigger.cron("often" + "")
trigger.cron(*["often"])
trigger.cron("often", **{"tz": "Mars/Olympus"})
def main(event):
    return undefined_thing
`}, []string{"a.star:10:12: undefined: undefined_thing"}},
		{"secret not set", map[string]string{"a.star": "def main(event):\n    call(http.get, \"https://x\", headers = {\"Authorization\": secret(\"API_TOKEN\")})\n"},
			[]string{`a.star:2:61: warning: secret "API_TOKEN" is not set in the environment`}},
		{"reserved secret", map[string]string{"a.star": "def main(event):\n    return secret(\"STARBOOK_TOKENS\")\n"},
			[]string{`a.star:2:12: secret("STARBOOK_TOKENS"): names starting with STARBOOK_ are starbook's own settings`}},
		{"secret at top level", map[string]string{"a.star": "TOKEN = secret(\"SET\")\ndef main(event):\n    pass\n"},
			[]string{"a.star:1:9: warning: secret() at top level is read whenever the file is loaded"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := findings(run(tt.files, map[string]string{"SET": "x"}))
			if len(got) != len(tt.want) {
				t.Fatalf("findings:\n%s\nwant %d:\n%s", strings.Join(got, "\n"), len(tt.want), strings.Join(tt.want, "\n"))
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tt.want[i]) {
					t.Errorf("finding %d:\n%s\nwant it to start with:\n%s", i, got[i], tt.want[i])
				}
			}
		})
	}
}

// TestClean: what a runbook may do, it may do without a finding.
func TestClean(t *testing.T) {
	files := map[string]string{
		"a.star": `
load("lib.star", "get", "undo")
trigger.alert(alertname = "X")

def notify(text):
    return slack.post("#ops", text = text)

def check_host(h):
    return call(get, "https://" + h + "/healthz")

def main(event):
    token = secret("SET")
    checks = fan_out(check_host, event.hosts, max_concurrency = 5)
    call(http.post, "https://x", headers = {"Authorization": token})
    compensate(undo, "x")
    call(lambda: http.get("https://y"))
    call(notify, "done: %d" % len(checks))
    sleep("1m")
    http = {"not": "the module"}
    return http.get("not")
`,
		"lib.star": `
def get(url):
    return http.get(url)["json"]

def undo(x):
    return http.delete("https://x/" + x, headers = {"Idempotency-Key": idempotency_key()})
`,
	}
	r := run(files, map[string]string{"SET": "x"})
	if len(r.Findings) != 0 {
		t.Fatalf("findings:\n%s", strings.Join(findings(r), "\n"))
	}
	if len(r.Bundles) != 1 || r.Bundles[0].Name != "a" || len(r.Bundles[0].Triggers) == 0 {
		t.Fatalf("bundles %+v", r.Bundles)
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
}

func TestErrJoinsErrorsOnly(t *testing.T) {
	r := run(map[string]string{"a.star": "def main(event):\n    secret(\"NOPE\")\n    return http.get(\"x\")\n"}, nil)
	err := r.Err()
	if err == nil || strings.Contains(err.Error(), "NOPE") || !strings.Contains(err.Error(), "a.star:3:12: http.get") {
		t.Fatalf("Err() = %v", err)
	}
	if w := r.Warnings(); len(w) != 1 || !strings.Contains(w[0].String(), "NOPE") {
		t.Fatalf("warnings %v", w)
	}
}

// TestShippedRunbooks: runbooks/ applies cleanly, as `starbook serve
// --runbooks runbooks` does at start, with no secret set.
func TestShippedRunbooks(t *testing.T) {
	entries, err := os.ReadDir("../runbooks")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".star") {
			b, err := os.ReadFile(filepath.Join("../runbooks", e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			files[e.Name()] = string(b)
		}
	}
	// They load @std modules: the embedded ones, as a node serves them.
	std, err := stdlib.Default(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	r := check.Files(files, check.Options{Builtins: builtins.New(builtins.Options{}), Libraries: std})
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"crashloop": true, "disk_cleanup": true, "deploy_saga": true, "incident": true,
		"signup": true, "nightly_report": true, "hello": true}
	for _, b := range r.Bundles {
		delete(want, b.Name)
		if b.Name != "hello" && len(b.Triggers) == 0 {
			t.Errorf("runbook %s declares no trigger", b.Name)
		}
	}
	if len(want) > 0 {
		t.Errorf("runbooks not found: %v", want)
	}
	for _, w := range r.Warnings() {
		if !strings.Contains(w.Message, "is not set in the environment") {
			t.Errorf("unexpected warning %s", w)
		}
	}
}
