package service

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/starbook/starbook"
	"github.com/starbook/starbook/cluster"
	sbruntime "github.com/starbook/starbook/runtime"
	"github.com/starbook/starbook/triggers"
)

var (
	_ starbook.PauseService  = (*Service)(nil)
	_ starbook.ReplayService = (*Service)(nil)
)

// Pause sets or clears the pause of runbook (starbook.AllRunbooks: of
// every runbook), with its audit record in the same txn (who: req.By; why:
// req.Reason). A pause's Until must be in the future; an unknown runbook
// wraps ErrNotFound; nothing is stored on either. With req.CancelRunning
// the runbook's executions that have not ended (every runbook's, for all)
// are cancelled once the pause is stored, and listed in the state.
func (s *Service) Pause(ctx context.Context, runbook string, req starbook.PauseRequest) (*starbook.PauseState, error) {
	if runbook != starbook.AllRunbooks {
		if err := checkRunbookName(runbook); err != nil {
			return nil, err
		}
	}
	by := req.By
	if by == "" {
		by = "anonymous"
	}
	now := s.Now().UTC()
	if !req.Paused {
		if req.CancelRunning || !req.Until.IsZero() {
			return nil, sbruntime.Inputf("resume %s: until and cancel_running go with a pause, not a resume", runbook)
		}
		audit := &starbook.AuditRecord{Time: now, Actor: by, Action: "runbook.resume", Runbook: runbook,
			Detail: req.Reason, Outcome: starbook.AuditOK}
		if _, err := s.Store.DeletePause(ctx, runbook, audit); err != nil {
			return nil, err
		}
		return s.PauseState(ctx, runbook)
	}
	if !req.Until.IsZero() && !req.Until.After(now) {
		return nil, sbruntime.Inputf("pause %s: until %s is not in the future (now %s)", runbook,
			req.Until.UTC().Format(time.RFC3339), now.Format(time.RFC3339))
	}
	if len(req.Reason) > maxPauseReason {
		return nil, sbruntime.Inputf("pause %s: the reason is %d bytes, over %d", runbook, len(req.Reason), maxPauseReason)
	}
	st := &starbook.PauseState{Runbook: runbook, Paused: true, Reason: req.Reason, By: by, At: now}
	if !req.Until.IsZero() {
		st.Until = req.Until.UTC()
	}
	detail := req.Reason
	if !st.Until.IsZero() {
		detail = strings.TrimSpace(detail + " (until " + st.Until.Format(time.RFC3339) + ")")
	}
	if req.CancelRunning {
		detail = strings.TrimSpace(detail + " (cancel running)")
	}
	audit := &starbook.AuditRecord{Time: now, Actor: by, Action: "runbook.pause", Runbook: runbook, Detail: detail,
		Outcome: starbook.AuditOK}
	if err := s.Store.PutPause(ctx, st, audit); err != nil {
		return nil, err
	}
	if req.CancelRunning {
		cancelled, err := s.cancelRunning(ctx, runbook)
		st.Cancelled = cancelled
		if err != nil {
			return st, fmt.Errorf("pause %s: paused, but cancel its runs: %w", runbook, err)
		}
	}
	return st, nil
}

// maxPauseReason bounds a pause's reason.
const maxPauseReason = 1024

// checkRunbookName refuses a name no runbook can have, before any read.
func checkRunbookName(name string) error {
	if !sbruntime.ValidRunbookName(name) {
		return sbruntime.Inputf("invalid runbook name %q: want 1-100 lower-case letters, digits, '-' or '_', or %q for every runbook",
			name, starbook.AllRunbooks)
	}
	return nil
}

// cancelRunning cancels the executions of runbook (every runbook's, for
// AllRunbooks) that have not ended, and returns their ids.
func (s *Service) cancelRunning(ctx context.Context, runbook string) ([]string, error) {
	names := []string{runbook}
	if runbook == starbook.AllRunbooks {
		current, err := s.Store.CurrentVersions(ctx)
		if err != nil {
			return nil, err
		}
		names = names[:0]
		for name := range current {
			names = append(names, name)
		}
		sort.Strings(names)
	}
	var cancelled []string
	for _, name := range names {
		ids, err := s.Store.InFlight(ctx, name, "")
		if err != nil {
			return cancelled, err
		}
		for _, id := range ids {
			e, err := s.Cancel(ctx, id)
			switch {
			case errors.Is(err, sbruntime.ErrNotFound):
				// Gone meanwhile.
			case err != nil:
				return cancelled, fmt.Errorf("cancel %s: %w", id, err)
			case e.Status == sbruntime.StatusCancelled || !e.Status.Terminal():
				cancelled = append(cancelled, id)
			}
		}
	}
	return cancelled, nil
}

