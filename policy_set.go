package starbook

import (
	"context"
	"time"
)

// PolicySet is the cluster's policy set as the API shows it.
type PolicySet struct {
	Version   string            `json:"version"`
	Files     []string          `json:"files"`             // names, sorted, tests included
	Sources   map[string]string `json:"sources,omitempty"` // name -> source, on GET
	Tests     int               `json:"tests"`             // tests that passed when it was applied
	AppliedAt time.Time         `json:"applied_at"`
}

// PolicyService is the optional part of a Service that keeps policies
// (package policy): with it the API serves /api/v1/policies.
type PolicyService interface {
	// ApplyPolicies replaces the policy set with files (name -> source,
	// *_test.star tests included), all or nothing: a file that does not
	// load or a test that fails refuses it with an *InputError naming the
	// file:line, and nothing is stored.
	ApplyPolicies(ctx context.Context, files map[string]string) (*PolicySet, error)
	// Policies returns the current policy set; nil for none.
	Policies(ctx context.Context) (*PolicySet, error)
}
