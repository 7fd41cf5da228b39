package triggers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/starbook/starbook"
	"github.com/starbook/starbook/downstream"
	sbruntime "github.com/starbook/starbook/runtime"
)

// Trigger types, as recorded in an execution's runtime.Trigger.Type.
const (
	TypeAlert   = "alert"
	TypeCron    = "cron"
	TypeWebhook = "webhook"
)

// Set is every trigger one runbook declares. It is stored with the runbook
// version (runtime.Bundle.Triggers) as JSON; [DecodeSet] reads it back.
type Set struct {
	Alerts   []*AlertTrigger   `json:"alerts,omitempty"`
	Crons    []*CronTrigger    `json:"crons,omitempty"`
	Webhooks []*WebhookTrigger `json:"webhooks,omitempty"`
	// Policy bounds the runs the triggers start; one per runbook.
	Policy Policy `json:"policy,omitzero"`
	// SLO is the runbook's objective, declared by slo(); nil for none.
	SLO *SLO `json:"slo,omitempty"`
	// Budget is what the runbook may spend (budget()); nil for no limit.
	Budget *Budget `json:"budget,omitempty"`
	// HTTPLimits protect the hosts the runbook calls (http_limit()), one
	// per host; each applies cluster-wide, to every runbook's calls.
	HTTPLimits []*downstream.Limit `json:"http_limits,omitempty"`
}

// Empty reports whether s declares no trigger (an SLO alone starts nothing).
func (s *Set) Empty() bool {
	return s == nil || len(s.Alerts)+len(s.Crons)+len(s.Webhooks) == 0
}

// DecodeSet decodes a stored Set and compiles its matchers and schedules.
// A nil or empty raw message is an empty set.
func DecodeSet(raw json.RawMessage) (*Set, error) {
	s := &Set{}
	if len(raw) == 0 || string(raw) == "null" {
		return s, nil
	}
	if err := json.Unmarshal(raw, s); err != nil {
		return nil, fmt.Errorf("decode triggers: %w", err)
	}
	for _, c := range s.Crons {
		if err := c.compile(); err != nil {
			return nil, fmt.Errorf("decode triggers: %w", err)
		}
	}
	return s, nil
}

// Runbook is one runbook's current version and what it declares.
type Runbook struct {
	Name    string
	Version string
	Since   time.Time // when this version became current: cron ticks before it never fire
	Set     *Set
	// Input checks an event before it starts a run of this version; nil
	// when the runbook declares no input schema.
	Input Validator
	// Pause, when set, is the pause that stops the runbook (its own or
	// every runbook's): its events start nothing and are kept as dead
	// letters (starbook.ReasonPaused).
	Pause *starbook.PauseState
}

// Validator checks a run's input (JSON; empty for none) against what a
// runbook accepts: nil, or an error saying where and why it refuses it.
type Validator interface {
	Validate(input json.RawMessage) error
}

// Index gives the triggers of every runbook's current version.
type Index interface {
	// Runbooks returns every runbook that declares a trigger. It reflects every
	// apply that completed before the call.
	Runbooks(ctx context.Context) ([]Runbook, error)
}

// Policy bounds a runbook's triggered runs: at most MaxConcurrent at once and
// at most Rate started per window. Runs over it are queued (pending, started
// oldest first when a slot frees) or recorded as dropped, per OnExcess.
// Only triggered runs are bounded and counted: a run started by hand or
// through the API bypasses the policy.
type Policy struct {
	MaxConcurrent int    `json:"max_concurrent,omitempty"`
	Rate          *Rate  `json:"rate,omitempty"`
	OnExcess      string `json:"on_excess,omitempty"` // OnExcessQueue (default) or OnExcessDrop
}

// What a Policy does with a run over its bounds.
const (
	OnExcessQueue = "queue"
	OnExcessDrop  = "drop"
)

// Limited reports whether p bounds anything.
func (p Policy) Limited() bool { return p.MaxConcurrent > 0 || p.Rate != nil }

// IsZero reports whether p is the zero policy (for JSON omitzero).
func (p Policy) IsZero() bool { return !p.Limited() && p.OnExcess == "" }

// Drop reports whether runs over the bounds are dropped rather than queued.
func (p Policy) Drop() bool { return p.OnExcess == OnExcessDrop }

// merge folds another trigger's policy into p: a runbook has one policy, so
// two triggers may not disagree on it.
func (p *Policy) merge(o Policy) error {
	if o.MaxConcurrent != 0 {
		if p.MaxConcurrent != 0 && p.MaxConcurrent != o.MaxConcurrent {
			return fmt.Errorf("max_concurrent=%d conflicts with max_concurrent=%d declared by another trigger of this runbook (a runbook has one policy)", o.MaxConcurrent, p.MaxConcurrent)
		}
		p.MaxConcurrent = o.MaxConcurrent
	}
	if o.Rate != nil {
		if p.Rate != nil && *p.Rate != *o.Rate {
			return fmt.Errorf("rate=%q conflicts with rate=%q declared by another trigger of this runbook (a runbook has one policy)", o.Rate, p.Rate)
		}
		p.Rate = o.Rate
	}
	if o.OnExcess != "" {
		if p.OnExcess != "" && p.OnExcess != o.OnExcess {
			return fmt.Errorf("on_excess=%q conflicts with on_excess=%q declared by another trigger of this runbook (a runbook has one policy)", o.OnExcess, p.OnExcess)
		}
		p.OnExcess = o.OnExcess
	}
	return nil
}

