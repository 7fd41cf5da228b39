package runbooktest_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/starbook/starbook/runbooktest"
	sbruntime "github.com/starbook/starbook/runtime"
	"github.com/starbook/starbook/starfmt"
)

// unformatted holds the shipped files that had a golden history as they
// were before `starbook fmt -w` (runbooks at its top, @std modules in std/).
var unformatted = filepath.Join("testdata", "unformatted")

// libFunc is a runbooktest.Libraries from a function.
type libFunc func(file string) (string, error)

func (f libFunc) Module(file string) (string, error) { return f(file) }

// TestFormattingKeepsReplay: formatting never changes what a runbook does.
// Each shipped runbook with a golden history replays it both as it was
// before formatting (with the @std it loaded then) and formatted (its
// modules formatted too); the shipped files are the formatted ones.
func TestFormattingKeepsReplay(t *testing.T) {
	set := std(t)
	before := libFunc(func(file string) (string, error) {
		if lib, rest, _ := strings.Cut(file, "/"); lib == "@std" {
			if src, err := os.ReadFile(filepath.Join(unformatted, "std", rest)); err == nil {
				return string(src), nil
			}
		}
		return set.Module(file)
	})
	after := libFunc(func(file string) (string, error) {
		src, err := before.Module(file)
		if err != nil {
			return "", err
		}
		out, err := starfmt.Format(file, []byte(src))
		return string(out), err
	})
	replayed := 0
	for _, rec := range recordings {
		if rec.root != "../runbooks" {
			continue
		}
		t.Run(rec.file, func(t *testing.T) {
			f := loadFixture(t, rec.file)
			orig, err := os.ReadFile(filepath.Join(unformatted, rec.name))
			if os.IsNotExist(err) { // formatted already when fmt came
				orig, err = os.ReadFile(filepath.Join(rec.root, rec.name))
			}
			if err != nil {
				t.Fatal(err)
			}
			formatted, err := starfmt.Format(rec.name, orig)
			if err != nil {
				t.Fatal(err)
			}
			shipped, err := os.ReadFile(filepath.Join(rec.root, rec.name))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(shipped, formatted) {
				t.Errorf("runbooks/%s is not the formatted %s: keep the pre-format copy in step with it", rec.name, filepath.Join(unformatted, rec.name))
			}
			for _, v := range []struct {
				what string
				src  []byte
				libs runbooktest.Libraries
			}{{"unformatted", orig, before}, {"formatted", formatted, after}} {
				dir := copyRunbooks(t, rec.root)
				if err := os.WriteFile(filepath.Join(dir, rec.name), v.src, 0o644); err != nil {
					t.Fatal(err)
				}
				b, err := runbooktest.LoadBundleFrom(dir, rec.name, v.libs)
				if err != nil {
					t.Fatalf("%s: %v", v.what, err)
				}
				r, err := runbooktest.Replay(context.Background(), b, f.Execution, f.History, f.Waits, sbruntime.Limits{})
				if err != nil {
					t.Fatalf("%s: %v", v.what, err)
				}
				if !r.Compatible {
					var out bytes.Buffer
					r.Write(&out)
					t.Errorf("%s runbooks/%s does not replay %s.json:\n%s", v.what, rec.name, rec.file, out.String())
				}
				replayed++
			}
		})
	}
	if replayed < 4 {
		t.Errorf("%d replays; want both versions of at least two runbooks", replayed)
	}
	// The pre-format @std copies must be what the formatted @std came from.
	mods, _ := filepath.Glob(filepath.Join(unformatted, "std", "*.star"))
	for _, m := range mods {
		want, err := after.Module("@std/" + filepath.Base(m))
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := set.Module("@std/" + filepath.Base(m)); got != want {
			t.Errorf("stdlib/std/%s is not the formatted %s", filepath.Base(m), m)
		}
	}
}

// copyRunbooks copies the files of dir (not its subdirectories) to a temp
// directory: what the runbook under test may load.
func copyRunbooks(t *testing.T, dir string) string {
	t.Helper()
	tmp := t.TempDir()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(tmp, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return tmp
}
