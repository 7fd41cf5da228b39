package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestServeRefusesBadHTTPLimit: a bad --http-limit stops serve before it
// starts anything: a clear error, no data dir.
func TestServeRefusesBadHTTPLimit(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ name, flag, want string }{
		{"no rate or concurrency", "api.example.com", "want host=rate,concurrency"},
		{"bad rate", "api.example.com=10/h,2", `rate "10/h": the period must be s or m`},
		{"bad concurrency", "api.example.com=10/s,0", `concurrency "0": want a positive integer`},
		{"a URL", "https://api.example.com=10/s", "without a scheme"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := filepath.Join(dir, "d")
			res := cli(t, nil, "", "serve", "--data-dir", data, "--http-limit", tc.flag)
			if res.code != 1 || !strings.Contains(res.stderr, "--http-limit") || !strings.Contains(res.stderr, tc.want) {
				t.Fatalf("exit %d, stderr %q; want 1 and %q", res.code, res.stderr, tc.want)
			}
			if _, err := os.Stat(data); err == nil {
				t.Errorf("a data dir was created")
			}
		})
	}
}
