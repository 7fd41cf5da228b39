package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/starbook/starbook"
	"github.com/starbook/starbook/api/apitest"
	"github.com/starbook/starbook/runbooktest"
	sbruntime "github.com/starbook/starbook/runtime"
)

const greetRunbook = `
def lookup(user):
    return http.get("https://directory.example.com/users/" + user)["json"]

def main(event):
    u = call(lookup, event["user"])
    return "hello " + u["name"]
`

func TestTestCommand(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"rb/greet.star": greetRunbook,
		"rb/greet_test.star": `
def test_greets():
    mock.http("GET", "https://directory.example.com/users/*", json = {"name": "Ada"})
    assert.eq(run("greet.star", {"user": "u1"}).result, "hello Ada")

def test_wrong():
    mock.http("GET", "https://directory.example.com/users/*", json = {"name": "Bob"})
    assert.eq(run("greet.star", {"user": "u1"}).result, "hello Ada")
`,
	})
	dir := filepath.Join(root, "rb")
	tests := []struct {
		name     string
		args     []string
		code     int
		contains []string
	}{
		{"all", []string{"test", dir}, 1, []string{"--- FAIL: test_wrong (greet_test.star:8)",
			`greet_test.star:8: assert.eq: got "hello Bob", want "hello Ada"`, "FAIL\t" + dir, "1 passed, 1 failed"}},
		{"run filter", []string{"test", dir, "-run", "greets"}, 0, []string{"ok  \t" + dir, "1 passed, 0 failed"}},
		{"run= and -v", []string{"test", "-v", "--run=greets", dir}, 0, []string{"=== RUN   test_greets", "--- PASS: test_greets (", "1 passed, 0 failed"}},
		{"bad flag", []string{"test", "-x", dir}, 1, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := cli(t, &apitest.Service{}, "", tt.args...)
			if res.code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", res.code, tt.code, res.stdout, res.stderr)
			}
			for _, want := range tt.contains {
				if !strings.Contains(res.stdout, want) {
					t.Errorf("stdout does not contain %q:\n%s", want, res.stdout)
				}
			}
			if res.requests != 0 {
				t.Errorf("test made %d requests to the server", res.requests)
			}
		})
	}
}

