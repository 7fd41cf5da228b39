package service

import (
	"context"
	"encoding/json"

	"github.com/starbook/starbook"
	sbruntime "github.com/starbook/starbook/runtime"
)

// Signal delivers a signal to an execution.
func (s *Service) Signal(ctx context.Context, id, name string, data json.RawMessage, by string) error {
	if childSignal(name) {
		return sbruntime.Inputf("signal %s: names starting with child. are the ends of child runbooks, sent by starbook alone", name)
	}
	return s.Store.Signal(ctx, id, name, data, by)
}

// Decide records a decision on a pending approval.
func (s *Service) Decide(ctx context.Context, id, position string, d sbruntime.Decision) (*sbruntime.ApprovalState, error) {
	return s.Store.Decide(ctx, id, position, d)
}

// Waits lists pending approvals and signal waits matching f, in execution
// id order, then position.
func (s *Service) Waits(ctx context.Context, f starbook.WaitFilter) ([]*starbook.PendingWait, error) {
	pending, err := s.Store.PendingWaitsPage(ctx, f.Limit, f.After)
	if err != nil {
		return nil, err
	}
	out := make([]*starbook.PendingWait, 0, len(pending))
	for _, p := range pending {
		w := p.Wait
		pw := &starbook.PendingWait{Execution: w.Execution, Runbook: p.Runbook, Position: w.Position, Kind: w.Kind,
			Since: w.Since, Deadline: w.Deadline, Approvals: p.Approvals}
		if w.Kind == sbruntime.KindSignal {
			pw.Name = w.Name
		}
		if r := p.Request; r != nil {
			pw.Message, pw.Approvers, pw.Channel, pw.Required, pw.Requester = r.Message, r.Approvers, r.Channel, r.Required, r.Requester
			pw.Escalated = r.Round > 0
		}
		out = append(out, pw)
	}
	return out, nil
}
