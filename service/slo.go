package service

import (
	"context"
	"fmt"

	"github.com/starbook/starbook"
	sbruntime "github.com/starbook/starbook/runtime"
	"github.com/starbook/starbook/slo"
	"github.com/starbook/starbook/triggers"
)

var _ starbook.SLOService = (*Service)(nil)

// SLOs computes the status of runbook's objective, or of every runbook's
// with runbook "". It costs two reads: the runbooks' declarations (one range
// read of runbooks/) and the ended executions of the longest window needed
// (one range read of executions/ from that window's start, paged).
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
	span := slo.Span(objectives[0].slo)
	runs := map[string][]slo.Run{}
	for _, o := range objectives {
		span = max(span, slo.Span(o.slo))
		runs[o.runbook] = nil
	}
	err = s.Store.EndedSince(ctx, at.Add(-span), func(e *sbruntime.Execution) {
		if rs, ok := runs[e.Runbook]; ok {
			runs[e.Runbook] = append(rs, slo.Run{Status: e.Status, Created: e.CreatedAt, Ended: *e.EndedAt})
		}
	})
	if err != nil {
		return nil, err
	}
	for _, o := range objectives {
		report.SLOs = append(report.SLOs, slo.Compute(o.runbook, o.version, o.slo, runs[o.runbook], at))
	}
	return report, nil
}