// Rate is at most Count runs started per Per.
type Rate struct {
	Count int           `json:"count"`
	Per   time.Duration `json:"per"`
}

func (r *Rate) String() string {
	switch r.Per {
	case time.Second:
		return fmt.Sprintf("%d/s", r.Count)
	case time.Minute:
		return fmt.Sprintf("%d/m", r.Count)
	case time.Hour:
		return fmt.Sprintf("%d/h", r.Count)
	case 24 * time.Hour:
		return fmt.Sprintf("%d/d", r.Count)
	}
	return fmt.Sprintf("%d/%s", r.Count, r.Per)
}

// ParseRate parses "N/s", "N/m", "N/h", "N/d" or "N/<duration>" ("20/30s").
func ParseRate(s string) (*Rate, error) {
	count, per, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok {
		return nil, fmt.Errorf("rate %q: want COUNT/PERIOD, such as \"10/m\" or \"100/h\"", s)
	}
	n, err := strconv.Atoi(strings.TrimSpace(count))
	if err != nil || n < 1 {
		return nil, fmt.Errorf("rate %q: the count must be a positive integer", s)
	}
	r := &Rate{Count: n}
	switch per = strings.TrimSpace(per); per {
	case "s", "sec", "second":
		r.Per = time.Second
	case "m", "min", "minute":
		r.Per = time.Minute
	case "h", "hour":
		r.Per = time.Hour
	case "d", "day":
		r.Per = 24 * time.Hour
	default:
		d, err := time.ParseDuration(per)
		if err != nil || d < time.Second {
			return nil, fmt.Errorf("rate %q: the period must be s, m, h, d or a duration of at least 1s", s)
		}
		r.Per = d
	}
	return r, nil
}

// Start asks a Starter for one execution of a runbook's current version.
type Start struct {
	Runbook string
	Version string
	Input   json.RawMessage
	Trigger sbruntime.Trigger
	// Dedup, when set, makes the start happen at most once per key while the
	// key lives: the key is stored in the same transaction as the execution.
	Dedup *Dedup
	// Policy bounds the runbook's triggered runs.
	Policy Policy
	// Fingerprint, for alerts, indexes the execution under its alert so that
	// the alert's resolution reaches it.
	Fingerprint string
	// Group, when set, coalesces the start into its alert group: if a run
	// of the group has not ended, Signal is delivered to it instead (and
	// Dedup marks the delivery); otherwise the start creates the run and
	// the group with it, unless Group.DeliverOnly.
	Group *Group
}

// AttrGroup is the runtime.Trigger attribute of a coalescing alert's run:
// its group's key segment (GroupKey), released when the run ends.
const AttrGroup = "group"

// Group is a coalescing alert trigger's group of one start.
type Group struct {
	Key         string          // the group's key segment (GroupKey)
	Signal      string          // SignalAlert or SignalResolved
	Data        json.RawMessage // the signal's data
	DeliverOnly bool            // a resolved alert: it starts nothing
}

// Signals a coalescing group's run receives.
const (
	SignalAlert    = "alert"    // a firing alert of the run's group
	SignalResolved = "resolved" // a resolved alert of the run's group
)

// MaxCoalescedSignals bounds the unconsumed signals of one name a group's
// run holds: an alert beyond it is not delivered and is kept as a dead
// letter (starbook.ReasonOverflow).
const MaxCoalescedSignals = 10_000

// GroupKey is the key segment of the group of an alert with labels under
// groupBy: a hash of the group's label names and values (a missing label
// counts as empty, as in Alertmanager).
func GroupKey(groupBy []string, labels map[string]string) string {
	h := sha256.New()
	for _, name := range groupBy {
		v := labels[name]
		fmt.Fprintf(h, "%d:%s=%d:%s;", len(name), name, len(v), v)
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// Dedup identifies a start: Scope/Key is unique for TTL.
type Dedup struct {
	Scope string // "alert", "webhook"
	Key   string // slash-separated, each segment safe in a key
	TTL   time.Duration
}

// Started is what became of one Start.
type Started struct {
	Runbook string `json:"runbook"`
	ID      string `json:"id"`     // the execution, new or (for a duplicate) the one the key started
	Status  string `json:"status"` // StatusStarted, StatusQueued, StatusDropped or StatusDuplicate
	Reason  string `json:"reason,omitempty"`
}

// Outcomes of a Start.
const (
	StatusStarted   = "started"   // runnable now
	StatusQueued    = "queued"    // pending until its runbook's policy admits it
	StatusDropped   = "dropped"   // recorded as cancelled: over the policy, on_excess="drop"
	StatusDuplicate = "duplicate" // its dedup key already started an execution
	StatusCoalesced = "coalesced" // delivered as a signal to its group's live run (ID)
	StatusOverflow  = "overflow"  // its group's run holds MaxCoalescedSignals: kept as a dead letter
	StatusNoRun     = "no_run"    // a DeliverOnly start whose group has no live run
)

// Starter durably creates executions.
type Starter interface {
	// Start creates one execution per start, in order, skipping those whose
	// dedup key exists. Every execution it reports is durable on return; on
	// error some may have been created, and a retry with the same dedup keys
	// creates each at most once.
	Start(ctx context.Context, starts []Start) ([]Started, error)
}

// Resolver delivers an alert's resolution to the runs it started.
type Resolver interface {
	// Resolve sends the signal "resolved" with data to every execution that
	// the alert with this fingerprint started and that has not ended, once
	// per execution and alert start; it returns the executions signalled.
	Resolve(ctx context.Context, fingerprint string, startsAt time.Time, data json.RawMessage) ([]string, error)
}
