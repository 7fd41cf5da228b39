package starbook

import (
	"context"

	sbruntime "github.com/starbook/starbook/runtime"
)

// What apply --migrate did, or would do, to one in-flight execution.
const (
	// MigrationMigrated: its history replays on the new version and it was
	// re-pinned to it.
	MigrationMigrated = "migrated"
	// MigrationWouldMigrate: as migrated, in a dry run (nothing changed).
	MigrationWouldMigrate = "would_migrate"
	// MigrationIncompatible: its history does not replay on the new
	// version; it stays on its own.
	MigrationIncompatible = "incompatible"
	// MigrationRunning: a node runs it (an interpreter holds the old
	// program); it stays. Apply --migrate again once it parks.
	MigrationRunning = "running"
	// MigrationMoved: it moved on (a step, a signal, a claim) between its
	// replay and its re-pin; it stays. Apply --migrate again.
	MigrationMoved = "moved"
)

// ApplyOptions says what an apply does beyond storing the runbooks.
type ApplyOptions struct {
	// Migrate re-pins every in-flight execution of each applied runbook
	// whose history replays on the applied version.
	Migrate bool
	// DryRun stores nothing and re-pins nothing: the result says what the
	// apply would do. Only with Migrate.
	DryRun bool
	// By is who applies, recorded on each re-pin.
	By string
}

// ApplyResult is what an apply with options stored and migrated.
type ApplyResult struct {
	// Runbooks are the applied versions (in a dry run: those it would store).
	Runbooks []RunbookVersion `json:"runbooks"`
	DryRun   bool             `json:"dry_run,omitempty"`
	// Migration has one entry per in-flight execution of an applied
	// runbook that ran another version, oldest first.
	Migration []MigrationResult `json:"migration,omitempty"`
}

// MigrationResult is what apply --migrate did, or would do, to one
// execution that had not ended.
type MigrationResult struct {
	Execution string           `json:"id"`
	Runbook   string           `json:"runbook"`
	Status    sbruntime.Status `json:"status"` // as read
	From      string           `json:"from"`   // the version it ran
	To        string           `json:"to"`     // the applied version
	Result    string           `json:"result"` // migrated, would_migrate, incompatible, running or moved
	// Position, Where (file:line), Expected (what the history holds) and
	// Actual (what the new version does) name the first divergence of an
	// incompatible one.
	Position string `json:"position,omitempty"`
	Where    string `json:"where,omitempty"`
	Expected string `json:"expected,omitempty"`
	Actual   string `json:"actual,omitempty"`
	// Reason says why, in a sentence, with what to do next.
	Reason string `json:"reason,omitempty"`
}

// MigrateService is the optional part of a Service that applies runbooks
// with options: apply --migrate [--dry-run].
type MigrateService interface {
	// ApplyWith applies files as Apply does, then with o.Migrate re-pins
	// every in-flight execution of the applied runbooks that replays on the
	// applied version. Errors in files refuse the whole apply before
	// anything is stored; with o.DryRun nothing is stored at all.
	ApplyWith(ctx context.Context, files map[string]string, o ApplyOptions) (*ApplyResult, error)
}
