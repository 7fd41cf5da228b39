package builtins_test

import (
	"slices"
	"strings"
	"testing"

	"go.starlark.net/starlarkstruct"

	"github.com/starbook/starbook/builtins"
	sbruntime "github.com/starbook/starbook/runtime"
)

// TestSandboxNames pins what a runbook can call. Nothing here reads files,
// starts processes or opens connections except http.* and slack.* (effects,
// inside steps only); there is no exec. A new name must be added here, after
// checking that it gives no other access to the host.
func TestSandboxNames(t *testing.T) {
	want := []string{"aws_sigv4", "base64.decode", "base64.encode", "budget", "call", "compensate", "escalate", "fan_out", "gcp_service_account", "hmac_sha256", "http.delete", "http.get", "http.patch", "http.post",
		"http.put", "http.request", "http_limit", "idempotency_key", "json.decode", "json.encode", "json.encode_indent", "json.indent",
		"log", "now", "oauth2_client_credentials", "retry", "run_runbook", "secret", "sha256", "slack.post", "slack.update", "sleep", "slo", "ssh.run", "struct", "time.from_timestamp", "time.is_valid_timezone",
		"time.now", "time.parse_duration", "time.parse_time", "time.time", "trigger.alert", "trigger.cron",
		"trigger.webhook", "uuid", "wait_for_approval", "wait_for_signal"}
	var got []string
	for name, v := range builtins.New(builtins.Options{}) {
		if m, ok := v.(*starlarkstruct.Module); ok {
			for member := range m.Members {
				got = append(got, name+"."+member)
			}
			continue
		}
		got = append(got, name)
	}
	for _, extra := range []string{"time.nanosecond", "time.microsecond", "time.millisecond", "time.second", "time.minute", "time.hour"} {
		got = slices.DeleteFunc(got, func(s string) bool { return s == extra })
	}
	slices.Sort(got)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("predeclared names changed:\n got %s\nwant %s", strings.Join(got, " "), strings.Join(want, " "))
	}
}

// TestSandboxRefuses: what a script might try to reach the host with does
// not exist or is refused, at apply (compile) time where possible.
func TestSandboxRefuses(t *testing.T) {
	bi := builtins.New(builtins.Options{})
	for _, src := range []string{
		`def main(e): return open("/etc/passwd")`,
		`def main(e): return exec("id")`,
		`def main(e): return os.environ`,
		`def main(e): return subprocess.run(["id"])`,
		`def main(e): return eval("1")`,
		`def main(e): return __import__("os")`,
		`def main(e): return input()`,
	} {
		b := &sbruntime.Bundle{Name: "s", Main: "s.star", Files: map[string]string{"s.star": src}}
		if _, err := sbruntime.Compile(b, bi); err == nil || !strings.Contains(err.Error(), "undefined") {
			t.Errorf("%s compiles: %v", src, err)
		}
	}
	for _, mod := range []string{"/etc/passwd", "../secrets.star", "lib/../../x.star", `C:\x.star`} {
		files := map[string]string{"s.star": "load(\"" + strings.ReplaceAll(mod, `\`, `\\`) + "\", \"x\")\ndef main(e):\n    pass\n"}
		if _, err := sbruntime.BundlesFromFiles(files); err == nil {
			t.Errorf("load(%q) accepted", mod)
		}
	}
	// Effects outside a step, and the wall clock, are refused at run time.
	for src, want := range map[string]string{
		`def main(e): return http.get("http://127.0.0.1:1/")`:    "http.get is an effect",
		`def main(e): return slack.post("#x", text = "hi")`:      "slack.post is an effect",
		`def main(e): return time.now()`:                         "nondeterministic",
		"T = time.now()\ndef main(e): return T":                  "nondeterministic",
		`def main(e): return secret("STARBOOK_SLACK_BOT_TOKEN")`: "node's own configuration",
	} {
		_, _, res := runScript(t, src, "", sbruntime.StatusFailed)
		if !strings.Contains(res.Outcome.Error, want) {
			t.Errorf("%s: %q, want %q", src, res.Outcome.Error, want)
		}
	}
}
