package starbook

import (
	"context"
	"time"
)

// Schedule is one cron trigger of a runbook's current version, as the web
// UI's Schedules page lists it.
type Schedule struct {
	Runbook string `json:"runbook"`
	Version string `json:"version"`
	Spec    string `json:"spec"`  // as declared, without a zone prefix
	Zone    string `json:"zone"`  // IANA name: the zone the schedule fires in
	Words   string `json:"words"` // the trigger in words (triggers.CronTrigger.Words)
	Where   string `json:"where,omitempty"`
	// Next is the next tick after the listing's time, in Zone; zero if the
	// schedule fires no more.
	Next time.Time `json:"next,omitzero"`
	// LastTick is the latest tick the leader fired or skipped for the
	// runbook (any of its schedules); zero before the first.
	LastTick time.Time `json:"last_tick,omitzero"`
	// Pause is the pause that stops the runbook's ticks, nil when it runs
	// (filled by a front end whose node pauses runbooks).
	Pause *PauseState `json:"pause,omitempty"`
}

// ScheduleService is the optional part of a Service that lists the cron
// triggers of every runbook.
type ScheduleService interface {
	// Schedules lists every cron trigger of every runbook's current
	// version, by runbook then declaration order, with next ticks after now.
	Schedules(ctx context.Context, now time.Time) ([]Schedule, error)
}
