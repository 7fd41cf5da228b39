package triggers

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // time zones work on hosts without a zoneinfo database

	"github.com/robfig/cron/v3"

	sbruntime "github.com/starbook/starbook/runtime"
)

// CronTrigger starts its runbook at every tick of a cron schedule, in a time
// zone (UTC unless TZ or a CRON_TZ= prefix says otherwise).
type CronTrigger struct {
	Spec       string `json:"spec"`
	TZ         string `json:"tz,omitempty"`
	CatchUp    string `json:"catch_up,omitempty"`     // CatchUpLast (default), CatchUpSkip or CatchUpAll
	MaxCatchUp int    `json:"max_catch_up,omitempty"` // ticks fired late under CatchUpAll (default DefaultMaxCatchUp)
	Policy     Policy `json:"policy,omitzero"`
	Where      string `json:"where,omitempty"`

	sched cron.Schedule
}

// Catch-up policies: what happens to ticks missed while no leader ran.
const (
	CatchUpLast = "last" // fire the latest missed tick once
	CatchUpSkip = "skip" // fire none of them
	CatchUpAll  = "all"  // fire each, oldest first, at most MaxCatchUp (the latest ones)

	DefaultMaxCatchUp = 10
	// OnTime is how late a tick may fire and still count as on time rather
	// than missed: a leader fail-over takes a few seconds.
	OnTime = time.Minute
	// CronTickTTL is how long a fired tick's key is kept; the last fired tick
	// of each runbook is kept for good.
	CronTickTTL = 7 * 24 * time.Hour
)

// NewCron validates and compiles a cron trigger. spec is a robfig/cron
// expression with five fields or a descriptor (@hourly, @every 10m), and may
// start with CRON_TZ=<zone>; tz names an IANA zone. A spec with no zone runs
// in UTC.
func NewCron(spec, tz, catchUp string, maxCatchUp int) (*CronTrigger, error) {
	c := &CronTrigger{Spec: strings.TrimSpace(spec), TZ: tz, CatchUp: catchUp, MaxCatchUp: maxCatchUp}
	switch catchUp {
	case "", CatchUpLast, CatchUpSkip, CatchUpAll:
	default:
		return nil, fmt.Errorf("catch_up=%q: want \"last\", \"skip\" or \"all\"", catchUp)
	}
	if maxCatchUp < 0 {
		return nil, fmt.Errorf("max_catch_up=%d: want a positive number", maxCatchUp)
	}
	if maxCatchUp > 0 && catchUp != CatchUpAll {
		return nil, fmt.Errorf("max_catch_up only applies to catch_up=\"all\"")
	}
	if err := c.compile(); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *CronTrigger) compile() error {
	spec := c.Spec
	hasZone := strings.HasPrefix(spec, "CRON_TZ=") || strings.HasPrefix(spec, "TZ=")
	switch {
	case hasZone && c.TZ != "":
		return fmt.Errorf("cron %q: give the time zone either as tz= or as a CRON_TZ= prefix, not both", c.Spec)
	case c.TZ != "":
		if _, err := time.LoadLocation(c.TZ); err != nil || c.TZ == "Local" {
			return fmt.Errorf("unknown time zone %q: want an IANA name such as \"Europe/Paris\" or \"UTC\"", c.TZ)
		}
		spec = "CRON_TZ=" + c.TZ + " " + spec
	case hasZone:
		zone, rest, ok := strings.Cut(spec[strings.Index(spec, "=")+1:], " ")
		if !ok || strings.TrimSpace(rest) == "" {
			return fmt.Errorf("cron %q: want CRON_TZ=<zone> followed by a schedule", c.Spec)
		}
		if _, err := time.LoadLocation(zone); err != nil || zone == "Local" {
			return fmt.Errorf("cron %q: unknown time zone %q", c.Spec, zone)
		}
	default:
		spec = "CRON_TZ=UTC " + spec
	}
	sched, err := parseCron(spec)
	if err != nil {
		return fmt.Errorf("cron %q: %w", c.Spec, err)
	}
	if sched.Next(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)).IsZero() &&
		sched.Next(time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)).IsZero() {
		return fmt.Errorf("cron %q: the schedule never fires", c.Spec)
	}
	c.sched = sched
	return nil
}

// parseCron parses a standard spec; robfig/cron panics on some malformed
// input, which must not take the node down.
func parseCron(spec string) (s cron.Schedule, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("malformed schedule")
		}
	}()
	return cron.ParseStandard(spec)
}

// Next returns the first tick strictly after t, or the zero time if none.
func (c *CronTrigger) Next(t time.Time) time.Time { return c.sched.Next(t) }

func (c *CronTrigger) catchUp() string {
	if c.CatchUp == "" {
		return CatchUpLast
	}
	return c.CatchUp
}

// maxLookBack bounds how far back missed ticks are looked for.
const maxLookBack = 366 * 24 * time.Hour

