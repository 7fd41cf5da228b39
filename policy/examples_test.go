package policy_test

import (
	"context"
	"testing"

	"github.com/starbook/starbook/policy"
)

// TestExamples runs the tests of the example policies we ship, so that CI
// (go test ./...) keeps them passing.
func TestExamples(t *testing.T) {
	files, err := policy.ReadFiles("../policies/examples")
	if err != nil {
		t.Fatal(err)
	}
	results, err := policy.Test(context.Background(), files)
	if err != nil {
		t.Fatal(err)
	}
	if len(results) < 12 {
		t.Errorf("ran %d tests, want the examples' 12 or more", len(results))
	}
	for _, r := range results {
		if r.Err != nil {
			t.Error(r)
		}
	}
}
