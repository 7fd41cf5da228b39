package service

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/starbook/starbook"
	"github.com/starbook/starbook/check"
	"github.com/starbook/starbook/cluster"
	"github.com/starbook/starbook/policy"
	sbruntime "github.com/starbook/starbook/runtime"
)

var _ starbook.PolicyService = (*Service)(nil)

// ApplyPolicies checks files as a policy set (every file loads, every
// *_test.star test passes) and stores it in place of the current one.
func (s *Service) ApplyPolicies(ctx context.Context, files map[string]string) (*starbook.PolicySet, error) {
	set, tests, err := CheckPolicies(ctx, files)
	if err != nil {
		return nil, err
	}
	stored := &cluster.PolicySet{Files: files, Version: set.Version, AppliedAt: s.Now().UTC()}
	if err := s.Store.PutPolicies(ctx, stored); err != nil {
		return nil, err
	}
	s.policies.Store(set)
	out := policySetInfo(stored)
	out.Tests = tests
	return out, nil
}

// CheckPolicies loads files as a policy set and runs its tests: an
// *InputError names the file:line of a file that does not load and of
// every test that fails. It returns the set and the tests that passed.
func CheckPolicies(ctx context.Context, files map[string]string) (*policy.Set, int, error) {
	if !slices.ContainsFunc(keys(files), policy.IsPolicyFile) {
		return nil, 0, sbruntime.Inputf("no policy files: want NAME.star files defining on_apply or on_effect")
	}
	set, err := policy.Load(files)
	if err != nil {
		return nil, 0, policyInput(err)
	}
	results, err := policy.Test(ctx, files)
	if err != nil {
		return nil, 0, policyInput(err)
	}
	if failed := policy.Failed(results); len(failed) > 0 {
		lines := make([]string, len(failed))
		for i, r := range failed {
			lines[i] = fmt.Sprintf("%s (%s)", r.Err, r.Name)
		}
		return nil, 0, &sbruntime.InputError{Msg: "policy tests failed:\n" + strings.Join(lines, "\n")}
	}
	return set, len(results), nil
}

// policyInput makes a policy file's error the caller's fault.
func policyInput(err error) error {
	var pe *policy.Error
	if errors.As(err, &pe) {
		return &sbruntime.InputError{Msg: pe.Error()}
	}
	return err
}

// Policies returns the stored policy set with its sources; nil for none.
func (s *Service) Policies(ctx context.Context) (*starbook.PolicySet, error) {
	stored, _, err := s.Store.Policies(ctx)
	if err != nil || stored == nil {
		return nil, err
	}
	out := policySetInfo(stored)
	out.Sources = stored.Files
	return out, nil
}

func policySetInfo(ps *cluster.PolicySet) *starbook.PolicySet {
	names := keys(ps.Files)
	slices.Sort(names)
	return &starbook.PolicySet{Version: ps.Version, Files: names, AppliedAt: ps.AppliedAt}
}

func keys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// currentPolicies is the stored policy set, loaded (cached by version).
func (s *Service) currentPolicies(ctx context.Context) (*policy.Set, error) {
	stored, _, err := s.Store.Policies(ctx)
	if err != nil || stored == nil || len(stored.Files) == 0 {
		return nil, err
	}
	if cached := s.policies.Load(); cached != nil && cached.Version == stored.Version {
		return cached, nil
	}
	set, err := policy.Load(stored.Files)
	if err != nil {
		return nil, fmt.Errorf("stored policy set %s: %w", stored.Version, err)
	}
	s.policies.Store(set)
	return set, nil
}

// judge evaluates the policies' on_apply against each runbook res found:
// denials refuse the apply as one *InputError, a line each:
// "policy: POLICY.star:LINE: RUNBOOK.star:LINE: why".
func (s *Service) judge(ctx context.Context, files map[string]string, res *check.Result) error {
	set, err := s.currentPolicies(ctx)
	if err != nil || !set.HasApplyPolicy() {
		return err
	}
	var lines []string
	for _, b := range res.Bundles {
		rb := Describe(b, res.Facts[b.Name], files)
		denials, err := set.OnApply(ctx, rb)
		if err != nil {
			return policyInput(err)
		}
		for _, d := range denials {
			lines = append(lines, sbruntime.PolicyErrorPrefix+d.String())
		}
	}
	if len(lines) > 0 {
		return &sbruntime.InputError{Msg: strings.Join(lines, "\n")}
	}
	return nil
}

// Describe is what on_apply sees of bundle b: its declarations, what check
// found it reaches (facts), and whether NAME_test.star is among files.
func Describe(b *sbruntime.Bundle, facts *check.Facts, files map[string]string) *policy.Runbook {
	rb := &policy.Runbook{Name: b.Name, File: b.Main, Owner: policy.OwnerOf(b.Files[b.Main]),
		Secrets: []string{}, Effects: []policy.Reach{}}
	_ = rb.DescribeTriggers(b.Triggers) // check encoded them: they decode
	if facts != nil {
		rb.Secrets = facts.Secrets
		for _, e := range facts.Effects {
			rb.Effects = append(rb.Effects, policy.Reach{Kind: e.Kind, Method: e.Method, Host: e.Host,
				Channel: e.Channel, User: e.User, Name: e.Runbook, File: e.File, Line: e.Line})
		}
	}
	_, rb.TestsPresent = files[strings.TrimSuffix(b.Main, ".star")+"_test.star"]
	return rb
}