// Due is what a cron trigger has to do at some moment.
type Due struct {
	Fire    []Tick    // ticks to fire, oldest first
	Skipped int       // missed ticks the catch-up policy passes over
	Newest  time.Time // the latest tick passed, fired or not; zero if none
}

// Due returns what to do about the ticks in (after, now] under the trigger's
// catch-up policy. A tick no more than OnTime late is on time and always
// fires; later ones were missed and follow CatchUp.
func (c *CronTrigger) Due(after, now time.Time) Due {
	if after.Before(now.Add(-maxLookBack)) {
		after = now.Add(-maxLookBack)
	}
	var d Due
	var onTime, missed []time.Time
	for t := c.sched.Next(after); !t.IsZero() && !t.After(now); t = c.sched.Next(t) {
		if now.Sub(t) <= OnTime {
			onTime = append(onTime, t)
		} else {
			missed = append(missed, t)
		}
		d.Newest = t
	}
	keep := 0
	switch c.catchUp() {
	case CatchUpLast:
		if len(onTime) == 0 && len(missed) > 0 {
			keep = 1
		}
	case CatchUpAll:
		keep = c.MaxCatchUp
		if keep == 0 {
			keep = DefaultMaxCatchUp
		}
	}
	keep = min(keep, len(missed))
	for _, t := range missed[len(missed)-keep:] {
		d.Fire = append(d.Fire, Tick{At: t, Late: true})
	}
	for _, t := range onTime {
		d.Fire = append(d.Fire, Tick{At: t})
	}
	d.Skipped = len(missed) - keep
	return d
}

// Tick is one scheduled time of a cron trigger.
type Tick struct {
	At   time.Time
	Late bool // fired after an outage, under the catch-up policy
}

// CronEvent is the input of a run a cron tick starts.
type CronEvent struct {
	Tick     time.Time `json:"tick"`
	Schedule string    `json:"schedule"`
	TZ       string    `json:"tz,omitempty"`
	Late     bool      `json:"late"`
}

// Clock is the time a Scheduler sees.
type Clock interface {
	Now() time.Time
	// NewTimer returns a timer that fires once d has passed.
	NewTimer(d time.Duration) Timer
}

// Timer is a Clock's one-shot timer.
type Timer interface {
	C() <-chan time.Time
	Stop() bool
}

// RealClock is the wall clock.
type RealClock struct{}

func (RealClock) Now() time.Time                 { return time.Now() }
func (RealClock) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

type realTimer struct{ t *time.Timer }

func (t realTimer) C() <-chan time.Time { return t.t.C }
func (t realTimer) Stop() bool          { return t.t.Stop() }

// CronStore records cron ticks durably.
type CronStore interface {
	// LastTick returns the latest tick fired or skipped for runbook, or the
	// zero time if none.
	LastTick(ctx context.Context, runbook string) (time.Time, error)
	// FireTick creates s's execution for tick at of runbook unless that tick
	// was already fired, and records at as the runbook's last tick, in one
	// transaction. It returns nil Started if the tick had been fired.
	FireTick(ctx context.Context, at time.Time, s Start) (*Started, error)
	// SkipTo records at as the runbook's last tick without firing it.
	SkipTo(ctx context.Context, runbook string, at time.Time) error
}

// Scheduler fires the cron triggers of every runbook. Run it on the leader
// only; two schedulers racing still fire each tick once (the store's
// transaction decides).
type Scheduler struct {
	Clock  Clock
	Store  CronStore
	Index  Index
	Logger *slog.Logger
	// Changed is signalled when runbooks may have changed; the scheduler then
	// reloads them from Index.
	Changed <-chan struct{}
	// RetryAfter is the pause after a failing store (default 1s).
	RetryAfter time.Duration
	// DeadLetters keeps the ticks of a paused runbook (Runbook.Pause),
	// which fire nothing; nil keeps none (they are skipped all the same).
	DeadLetters DeadLetterer
}

// Run fires ticks until ctx is done.
func (s *Scheduler) Run(ctx context.Context) error {
	log := s.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	retry := s.RetryAfter
	if retry <= 0 {
		retry = time.Second
	}
	last := map[string]time.Time{} // handled up to, per runbook
	var runbooks []Runbook
	reload := true
	for ctx.Err() == nil {
		wait, err := func() (time.Duration, error) {
			if reload {
				rbs, err := s.Index.Runbooks(ctx)
				if err != nil {
					return 0, fmt.Errorf("load runbooks: %w", err)
				}
				runbooks, reload = rbs, false
			}
			var next time.Time
			for _, rb := range runbooks {
				if rb.Set == nil || len(rb.Set.Crons) == 0 {
					continue
				}
				n, err := s.runbook(ctx, rb, last, log)
				if err != nil {
					return 0, err
				}
				if !n.IsZero() && (next.IsZero() || n.Before(next)) {
					next = n
				}
			}
			if next.IsZero() {
				return time.Hour, nil
			}
			return max(next.Sub(s.Clock.Now()), 0), nil
		}()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			log.Warn("cron", "err", err)
			wait, reload = retry, true
		}
		t := s.Clock.NewTimer(wait)
		select {
		case <-ctx.Done():
		case <-t.C():
		case <-s.Changed:
		}
		t.Stop()
		// Read the runbooks again before any tick fires: a pause set a
		// moment ago must stop it. The index answers from its cache after
		// one small read.
		reload = true
	}
	return nil
}

