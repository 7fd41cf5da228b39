package service

import (
	"context"
	"fmt"
	"time"

	"github.com/starbook/starbook"
	sbruntime "github.com/starbook/starbook/runtime"
	"github.com/starbook/starbook/slo"
	"github.com/starbook/starbook/triggers"
)

var _ starbook.SLOService = (*Service)(nil)

// SLOs computes the status of runbook's objective, or of every runbook's
// with runbook "". It costs the runbooks' declarations (one range read of
// runbooks/) and the rollups of each objective's span (three range reads
// each, 40 runbooks a txn; see cluster.Store.SLOBuckets): their buckets,
// not their runs.
// Window edges are to the minute over the last 7 hours, to the hour beyond;
// latency percentiles within 1/32 above the exact ones (see
// slo.ComputeBuckets).
func (s *Service) SLOs(ctx context.Context, runbook string) (*starbook.SLOReport, error) {
	decls, err := s.Store.CurrentDeclarations(ctx)
	if err != nil {
		return nil, err
	}
	type objective struct {
		runbook, version string
		slo              *triggers.SLO
	}
	var objectives []objective
	found := false
	for _, d := range decls {
		if runbook != "" && d.Runbook != runbook {
			continue
		}
		found = true
		set, err := triggers.DecodeSet(d.Raw)
		if err != nil {
			return nil, fmt.Errorf("runbook %s@%s: %w", d.Runbook, d.Version, err)
		}
		if set.SLO != nil {
			objectives = append(objectives, objective{d.Runbook, d.Version, set.SLO})
		}
	}
	switch {
	case runbook != "" && !found:
		return nil, fmt.Errorf("runbook %q: %w", runbook, sbruntime.ErrNotFound)
	case runbook != "" && len(objectives) == 0:
		return nil, fmt.Errorf("runbook %q declares no slo(): %w", runbook, sbruntime.ErrNotFound)
	}
	at := s.Now().UTC()
	report := &starbook.SLOReport{At: at, SLOs: []*starbook.SLOStatus{}}
	if len(objectives) == 0 {
		return report, nil
	}
	since := map[string]time.Time{}
	for _, o := range objectives {
		since[o.runbook] = at.Add(-slo.Span(o.slo))
	}
	buckets, err := s.Store.SLOBucketsOf(ctx, since)
	if err != nil {
		return nil, err
	}
	for _, o := range objectives {
		report.SLOs = append(report.SLOs, slo.ComputeBuckets(o.runbook, o.version, o.slo, buckets[o.runbook], at))
	}
	return report, nil
}
