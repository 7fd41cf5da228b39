package service

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/starbook/starbook"
	"github.com/starbook/starbook/cluster"
	sbruntime "github.com/starbook/starbook/runtime"
)

var _ starbook.MigrateService = (*Service)(nil)

// ApplyWith applies files as Apply does; with o.Migrate it then moves every
// in-flight execution of each applied runbook onto the applied version when
// its history replays on it (see migrate). Errors in files refuse the apply
// before anything is stored. With o.DryRun (only with o.Migrate) nothing is
// stored: no version, no re-pin, no audit record; the result says what the
// apply would do. The new versions are stored and current before any
// execution is read, so a run started meanwhile starts on them.
func (s *Service) ApplyWith(ctx context.Context, files map[string]string, o starbook.ApplyOptions) (*starbook.ApplyResult, error) {
	if o.DryRun && !o.Migrate {
		return nil, sbruntime.Inputf("dry_run needs migrate: a dry run reports what a migration would do")
	}
	if !o.Migrate {
		vs, err := s.Apply(ctx, files)
		if err != nil {
			return nil, err
		}
		return &starbook.ApplyResult{Runbooks: vs}, nil
	}
	res, err := s.check(ctx, files)
	if err != nil {
		return nil, err
	}
	out := &starbook.ApplyResult{DryRun: o.DryRun}
	if o.DryRun {
		unchanged := make([]bool, len(res.Bundles))
		for i, b := range res.Bundles {
			current, err := s.Store.CurrentVersion(ctx, b.Name)
			if err != nil && !errors.Is(err, sbruntime.ErrNotFound) {
				return nil, err
			}
			unchanged[i] = current == b.Version
		}
		out.Runbooks = versions(res, unchanged, time.Time{})
	} else {
		unchanged, created, err := s.Store.PutBundles(ctx, res.Bundles)
		if err != nil {
			return nil, err
		}
		out.Runbooks = versions(res, unchanged, created)
	}
	for _, b := range res.Bundles {
		rows, err := s.migrate(ctx, b, o)
		if err != nil {
			if o.DryRun {
				return nil, err
			}
			return nil, fmt.Errorf("%s@%s is stored and current, but migrating its executions stopped (apply --migrate again): %w",
				b.Name, b.Version, err)
		}
		out.Migration = append(out.Migration, rows...)
	}
	return out, nil
}

// migrate replays each in-flight execution of b's runbook pinned to another
// version against b, offline, and re-pins each one whose history replays
// (in a dry run, reports it). An owned execution is never re-pinned: its
// node runs the old program, which would go on writing history under the new
// pin. Ended executions are never read.
func (s *Service) migrate(ctx context.Context, b *sbruntime.Bundle, o starbook.ApplyOptions) ([]starbook.MigrationResult, error) {
	ids, err := s.Store.InFlight(ctx, b.Name, b.Version)
	if err != nil {
		return nil, err
	}
	var out []starbook.MigrationResult
	for _, id := range ids {
		row, err := s.migrateOne(ctx, b, id, o)
		switch {
		case errors.Is(err, sbruntime.ErrNotFound):
			continue // deleted since the listing
		case err != nil:
			return nil, err
		case row != nil:
			out = append(out, *row)
		}
	}
	return out, nil
}

// migrateOne migrates execution id onto b (see migrate); nil when it ended
// or was re-pinned to b since the listing.
func (s *Service) migrateOne(ctx context.Context, b *sbruntime.Bundle, id string, o starbook.ApplyOptions) (*starbook.MigrationResult, error) {
	st, err := s.Store.ReadMigration(ctx, id)
	if err != nil {
		return nil, err
	}
	e := st.Record
	if e.Status.Terminal() || e.Runbook != b.Name || e.Version == b.Version {
		return nil, nil
	}
	row := &starbook.MigrationResult{Execution: id, Runbook: e.Runbook, Status: st.Status, From: e.Version, To: b.Version}
	if st.Owner != "" {
		row.Result = starbook.MigrationRunning
		row.Reason = fmt.Sprintf("node %s runs it on %s: apply --migrate again once it waits", st.Owner, e.Version)
		return row, nil
	}
	rep, err := replayOn(ctx, b, e, st.History, st.Waits)
	if err != nil {
		return nil, err
	}
	if !rep.Compatible {
		m := rep.Mismatch()
		row.Result, row.Position, row.Where, row.Expected, row.Actual = starbook.MigrationIncompatible, m.Position, m.Where, m.Expected, m.Actual
		row.Reason = rep.Reason + "; it stays on " + e.Version
		return row, nil
	}
	row.Reason = rep.Reason
	if o.DryRun {
		row.Result = starbook.MigrationWouldMigrate
		return row, nil
	}
	if s.beforeRepin != nil {
		s.beforeRepin(ctx, id)
	}
	now := s.Now().UTC()
	next := *e
	next.Version, next.UpdatedAt = b.Version, now
	next.Migrations = append(slices.Clone(e.Migrations), sbruntime.Migration{From: e.Version, To: b.Version, At: now, By: o.By})
	actor := o.By
	if actor == "" {
		actor = "anonymous"
	}
	audit := &starbook.AuditRecord{Time: now, Actor: actor, Action: "execution.migrate", Runbook: e.Runbook, Execution: id,
		Detail: fmt.Sprintf("from %s to %s", e.Version, b.Version), Outcome: starbook.AuditOK}
	switch err := s.Store.Repin(ctx, st, &next, audit); {
	case errors.Is(err, cluster.ErrOwned):
		row.Result = starbook.MigrationRunning
		row.Reason = "a node claimed it while it was replayed: apply --migrate again once it waits"
	case errors.Is(err, cluster.ErrMoved):
		row.Result = starbook.MigrationMoved
		row.Reason = "it moved on while it was replayed: apply --migrate again"
	case err != nil:
		return nil, err
	default:
		row.Result = starbook.MigrationMigrated
	}
	return row, nil
}