// PauseState returns the pause that stops runbook now (its own, or every
// runbook's), or a state with Paused false.
func (s *Service) PauseState(ctx context.Context, runbook string) (*starbook.PauseState, error) {
	if runbook != starbook.AllRunbooks {
		if err := checkRunbookName(runbook); err != nil {
			return nil, err
		}
	}
	p, err := s.Store.PauseOf(ctx, runbook)
	if err != nil {
		return nil, err
	}
	if !p.Paused && runbook != starbook.AllRunbooks {
		if _, err := s.Store.CurrentVersion(ctx, runbook); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// Pauses lists the pauses in force, every runbook's first.
func (s *Service) Pauses(ctx context.Context) ([]starbook.PauseState, error) {
	set, err := s.Store.Pauses(ctx)
	if err != nil {
		return nil, err
	}
	now := s.Now()
	out := make([]starbook.PauseState, 0, len(set))
	for _, p := range set {
		if p.Active(now) {
			out = append(out, p)
		}
	}
	return out, nil
}

// refusePaused returns a *starbook.PausedError when runbook is paused: a
// manual start, a redrive; force (admin) lets it through.
func (s *Service) refusePaused(ctx context.Context, runbook string, force bool) error {
	if force {
		return nil
	}
	p, err := s.Store.PauseOf(ctx, runbook)
	if err != nil {
		return err
	}
	if p.Paused {
		return &starbook.PausedError{State: *p}
	}
	return nil
}

// pauseHolder is who holds the pause of runbook ("" when it is not paused),
// recorded on a start forced past it.
func (s *Service) pauseHolder(ctx context.Context, runbook string) (string, error) {
	p, err := s.Store.PauseOf(ctx, runbook)
	if err != nil || !p.Paused {
		return "", err
	}
	return p.By, nil
}

// ReplayDeadLetter dispatches trigger event dead letter id again, once
// (starbook.ReplayService): the runs start and the dead letter goes in one
// txn, and a second replay finds the first one's runs.
func (s *Service) ReplayDeadLetter(ctx context.Context, id string, r starbook.ReplayRequest) (*starbook.ReplayResult, error) {
	if err := s.Storage.Admit(); err != nil {
		return nil, err
	}
	dl, err := s.Store.EventDeadLetter(ctx, id)
	if err != nil {
		return nil, err
	}
	tr := s.replayTriggers()
	runbooks, err := tr.Index().Runbooks(ctx)
	if err != nil {
		return nil, err
	}
	starts, err := triggers.ReplayStarts(dl, runbooks, r.Force)
	if err != nil {
		return nil, err
	}
	for i := range starts {
		if r.By != "" {
			starts[i].Trigger.Attrs["replayed_by"] = r.By
		}
	}
	started, err := tr.Replay(ctx, dl, starts)
	if err != nil {
		return nil, err
	}
	res := &starbook.ReplayResult{DeadLetter: id}
	var dups []string
	for _, st := range started {
		if st.Status == triggers.StatusDuplicate {
			dups = append(dups, st.ID)
			continue
		}
		res.Executions = append(res.Executions, starbook.ReplayedRun{Runbook: st.Runbook, ID: st.ID, Status: st.Status})
	}
	if len(res.Executions) == 0 {
		return nil, sbruntime.Conflictf("dead letter %s was replayed already: it started %s", id, strings.Join(dups, ", "))
	}
	return res, nil
}

// replayTriggers is the trigger store the service replays dead letters
// through, made on first use (Node is set after New); its runs are claimed
// by the node's workers in their create txn, as the hooks' are.
func (s *Service) replayTriggers() *cluster.Triggers {
	s.replayOnce.Do(func() {
		s.replayStore = cluster.NewTriggers(s.Store, s.Now, nil)
		if r := s.runner(); r != nil {
			s.replayStore.RunOn(r)
		}
	})
	return s.replayStore
}
