package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/starbook/starbook/api/apitest"
)

const (
	messy = "def main(event):\n  x=[1,2]\n  return call(f,x)\n"
	tidy  = "def main(event):\n    x = [1, 2]\n    return call(f, x)\n"
	bad   = "def main(event):\n    return call(f,\n"
)

func TestFmt(t *testing.T) {
	tests := []struct {
		name   string
		args   []string // file names relative to the temp root
		code   int
		stdout string // root-relative
		stderr string
		after  map[string]string // files' contents afterwards (else as written)
	}{
		{"one file to stdout", []string{"a/messy.star"}, 0, tidy, "", nil},
		{"formatted file to stdout", []string{"a/tidy.star"}, 0, tidy, "", nil},
		{"two files need a flag", []string{"a/messy.star", "a/tidy.star"}, 1, "",
			"starbook: fmt prints one file; with 2, use -w, -d or --check\n", nil},
		{"check lists the unformatted", []string{"--check", "a"}, 1, "a/messy.star\n",
			"starbook: 1 file not formatted\n", nil},
		{"check of formatted files", []string{"--check", "a/tidy.star", "b"}, 0, "", "", nil},
		{"write", []string{"-w", "a"}, 0, "", "", map[string]string{"a/messy.star": tidy}},
		{"diff", []string{"-d", "a/messy.star", "a/tidy.star"}, 0,
			"--- a/messy.star.orig\n+++ a/messy.star\n@@ -1,3 +1,3 @@\n def main(event):\n-  x=[1,2]\n-  return call(f,x)\n" +
				"+    x = [1, 2]\n+    return call(f, x)\n", "", nil},
		{"refuses a file that does not parse", []string{"-w", "c"}, 1, "",
			"c/bad.star:4:1: syntax error near unindent\nstarbook: 1 file refused: does not parse\n",
			map[string]string{"c/messy.star": tidy}},
		{"testdata and hidden directories skipped", []string{"--check", "b"}, 0, "", "", nil},
		{"named testdata directory", []string{"--check", "b/testdata"}, 1, "b/testdata/messy.star\n",
			"starbook: 1 file not formatted\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			files := map[string]string{
				"a/messy.star": messy, "a/tidy.star": tidy, "a/notes.txt": messy,
				"b/tidy.star": tidy, "b/testdata/messy.star": messy, "b/.hidden/messy.star": messy,
				"c/bad.star": bad, "c/messy.star": messy,
			}
			writeFiles(t, root, files)
			if err := os.Chmod(filepath.Join(root, "a/messy.star"), 0o600); err != nil {
				t.Fatal(err)
			}
			args := []string{"fmt"}
			for _, a := range tt.args {
				if !strings.HasPrefix(a, "-") {
					a = filepath.Join(root, a)
				}
				args = append(args, a)
			}
			res := cli(t, &apitest.Service{}, "", args...)
			rel := func(s string) string { return strings.ReplaceAll(s, root+string(filepath.Separator), "") }
			if res.code != tt.code || rel(res.stdout) != tt.stdout || rel(res.stderr) != tt.stderr {
				t.Fatalf("exit %d (want %d)\nstdout:\n%s\nwant:\n%s\nstderr: %q\nwant:   %q",
					res.code, tt.code, rel(res.stdout), tt.stdout, rel(res.stderr), tt.stderr)
			}
			for name, want := range files {
				if a, ok := tt.after[name]; ok {
					want = a
				}
				got, err := os.ReadFile(filepath.Join(root, name))
				if err != nil {
					t.Fatal(err)
				}
				if string(got) != want {
					t.Errorf("%s afterwards:\n%s\nwant:\n%s", name, got, want)
				}
			}
			// -w keeps the mode and leaves no temp file behind.
			if info, err := os.Stat(filepath.Join(root, "a/messy.star")); err != nil || info.Mode().Perm() != 0o600 {
				t.Errorf("a/messy.star: %v, mode %v; want 0600", err, info.Mode())
			}
			ents, _ := os.ReadDir(filepath.Join(root, "a"))
			if len(ents) != 3 {
				t.Errorf("a/ holds %d files afterwards, want 3: %v", len(ents), ents)
			}
		})
	}
}