// CronSource is the dead-letter source of a cron tick: "cron:" and the
// schedule.
const CronSource = "cron:"

// skipPaused keeps the tick at of paused rb as a dead letter (once per
// tick, across a fail-over) and records it as handled: a paused runbook's
// ticks are not caught up once it resumes.
func (s *Scheduler) skipPaused(ctx context.Context, rb Runbook, at time.Time, spec string, input json.RawMessage) error {
	if s.DeadLetters != nil {
		u := paused(rb, CronSource+spec, "paused/cron/"+rb.Name+"/"+strconv.FormatInt(at.Unix(), 10), input)
		if err := s.DeadLetters.DeadLetter(ctx, []Unstarted{*u}); err != nil {
			return fmt.Errorf("runbook %s: keep paused tick %s: %w", rb.Name, at.UTC().Format(time.RFC3339), err)
		}
	}
	if err := s.Store.SkipTo(ctx, rb.Name, at); err != nil {
		return fmt.Errorf("runbook %s: record paused tick: %w", rb.Name, err)
	}
	return nil
}

// runbook fires rb's due ticks and returns its next tick.
func (s *Scheduler) runbook(ctx context.Context, rb Runbook, last map[string]time.Time, log *slog.Logger) (time.Time, error) {
	after, ok := last[rb.Name]
	if !ok {
		stored, err := s.Store.LastTick(ctx, rb.Name)
		if err != nil {
			return time.Time{}, fmt.Errorf("runbook %s: last tick: %w", rb.Name, err)
		}
		after = stored
		last[rb.Name] = stored
	}
	if after.Before(rb.Since) {
		after = rb.Since // ticks from before this version existed never fire
	}
	now := s.Clock.Now()
	type due struct {
		Tick
		c *CronTrigger
	}
	var ticks []due
	seen := map[int64]bool{}
	var newest time.Time
	for _, c := range rb.Set.Crons {
		d := c.Due(after, now)
		if d.Skipped > 0 {
			log.Warn("cron ticks missed while no leader ran were skipped", "runbook", rb.Name,
				"schedule", c.Spec, "skipped", d.Skipped, "catch_up", c.catchUp())
		}
		if d.Newest.After(newest) {
			newest = d.Newest
		}
		for _, t := range d.Fire {
			if !seen[t.At.Unix()] { // two schedules of one runbook at one instant fire once
				seen[t.At.Unix()] = true
				ticks = append(ticks, due{t, c})
			}
		}
	}
	slices.SortFunc(ticks, func(a, b due) int { return a.At.Compare(b.At) })
	for _, t := range ticks {
		input, _ := json.Marshal(CronEvent{Tick: t.At.UTC(), Schedule: t.c.Spec, TZ: t.c.TZ, Late: t.Late})
		if rb.Pause != nil {
			if err := s.skipPaused(ctx, rb, t.At, t.c.Spec, input); err != nil {
				return time.Time{}, err
			}
			last[rb.Name] = t.At
			log.Info("cron tick of a paused runbook: kept as a dead letter", "runbook", rb.Name, "tick", t.At.UTC())
			continue
		}
		attrs := map[string]string{"tick": t.At.UTC().Format(time.RFC3339)}
		if t.Late {
			attrs["late"] = "true"
		}
		st, err := s.Store.FireTick(ctx, t.At, Start{Runbook: rb.Name, Version: rb.Version, Input: input,
			Trigger: sbruntime.Trigger{Type: TypeCron, Source: t.c.Spec, Attrs: attrs}, Policy: rb.Set.Policy})
		if err != nil {
			return time.Time{}, fmt.Errorf("runbook %s: fire tick %s: %w", rb.Name, t.At.UTC().Format(time.RFC3339), err)
		}
		last[rb.Name] = t.At
		if st != nil {
			log.Info("cron tick fired", "runbook", rb.Name, "tick", t.At.UTC(), "late", t.Late,
				"execution", st.ID, "status", st.Status)
		}
	}
	// The latest tick passed, fired or not, is handled.
	if newest.After(last[rb.Name]) {
		if err := s.Store.SkipTo(ctx, rb.Name, newest); err != nil {
			return time.Time{}, fmt.Errorf("runbook %s: record skipped ticks: %w", rb.Name, err)
		}
		last[rb.Name] = newest
	}
	var next time.Time
	from := now // every tick up to now is handled
	for _, c := range rb.Set.Crons {
		if n := c.Next(from); !n.IsZero() && (next.IsZero() || n.Before(next)) {
			next = n
		}
	}
	return next, nil
}
