package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/starbook/starbook/api/apitest"
)

// TestCheckPaths: a file is checked with what it loads, transitively, and
// none of the other files beside it; a directory is checked whole.
func TestCheckPaths(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"ops/restart.star": "load(\"common.star\", \"notify\")\n\ndef main(event):\n    call(notify, event[\"pod\"])\n",
		"ops/common.star":  "load(\"words.star\", \"label\")\n\ndef notify(pod):\n    return slack.post(\"#ops\", text = label(pod))\n",
		"ops/words.star":   "def label(pod):\n    return \"restarted %s at %s\" % (pod, now())\n",
		"ops/broken.star":  "def main(event):\n    return undefined_thing\n",
		"ops/notes.star":   "x = 1\n",
		"ops/hello.star":   "def main(event):\n    return \"hello\"\n",
		"scale/scale.star": "def main(event):\n    return event.replica\n",
		"scale/scale.schema.json": "{\"properties\": {\"replicas\": {\"type\": \"integer\", \"minimum\": 1}},\n" +
			" \"additionalProperties\": false}\n",
		"scale/scale_test.star":   "def test_zero():\n    run(\"scale.star\", {\"replicas\": 0})\n",
		"scale/other.star":        "def main(event):\n    return 1\n",
		"badschema/a.star":        "def main(event):\n    return 1\n",
		"badschema/a.schema.json": "{\n  \"type\": 7\n}\n",
	})
	tests := []struct {
		name   string
		args   []string
		code   int
		want   []string // stdout lines, root-relative, as prefixes
		stderr string
	}{
		{"file and its loads", []string{"ops/restart.star"}, 1, []string{
			"ops/words.star:2:41: now() called inside a step",
		}, "starbook: 1 error, 0 warnings\n"},
		{"runbook file alone", []string{"ops/broken.star"}, 1, []string{
			"ops/broken.star:2:12: undefined: undefined_thing",
		}, "starbook: 1 error, 0 warnings\n"},
		{"clean file beside broken ones", []string{"ops/hello.star"}, 0, []string{
			"ok: 1 runbook (hello), 0 warnings",
		}, ""},
		{"two files", []string{"ops/hello.star", "ops/restart.star"}, 1, []string{
			"ops/words.star:2:41: now() called inside a step",
		}, "starbook: 1 error, 0 warnings\n"},
		{"directory", []string{"ops"}, 1, []string{
			"ops/broken.star:2:12: undefined: undefined_thing",
			"ops/notes.star:1:1: no main(event) function, and no runbook loads this file",
			"ops/words.star:2:41: now() called inside a step",
		}, "starbook: 3 errors, 0 warnings\n"},
	}
	tests = append(tests, []struct {
		name   string
		args   []string
		code   int
		want   []string
		stderr string
	}{
		{"file with its schema and test", []string{"scale/scale.star"}, 1, []string{
			"scale/scale.star:2:18: warning: event.replica: the input schema (scale.schema.json) declares no property \"replica\" (it declares replicas)",
			"scale/scale_test.star:2:8: run(\"scale.star\"): its schema (scale.schema.json) refuses this input: input /replicas: minimum: got 0, want >= 1",
		}, "starbook: 1 error, 1 warning\n"},
		{"bad schema file", []string{"badschema"}, 1, []string{
			"badschema/a.schema.json:1: invalid input schema: at /type: ",
		}, "starbook: 1 error, 0 warnings\n"},
	}...)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := []string{"check"}
			for _, a := range tt.args {
				args = append(args, filepath.Join(root, filepath.FromSlash(a)))
			}
			res := cli(t, &apitest.Service{}, "", args...)
			out := strings.ReplaceAll(res.stdout, root+string(filepath.Separator), "")
			lines := strings.Split(strings.TrimSpace(filepath.ToSlash(out)), "\n")
			if res.code != tt.code || len(lines) != len(tt.want) || res.stderr != tt.stderr {
				t.Fatalf("exit %d (want %d), stdout:\n%s\nwant %d lines:\n%s\nstderr %q, want %q",
					res.code, tt.code, out, len(tt.want), strings.Join(tt.want, "\n"), res.stderr, tt.stderr)
			}
			for i := range lines {
				if !strings.HasPrefix(lines[i], tt.want[i]) {
					t.Errorf("line %d: %s\nwant it to start with %s", i, lines[i], tt.want[i])
				}
			}
		})
	}
}

func TestCount(t *testing.T) {
	tests := []struct {
		n    int
		noun string
		want string
	}{
		{0, "error", "0 errors"},
		{1, "error", "1 error"},
		{2, "error", "2 errors"},
		{1, "warning", "1 warning"},
		{12, "warning", "12 warnings"},
		{1, "runbook", "1 runbook"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := count(tt.n, tt.noun); got != tt.want {
				t.Fatalf("count(%d, %q) = %q", tt.n, tt.noun, got)
			}
		})
	}
}