func TestCheckCommand(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"good/greet.star": greetRunbook,
		"bad/greet.star":  greetRunbook,
		"bad/restart.star": `
trigger.cron("0 9 * *")

def main(event):
    http.delete("https://k8s/pods/" + event["pod"])
`,
		"bad/notes.star": "x = 1\n",
	})
	res := cli(t, &apitest.Service{}, "", "check", filepath.Join(root, "good"))
	if res.code != 0 || res.stdout != "ok: 1 runbook (greet), 0 warnings\n" {
		t.Fatalf("good: exit %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
	bad := filepath.Join(root, "bad")
	res = cli(t, &apitest.Service{}, "", "check", bad)
	want := []string{
		filepath.Join(bad, "notes.star") + ":1:1: no main(event) function, and no runbook loads this file",
		filepath.Join(bad, "restart.star") + `:2:13: trigger.cron: cron "0 9 * *": expected exactly 5 fields`,
		filepath.Join(bad, "restart.star") + ":5:5: http.delete called outside a step (in main)",
	}
	if res.code != 1 || !strings.Contains(res.stderr, "starbook: 3 errors, 0 warnings") {
		t.Fatalf("bad: exit %d, stderr %q", res.code, res.stderr)
	}
	lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
	if len(lines) != len(want) {
		t.Fatalf("findings:\n%s", res.stdout)
	}
	for i := range want {
		if !strings.HasPrefix(lines[i], want[i]) {
			t.Errorf("finding %d: %s\nwant %s", i, lines[i], want[i])
		}
	}
	// A warning alone passes, unless --strict.
	writeFiles(t, root, map[string]string{"warn/token.star": `
def main(event):
    return call(http.get, "https://x.example.com", headers = {"Authorization": secret("STARBOOK_TEST_UNSET_TOKEN_")})
`})
	res = cli(t, &apitest.Service{}, "", "check", filepath.Join(root, "warn"))
	if res.code != 1 || !strings.Contains(res.stdout, "names starting with STARBOOK_ are starbook's own settings") {
		t.Fatalf("reserved: exit %d, stdout %q", res.code, res.stdout)
	}
	writeFiles(t, root, map[string]string{"warn/token.star": `
def main(event):
    return call(http.get, "https://x.example.com", headers = {"Authorization": secret("SB_TEST_UNSET_TOKEN_")})
`})
	res = cli(t, &apitest.Service{}, "", "check", filepath.Join(root, "warn"))
	if res.code != 0 || !strings.Contains(res.stdout, `token.star:3:80: warning: secret "SB_TEST_UNSET_TOKEN_" is not set`) {
		t.Fatalf("warning: exit %d, stdout %q", res.code, res.stdout)
	}
	res = cli(t, &apitest.Service{}, "", "check", "--strict", filepath.Join(root, "warn"))
	if res.code != 1 || !strings.Contains(res.stderr, "starbook: 0 errors, 1 warning\n") {
		t.Fatalf("strict: exit %d, stderr %q", res.code, res.stderr)
	}
}

// replayService serves a recorded execution and the versions of its runbook.
type replayService struct {
	*apitest.Service
	bundle  *sbruntime.Bundle
	fixture struct {
		Execution *sbruntime.Execution `json:"execution"`
		History   []*sbruntime.Event   `json:"history"`
		Waits     []*sbruntime.Wait    `json:"waits"`
	}
}

func (s *replayService) Runbook(context.Context, string) (*starbook.RunbookInfo, error) {
	return nil, sbruntime.ErrNotFound
}

func (s *replayService) RunbookVersion(_ context.Context, name, version string) (*sbruntime.Bundle, time.Time, error) {
	if name != s.bundle.Name || (version != s.bundle.Version && version != "current") {
		return nil, time.Time{}, sbruntime.ErrNotFound
	}
	return s.bundle, t0, nil
}

func (s *replayService) ExecutionWaits(context.Context, string) ([]*sbruntime.Wait, error) {
	return s.fixture.Waits, nil
}

func newReplayService(t *testing.T) *replayService {
	t.Helper()
	testdata := filepath.Join("..", "..", "testdata", "replay")
	b, err := runbooktest.LoadBundle(filepath.Join(testdata, "v1"), "deploy.star")
	if err != nil {
		t.Fatal(err)
	}
	s := &replayService{Service: &apitest.Service{}, bundle: b}
	raw, err := os.ReadFile(filepath.Join(testdata, "deploy_waiting.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &s.fixture); err != nil {
		t.Fatal(err)
	}
	s.ExecutionFunc = func(_ context.Context, id string) (*sbruntime.Execution, []*sbruntime.Event, error) {
		if id != s.fixture.Execution.ID {
			return nil, nil, sbruntime.ErrNotFound
		}
		return s.fixture.Execution, s.fixture.History, nil
	}
	return s
}

func TestReplayCommand(t *testing.T) {
	svc := newReplayService(t)
	testdata := filepath.Join("..", "..", "testdata", "replay")
	tests := []struct {
		name     string
		args     []string
		code     int
		contains string
	}{
		{"own version", []string{"replay", "offline-1"}, 0,
			"compatible: execution offline-1 (deploy@3f10f9d45c42, waiting, 1 events) replays on deploy@3f10f9d45c42\n  the script reaches the pending wait at position 2\n"},
		{"diverging script", []string{"replay", "offline-1", "--script", filepath.Join(testdata, "diverges", "deploy.star")}, 1,
			"  expected: approval Ship api:2.0? (args 1f31f7b3e076c0c8), recorded at deploy.star:11:27 (version 3f10f9d45c42)\n" +
				"  actual:   call canary (args 333726e27943453b), called at deploy.star:14:9\n"},
		{"extending directory", []string{"replay", "offline-1", "--script", filepath.Join(testdata, "extends")}, 0, "compatible"},
		{"unknown execution", []string{"replay", "nope"}, 1, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := cli(t, svc, "", tt.args...)
			if res.code != tt.code || !strings.Contains(res.stdout, tt.contains) {
				t.Fatalf("exit %d (want %d)\nstdout:\n%s\nstderr:\n%s\nwant stdout to contain:\n%s", res.code, tt.code, res.stdout, res.stderr, tt.contains)
			}
		})
	}
}

func TestRunDryRun(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"greet.star":       greetRunbook,
		"mocks.star":       `mock.http("GET", "https://directory.example.com/users/*", json = {"name": "Ada"})`,
		"bad_mocks.star":   `mock.nothing()`,
		"ignored_one.star": "def main(event):\n    pass\n",
	})
	file := filepath.Join(root, "greet.star")
	res := cli(t, &apitest.Service{}, "", "run", file, "--dry-run", "--input", `{"user": "u1"}`, "--mocks", filepath.Join(root, "mocks.star"))
	if res.code != 0 || res.requests != 0 {
		t.Fatalf("exit %d, %d requests, stderr %q", res.code, res.requests, res.stderr)
	}
	for _, want := range []string{"dry run of greet@", "1         call  lookup  \"u1\"\n",
		"  -> GET https://directory.example.com/users/u1 -> 200\n", `completed: "hello Ada"`} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("stdout does not contain %q:\n%s", want, res.stdout)
		}
	}
	// Without mocks the directory answers {}: the run fails and says where.
	res = cli(t, &apitest.Service{}, "", "run", file, "--dry-run", "--input", `{"user": "u1"}`)
	if res.code != 1 || !strings.Contains(res.stdout, "(default)") || !strings.Contains(res.stdout, "greet.star:7:24: in main") ||
		!strings.Contains(res.stderr, "dry run of greet ended failed") {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", res.code, res.stdout, res.stderr)
	}
	res = cli(t, &apitest.Service{}, "", "run", file, "--dry-run", "--mocks", filepath.Join(root, "bad_mocks.star"))
	if res.code != 1 || !strings.Contains(res.stderr, "--mocks: ") {
		t.Fatalf("bad mocks: exit %d, stderr %q", res.code, res.stderr)
	}

	// A runbook name: the current version comes from the server, and nothing is started.
	svc := newReplayService(t)
	svc.StartFunc = func(context.Context, string, json.RawMessage, sbruntime.Trigger) (*sbruntime.Execution, error) {
		t.Error("a dry run started an execution")
		return nil, sbruntime.ErrNotFound
	}
	res = cli(t, svc, "", "run", "deploy", "--dry-run", "--input", `{"service": "api"}`)
	if res.code != 1 || !strings.Contains(res.stdout, "dry run of deploy@3f10f9d45c42") || res.requests != 1 {
		t.Fatalf("exit %d, %d requests\nstdout:\n%s\nstderr:\n%s", res.code, res.requests, res.stdout, res.stderr)
	}
}

func TestApplyPrintsWarnings(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"greet.star": greetRunbook})
	svc := &apitest.Service{ApplyFunc: func(context.Context, map[string]string) ([]starbook.RunbookVersion, error) {
		return []starbook.RunbookVersion{{Name: "greet", Version: "v1",
			Warnings: []string{`greet.star:3:80: warning: secret "TOKEN" is not set in the environment`}}}, nil
	}}
	res := cli(t, svc, "", "apply", dir)
	if res.code != 0 || res.stdout != "applied greet v1\n" ||
		res.stderr != "starbook: greet.star:3:80: warning: secret \"TOKEN\" is not set in the environment\n" {
		t.Fatalf("exit %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
}
