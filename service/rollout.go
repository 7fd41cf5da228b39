package service

import (
	"context"

	"github.com/starbook/starbook"
)

var _ starbook.RolloutService = (*Service)(nil)

// ApplyCanary checks the runbooks in files as Apply does and stores them as
// canaries of their current versions (cluster.Store.PutCanary): a bad spec
// or a bad runbook stores nothing.
func (s *Service) ApplyCanary(ctx context.Context, files map[string]string, spec starbook.CanarySpec, by string) ([]starbook.RunbookVersion, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	res, err := s.checkFiles(files)
	if err != nil {
		return nil, err
	}
	if err := res.Err(); err != nil {
		return nil, err
	}
	results, created, err := s.Store.PutCanary(ctx, res.Bundles, spec, by)
	if err != nil {
		return nil, err
	}
	out := make([]starbook.RunbookVersion, len(res.Bundles))
	for i, b := range res.Bundles {
		out[i] = starbook.RunbookVersion{Name: b.Name, Version: b.Version, Files: b.FileNames(), CreatedAt: created,
			Unchanged: results[i].Unchanged, Rollout: results[i].Rollout}
		for _, w := range res.Warnings() {
			if _, ok := b.Files[w.File]; ok {
				out[i].Warnings = append(out[i].Warnings, w.String())
			}
		}
	}
	return out, nil
}

// Rollout returns the runbook's latest rollout with the counts of its
// canary's runs.
func (s *Service) Rollout(ctx context.Context, runbook string) (*starbook.Rollout, error) {
	sr, err := s.Store.Rollout(ctx, runbook)
	if err != nil {
		return nil, err
	}
	counts, err := s.Store.RolloutCounts(ctx, sr.Rollout)
	if err != nil {
		return nil, err
	}
	sr.Rollout.Counts = &counts
	return sr.Rollout, nil
}

// PromoteRollout makes the active rollout's canary the current version.
func (s *Service) PromoteRollout(ctx context.Context, runbook, by string) (*starbook.Rollout, error) {
	return s.Store.EndRollout(ctx, runbook, starbook.TransitionPromoted, by, "promoted by "+by, 0)
}

// AbortRollout ends the active rollout, leaving the stable version current.
func (s *Service) AbortRollout(ctx context.Context, runbook, by string) (*starbook.Rollout, error) {
	return s.Store.EndRollout(ctx, runbook, starbook.TransitionAborted, by, "aborted by "+by, 0)
}
