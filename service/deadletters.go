package service

import (
	"context"
	"fmt"
	"slices"

	"github.com/starbook/starbook"
	"github.com/starbook/starbook/cluster"
	"github.com/starbook/starbook/runbooktest"
	sbruntime "github.com/starbook/starbook/runtime"
)

var _ starbook.DeadLetterService = (*Service)(nil)

// DeadLetters lists the dead letters matching f, newest first, a page of
// f.Limit after f.After (see starbook.DeadLetterService).
func (s *Service) DeadLetters(ctx context.Context, f starbook.DeadLetterFilter) ([]*starbook.DeadLetter, error) {
	return s.Store.DeadLetters(ctx, f)
}

// AckDeadLetter removes dead letter id.
func (s *Service) AckDeadLetter(ctx context.Context, id string) (*starbook.DeadLetter, error) {
	return s.Store.AckDeadLetter(ctx, id)
}

// maxRedriveError bounds the previous attempt's error an attempt boundary
// keeps (the dead letter and the history keep the rest).
const maxRedriveError = 4096

// Redrive runs ended execution id again: from its failed step as a new
// attempt of the same execution, or from the start as a new execution
// linked both ways. With version current, a redrive from the failed step
// first replays the history the new attempt keeps against the runbook's
// current version, offline, and is refused unless it is compatible. It
// checks everything before it writes, and writes in one txn fenced on the
// record as read: a concurrent redrive of the same execution fails with a
// conflict. Durable on return.
func (s *Service) Redrive(ctx context.Context, id string, r starbook.RedriveRequest) (*starbook.RedriveResult, *sbruntime.Execution, error) {
	if r.From == "" {
		r.From = starbook.RedriveFromFailed
	}
	if r.Version == "" {
		r.Version = starbook.RedriveVersionPin
	}
	if r.From != starbook.RedriveFromFailed && r.From != starbook.RedriveFromStart {
		return nil, nil, sbruntime.Inputf("from %q: want failed or start", r.From)
	}
	if r.Version != starbook.RedriveVersionPin && r.Version != starbook.RedriveVersionLast {
		return nil, nil, sbruntime.Inputf("version %q: want pinned or current", r.Version)
	}
	if !r.DryRun { // a redrive runs again: a new start, refused while the store is full
		if err := s.Storage.Admit(); err != nil {
			return nil, nil, err
		}
	}
	st, err := s.Store.ReadRedrive(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	e := st.Execution
	if err := s.refusePaused(ctx, e.Runbook, r.Force || r.DryRun); err != nil {
		return nil, nil, err
	}
	switch {
	case st.Owner != "" || st.Runnable || !e.Status.Terminal():
		status := e.Status
		if st.Owner != "" && !status.Terminal() {
			status = sbruntime.StatusRunning
		}
		return nil, nil, sbruntime.Conflictf("execution %s is %s: only an ended execution can be redriven", id, status)
	case len(e.RedrivenAs) > 0:
		// Its redrive carries it on: redriving it again would run it twice.
		return nil, nil, sbruntime.Conflictf("execution %s was redriven from the start as %s already: redrive that one",
			id, e.RedrivenAs[len(e.RedrivenAs)-1])
	case e.Status == sbruntime.StatusCompleted:
		return nil, nil, sbruntime.Conflictf("execution %s completed: there is nothing to redrive", id)
	case r.From == starbook.RedriveFromFailed && sbruntime.Compensated(st.History):
		return nil, nil, sbruntime.Conflictf("execution %s ran its compensations, which undid its steps: it can only be redriven --from start", id)
	}
	version := e.Version
	if r.Version == starbook.RedriveVersionLast {
		if version, err = s.Store.CurrentVersion(ctx, e.Runbook); err != nil {
			return nil, nil, err
		}
	}
	if version != e.Version {
		// The input met its own version's schema when it started (a
		// version's schema never changes, so a pinned redrive needs no
		// check); another version may declare another schema.
		if err := s.Store.ValidateInput(ctx, e.Runbook, version, e.Input); err != nil {
			return nil, nil, err
		}
	}
	res := &starbook.RedriveResult{Execution: id, From: r.From, Version: version, DryRun: r.DryRun}
	now := s.Now().UTC()
	if r.From == starbook.RedriveFromStart {
		fresh := &sbruntime.Execution{ID: s.NewID(), Runbook: e.Runbook, Version: version, Status: sbruntime.StatusPending,
			Trigger: sbruntime.Trigger{Type: "manual", Source: r.By, Attrs: map[string]string{"redrive_of": id}},
			Input:   e.Input, CreatedAt: now, UpdatedAt: now, RedriveOf: id, TraceParent: cluster.TraceParent(ctx)}
		if r.DryRun {
			return res, e, nil
		}
		old := *e
		old.RedrivenAs = append(slices.Clone(e.RedrivenAs), fresh.ID)
		if err := s.Store.RedriveStart(ctx, st, &old, fresh); err != nil {
			return nil, nil, err
		}
		res.New = fresh.ID
		return res, fresh, nil
	}

	next := *e
	prev := sbruntime.Redrive{Attempt: e.Attempt() + 1, At: now, By: r.By, Status: e.Status, Error: e.Error}
	if len(prev.Error) > maxRedriveError {
		prev.Error = prev.Error[:maxRedriveError] + "..."
	}
	if version != e.Version {
		prev.Version = e.Version
	}
	next.Redrives = append(slices.Clone(e.Redrives), prev)
	res.Attempt = next.Attempt()
	res.Kept = len(sbruntime.Effective(st.History, res.Attempt))
	res.Rerun = sbruntime.Rerun(st.History, res.Attempt)
	if version != e.Version {
		verdict, err := s.replays(ctx, &next, version, st.History)
		if err != nil {
			return nil, nil, err
		}
		res.Replay = verdict
	}
	if r.DryRun {
		return res, e, nil
	}
	next.Version, next.Status, next.Error, next.Result = version, sbruntime.StatusPending, "", nil
	next.EndedAt, next.UpdatedAt, next.Node = nil, now, ""
	if err := s.Store.RedriveFailed(ctx, st, &next); err != nil {
		return nil, nil, err
	}
	return res, &next, nil
}

// replays replays the history that next's attempt keeps against version of
// its runbook, offline (as starbook replay does), and returns the verdict;
// an incompatible version is a conflict naming the first divergence.
func (s *Service) replays(ctx context.Context, next *sbruntime.Execution, version string, history []*sbruntime.Event) (string, error) {
	b, _, err := s.Store.Bundle(ctx, next.Runbook, version)
	if err != nil {
		return "", err
	}
	rep, err := replayOn(ctx, b, next, history, nil)
	if err != nil {
		return "", err
	}
	if !rep.Compatible {
		return "", sbruntime.Conflictf("version %s of %s does not replay execution %s: %s; redrive it --from start, or --version pinned",
			version, next.Runbook, next.ID, rep.Reason)
	}
	return rep.Reason, nil
}

// replayOn replays e's history, and its pending waits, against bundle b
// offline, as starbook replay does: no step runs and nothing is recorded.
func replayOn(ctx context.Context, b *sbruntime.Bundle, e *sbruntime.Execution, history []*sbruntime.Event,
	waits []*sbruntime.Wait) (*runbooktest.ReplayReport, error) {
	rep, err := runbooktest.Replay(ctx, b, e, history, waits, sbruntime.Limits{})
	if err != nil {
		return nil, fmt.Errorf("replay %s on %s@%s: %w", e.ID, b.Name, b.Version, err)
	}
	return rep, nil
}
