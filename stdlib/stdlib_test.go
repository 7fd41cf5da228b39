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
