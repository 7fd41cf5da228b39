package stdlib_test

import (
	"bytes"
	"context"
	"os"
	"testing"

	"github.com/starbook/starbook/runbooktest"
	"github.com/starbook/starbook/stdlib"
)

// TestModules runs the library's offline tests (tests/*_test.star) against
// the modules as embedded.
func TestModules(t *testing.T) {
	set, err := stdlib.Default(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	r := &runbooktest.Runner{Out: &out, Verbose: testing.Verbose(), Libraries: set}
	sum, err := r.Run(context.Background(), []string{"tests"})
	t.Log(out.String())
	if err != nil {
		t.Fatal(err)
	}
	if sum.Failed > 0 || sum.Passed == 0 {
		t.Fatalf("%d passed, %d failed", sum.Passed, sum.Failed)
	}
}

// TestEmbeddedIsTheSource checks that the embedded modules are std/'s files,
// tests left out.
func TestEmbeddedIsTheSource(t *testing.T) {
	set, err := stdlib.Default(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	files, err := set.Files(stdlib.Std)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no module embedded")
	}
	for name, src := range files {
		disk, err := os.ReadFile("std/" + name[len(stdlib.Std)+1:])
		if err != nil || string(disk) != src {
			t.Errorf("%s: embedded differs from std/ (%v)", name, err)
		}
	}
}

// TestDirRelease: @std served from $STARBOOK_STD_DIR names a new release
// when a module changes under a running node, and the module read is the
// new one; --lib refuses @std.
func TestDirRelease(t *testing.T) {
	dir := t.TempDir()
	write := func(src string) {
		if err := os.WriteFile(dir+"/x.star", []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("x = struct()\n")
	set, err := stdlib.Default(func(k string) string {
		if k == stdlib.EnvDir {
			return dir
		}
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	first := set.Release(stdlib.Std)
	write("x = struct(changed = True)\n")
	if second := set.Release(stdlib.Std); second == first {
		t.Errorf("release %s unchanged after the module changed", first)
	}
	if src, err := set.Module("@std/x.star"); err != nil || src != "x = struct(changed = True)\n" {
		t.Errorf("Module: %q, %v", src, err)
	}
	if _, err := set.Module("@std/grafana.star"); err == nil {
		t.Error("the override directory serves an embedded module it does not hold")
	}
	if err := set.AddDir("std=" + dir); err == nil {
		t.Error("--lib std=DIR accepted")
	}
	if _, err := stdlib.Default(func(string) string { return dir + "/missing" }); err == nil {
		t.Error("a missing STARBOOK_STD_DIR accepted")
	}
}
