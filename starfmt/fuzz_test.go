package starfmt_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/starbook/starbook/starfmt"
)

// FuzzFormat: Format never panics, and what it accepts it formats to a
// fixed point.
func FuzzFormat(f *testing.F) {
	for _, dir := range []string{"testdata", "../runbooks", "../stdlib/std"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.star"))
		for _, name := range files {
			if src, err := os.ReadFile(name); err == nil {
				f.Add(src)
			}
		}
	}
	f.Add([]byte("def main(event):\n    return call(f,\n"))
	f.Add([]byte("x = [1,\n# c\n2]\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		once, err := starfmt.Format("f.star", src)
		if err != nil {
			return
		}
		twice, err := starfmt.Format("f.star", once)
		if err != nil {
			t.Fatalf("formatted output does not parse: %v\n%s", err, once)
		}
		if !bytes.Equal(once, twice) {
			t.Fatalf("not idempotent on %q:\nonce:\n%s\ntwice:\n%s", src, once, twice)
		}
	})
}
