package starbook

import (
	"context"
	"fmt"
	"hash/fnv"
	"math"
	"strconv"
	"strings"
	"time"

	sbruntime "github.com/starbook/starbook/runtime"
)

// Rollout states. Only an active rollout splits new starts; the others are
// how it ended, kept until the next rollout of the runbook replaces them.
const (
	RolloutActive     = "active"
	RolloutPromoted   = "promoted"    // the canary became the current version
	RolloutRolledBack = "rolled_back" // the leader ended it: too many canary runs failed
	RolloutAborted    = "aborted"     // a person ended it; current stays stable
)

// Rollout transitions, as audited (action "rollout.<transition>") and counted
// (starbook_rollout_transitions_total).
const (
	TransitionStarted    = "started"
	TransitionPromoted   = "promoted"
	TransitionRolledBack = "rolled_back"
	TransitionAborted    = "aborted"
)

// CanarySpec is what `apply --canary` asks for: the share of new starts the
// new version takes, how many of its runs must end before it is promoted,
// and the failure rate that rolls it back.
type CanarySpec struct {
	Percent        float64 `json:"percent"`          // 0 < Percent < 100
	Runs           int     `json:"canary_runs"`      // >= 1
	MaxFailureRate float64 `json:"max_failure_rate"` // in [0, 1)
}

// Default canary bounds, when apply sets only the percentage.
const (
	DefaultCanaryRuns     = 20
	DefaultMaxFailureRate = 0.05
)

// Validate returns an *sbruntime.InputError naming the first bad field.
func (c CanarySpec) Validate() error {
	switch {
	case math.IsNaN(c.Percent) || c.Percent <= 0 || c.Percent >= 100:
		return sbruntime.Inputf("canary percentage %v: want more than 0 and less than 100", c.Percent)
	case c.Runs < 1:
		return sbruntime.Inputf("canary runs %d: want at least 1", c.Runs)
	case math.IsNaN(c.MaxFailureRate) || c.MaxFailureRate < 0 || c.MaxFailureRate >= 1:
		return sbruntime.Inputf("max failure rate %v: want at least 0 and less than 1", c.MaxFailureRate)
	}
	return nil
}

// ParsePercent reads a canary share written "10%" or "10".
func ParsePercent(s string) (float64, error) {
	t := strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(s), "%"))
	p, err := strconv.ParseFloat(t, 64)
	if err != nil || math.IsNaN(p) || math.IsInf(p, 0) {
		return 0, sbruntime.Inputf("canary percentage %q: want a number such as 10%% or 10", s)
	}
	if p <= 0 || p >= 100 {
		return 0, sbruntime.Inputf("canary percentage %q: want more than 0%% and less than 100%%", s)
	}
	return p, nil
}

// Rollout is a runbook's canary rollout as stored (one per runbook, the
// latest), with the counts of its canary runs when read for status.
type Rollout struct {
	Runbook        string     `json:"runbook"`
	Stable         string     `json:"stable"` // the current version while the rollout is active
	Canary         string     `json:"canary"`
	Percent        float64    `json:"percent"`
	CanaryRuns     int        `json:"canary_runs"`
	MaxFailureRate float64    `json:"max_failure_rate"`
	State          string     `json:"state"` // RolloutActive, RolloutPromoted, ...
	StartedAt      time.Time  `json:"started_at"`
	By             string     `json:"by"` // who started it
	EndedAt        *time.Time `json:"ended_at,omitempty"`
	EndedBy        string     `json:"ended_by,omitempty"` // a person, or "leader"
	Reason         string     `json:"reason,omitempty"`   // why it ended
	// Counts of the canary's runs created since StartedAt, filled when read
	// for status (never stored). Failed counts failed (compensation_failed
	// included) and stuck runs; cancelled runs count nowhere.
	Counts *RolloutCounts `json:"counts,omitempty"`
}

// RolloutCounts are the canary's runs since its rollout started.
type RolloutCounts struct {
	Started  int `json:"started"`
	Ended    int `json:"ended"` // completed + failed
	Failed   int `json:"failed"`
	InFlight int `json:"in_flight"`
}

// Active reports whether r splits new starts.
func (r *Rollout) Active() bool { return r != nil && r.State == RolloutActive }

// Pick returns the version a new execution with this id runs: the canary
// when the id's hash falls in the canary's share, else the stable version.
// The same id always picks the same version.
func (r *Rollout) Pick(id string) string {
	if !r.Active() {
		return r.Stable
	}
	if InCanary(id, r.Percent) {
		return r.Canary
	}
	return r.Stable
}

// InCanary reports whether an execution id falls in a canary share of
// percent: FNV-1a of the id, modulo 10000, below percent in hundredths.
func InCanary(id string, percent float64) bool {
	h := fnv.New64a()
	_, _ = h.Write([]byte(id))
	return h.Sum64()%10000 < uint64(math.Round(percent*100))
}

// Decide returns the transition the counts call for, "" for none yet: rolled
// back as soon as more runs failed than the bound allows of
// max(CanaryRuns, Ended); promoted once CanaryRuns runs ended within it.
func (r *Rollout) Decide(c RolloutCounts) (transition, reason string) {
	allowed := int(math.Floor(r.MaxFailureRate * float64(max(r.CanaryRuns, c.Ended))))
	if c.Failed > allowed {
		return TransitionRolledBack, fmt.Sprintf("%d of %d canary runs failed, over the bound of %d (max failure rate %v)",
			c.Failed, c.Ended, allowed, r.MaxFailureRate)
	}
	if c.Ended >= r.CanaryRuns {
		return TransitionPromoted, fmt.Sprintf("%d canary runs ended, %d failed (max failure rate %v)", c.Ended, c.Failed, r.MaxFailureRate)
	}
	return "", ""
}

// RolloutService is the optional part of a Service that runs canary
// rollouts. Errors wrapping sbruntime.ErrConflict (another transition won,
// a rollout is already active) become 409.
type RolloutService interface {
	// ApplyCanary stores the runbooks in files as Apply does, but a changed
	// runbook's new version only takes spec's share of new starts, in a
	// rollout started by by; a runbook without a current version is simply
	// applied. Nothing is stored on a bad spec.
	ApplyCanary(ctx context.Context, files map[string]string, spec CanarySpec, by string) ([]RunbookVersion, error)
	// Rollout returns the runbook's latest rollout with its counts.
	Rollout(ctx context.Context, runbook string) (*Rollout, error)
	// PromoteRollout makes the active rollout's canary the current version.
	PromoteRollout(ctx context.Context, runbook, by string) (*Rollout, error)
	// AbortRollout ends the active rollout; current stays the stable version.
	AbortRollout(ctx context.Context, runbook, by string) (*Rollout, error)
}
