package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/starbook/starbook/api/apitest"
)

// TestApplyCanaryRefusesBadValues: a bad --canary value or bound is refused
// with a clear error before any request is sent, so nothing is stored.
func TestApplyCanaryRefusesBadValues(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{"rb.star": "def main(event):\n    return 1\n"})
	file := filepath.Join(root, "rb.star")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--canary", "0%"}, "more than 0% and less than 100%"},
		{[]string{"--canary", "100"}, "more than 0% and less than 100%"},
		{[]string{"--canary", "-5%"}, "more than 0% and less than 100%"},
		{[]string{"--canary", "ten"}, "want a number such as 10% or 10"},
		{[]string{"--canary", ""}, "want a number"},
		{[]string{"--canary", "NaN"}, "want a number"},
		{[]string{"--canary", "10%", "--canary-runs", "0"}, "canary runs 0: want at least 1"},
		{[]string{"--canary", "10", "--max-failure-rate", "1"}, "max failure rate 1"},
		{[]string{"--canary", "10", "--max-failure-rate", "-0.1"}, "max failure rate -0.1"},
		{[]string{"--canary-runs", "5"}, "need --canary"},
	} {
		res := cli(t, &apitest.Service{}, "", append([]string{"apply", file}, tc.args...)...)
		if res.code == 0 || !strings.Contains(res.stderr, tc.want) || res.requests != 0 {
			t.Errorf("apply %v: code %d, %d requests, stderr %q; want refused locally with %q", tc.args, res.code, res.requests, res.stderr, tc.want)
		}
	}
}
