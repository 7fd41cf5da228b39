package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/starbook/starbook/api/apitest"
)

func TestPolicyTest(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"failing/p.star":      "def on_effect(e, h):\n    return None\n",
		"failing/p_test.star": "load('p.star', 'on_effect')\n\ndef test_ok():\n    assert.allowed(on_effect(effect(), []))\n\ndef test_bad():\n    assert.denied(on_effect(effect(), []))\n",
		"broken/p.star":       "def on_apply(r):\n    return r.name +\n",
	})
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stdout []string
		stderr string
	}{
		{"examples", []string{"../../policies/examples"}, 0, []string{"12 passed, 0 failed"}, ""},
		{"examples verbose", []string{"-v", "../../policies/examples"}, 0, []string{"ok   prod_delete_test.star test_delete_after_an_approval_is_allowed"}, ""},
		{"failing", []string{root + "/failing"}, 1, []string{"FAIL p_test.star test_bad: p_test.star:7: failed: allowed, want denied", "1 passed, 1 failed"}, "1 of 2 policy tests failed"},
		{"does not parse", []string{root + "/broken"}, 1, nil, "p.star:2: got newline, want primary expression"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := cli(t, &apitest.Service{}, "", append([]string{"policy", "test"}, tc.args...)...)
			if res.code != tc.code || !strings.Contains(res.stderr, tc.stderr) {
				t.Errorf("exit %d, stderr %q; want %d and %q", res.code, res.stderr, tc.code, tc.stderr)
			}
			for _, w := range tc.stdout {
				if !strings.Contains(res.stdout, w) {
					t.Errorf("stdout %q, want %q in it", res.stdout, w)
				}
			}
		})
	}
}

// TestServeRefusesBadPolicies: serve --policies with a policy that does not
// load stops before anything starts: the error names its file:line and no
// data dir (no etcd) is created.
func TestServeRefusesBadPolicies(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{"pol/p.star": "def on_apply(r):\n    return r.name +\n"})
	resetFlags(rootCmd)
	var stdout, stderr bytes.Buffer
	data := filepath.Join(root, "data")
	code := execute(context.Background(), []string{"serve", "--policies", filepath.Join(root, "pol"), "--data-dir", data,
		"--listen", "127.0.0.1:0"}, strings.NewReader(""), &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "p.star:2: got newline, want primary expression") {
		t.Fatalf("exit %d, stderr %q; want 1 naming p.star:2", code, stderr.String())
	}
	if _, err := os.Stat(data); !os.IsNotExist(err) {
		t.Errorf("data dir %s exists (%v): serve started something", data, err)
	}
}
