package service

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"github.com/starbook/starbook/builtins"
	"github.com/starbook/starbook/cluster"
	sbruntime "github.com/starbook/starbook/runtime"
)

var _ builtins.RunbookStarter = (*Service)(nil)

// StartChild starts a child runbook for run_runbook (builtins.RunbookStarter):
// as Start does, its trigger naming the parent; a step that started one
// already gets it back (cluster.Store.StartChild).
func (s *Service) StartChild(ctx context.Context, c builtins.ChildRequest) (string, error) {
	if err := s.Storage.Admit(); err != nil {
		return "", err
	}
	now := s.Now().UTC()
	e, err := s.Store.StartChild(ctx, s.runner(), cluster.ChildStart{Runbook: c.Runbook, Parent: c.Parent,
		Position: c.Position, Attempt: c.Attempt}, func(version string) *sbruntime.Execution {
		return &sbruntime.Execution{ID: s.NewID(), Runbook: c.Runbook, Version: version, Status: sbruntime.StatusPending,
			Trigger: sbruntime.Trigger{Type: cluster.TriggerRunbook, Source: c.Parent, Attrs: map[string]string{
				cluster.AttrPosition: c.Position, cluster.AttrDepth: strconv.Itoa(c.Depth)}},
			Input: c.Input, CreatedAt: now, UpdatedAt: now, TraceParent: cluster.TraceParent(ctx)}
	})
	if err != nil {
		return "", err
	}
	return e.ID, nil
}

// cancelChildren cancels the children parent's steps started that have not
// ended, and theirs.
func (s *Service) cancelChildren(ctx context.Context, parent string) error {
	ids, err := s.Store.Children(ctx, parent)
	if err != nil {
		return err
	}
	var errs []error
	for _, id := range ids {
		if _, err := s.Cancel(ctx, id); err != nil && !errors.Is(err, sbruntime.ErrNotFound) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// childSignal reports a signal name that only a child's end may send.
func childSignal(name string) bool { return strings.HasPrefix(name, cluster.ChildSignalPrefix) }
