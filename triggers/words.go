package triggers

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Words describes every trigger of s in words, one line each, alerts first,
// then schedules, then webhooks: "alert: alertname=KubePodCrashLooping, at
// most 5 at once", "cron: 0 3 * * * (Europe/Paris)", "webhook:
// deploy-finished (HMAC signature)". A set with no trigger gives none: the
// runbook starts only by hand.
func (s *Set) Words() []string {
	if s == nil {
		return nil
	}
	var out []string
	for _, a := range s.Alerts {
		out = append(out, a.Words())
	}
	for _, c := range s.Crons {
		out = append(out, c.Words())
	}
	for _, w := range s.Webhooks {
		out = append(out, w.Words())
	}
	return out
}

// Words describes the alert trigger: its matchers, grouping and policy.
func (t *AlertTrigger) Words() string {
	ms := make([]string, len(t.Matchers))
	for i, m := range t.Matchers {
		ms[i] = m.words()
	}
	parts := []string{"alert: " + strings.Join(ms, ", ")}
	if len(t.GroupBy) > 0 {
		g := "grouped by " + strings.Join(t.GroupBy, ", ")
		if t.Coalesce {
			g += ", one run per group"
		}
		parts = append(parts, g)
	}
	return strings.Join(append(parts, t.Policy.words()...), ", ")
}

// words is the matcher as a person writes it: the value unquoted unless
// quotes are needed to read it back (empty, spaces, commas, quotes).
func (m *Matcher) words() string {
	v := m.Value
	if v == "" || strings.ContainsAny(v, " \t\n,\"'\\") {
		v = strconv.Quote(v)
	}
	return m.Name + string(m.Type) + v
}

// Words describes the cron trigger: its schedule without a zone prefix, the
// zone, and its catch-up policy when it is not the default.
func (c *CronTrigger) Words() string {
	spec, zone := c.specAndZone()
	parts := []string{fmt.Sprintf("cron: %s (%s)", spec, zone)}
	switch c.catchUp() {
	case CatchUpSkip:
		parts = append(parts, "missed ticks skipped")
	case CatchUpAll:
		n := c.MaxCatchUp
		if n == 0 {
			n = DefaultMaxCatchUp
		}
		parts = append(parts, fmt.Sprintf("missed ticks all fired (at most %d)", n))
	}
	return strings.Join(append(parts, c.Policy.words()...), ", ")
}

// Words describes the webhook trigger: its name and how senders prove who
// they are.
func (w *WebhookTrigger) Words() string {
	auth := "bearer token"
	if w.SecretEnv != "" {
		auth = "HMAC signature"
	}
	return strings.Join(append([]string{fmt.Sprintf("webhook: %s (%s)", w.Name, auth)}, w.Policy.words()...), ", ")
}

// words describes a policy's bounds: "at most 5 at once", "at most 10 per
// hour", "excess dropped".
func (p Policy) words() []string {
	var out []string
	if p.MaxConcurrent > 0 {
		out = append(out, fmt.Sprintf("at most %d at once", p.MaxConcurrent))
	}
	if p.Rate != nil {
		out = append(out, fmt.Sprintf("at most %d per %s", p.Rate.Count, perWords(p.Rate.Per)))
	}
	if p.Drop() {
		out = append(out, "excess dropped")
	}
	return out
}

func perWords(d time.Duration) string {
	switch d {
	case time.Second:
		return "second"
	case time.Minute:
		return "minute"
	case time.Hour:
		return "hour"
	case 24 * time.Hour:
		return "day"
	}
	return d.String()
}

// Schedule is the trigger's cron expression without a CRON_TZ=/TZ= prefix.
func (c *CronTrigger) Schedule() string {
	spec, _ := c.specAndZone()
	return spec
}

// Zone is the IANA name of the time zone the trigger fires in ("UTC" unless
// tz= or a CRON_TZ=/TZ= prefix names another).
func (c *CronTrigger) Zone() string {
	_, zone := c.specAndZone()
	return zone
}

// specAndZone splits the trigger's spec into the schedule and its zone.
func (c *CronTrigger) specAndZone() (spec, zone string) {
	spec = c.Spec
	if strings.HasPrefix(spec, "CRON_TZ=") || strings.HasPrefix(spec, "TZ=") {
		z, rest, _ := strings.Cut(spec[strings.Index(spec, "=")+1:], " ")
		return strings.TrimSpace(rest), z
	}
	if c.TZ != "" {
		return spec, c.TZ
	}
	return spec, "UTC"
}

// NextFires returns the trigger's next n ticks strictly after t, in its time
// zone, fewer if the schedule stops firing.
func (c *CronTrigger) NextFires(t time.Time, n int) []time.Time {
	loc, err := time.LoadLocation(c.Zone())
	if err != nil {
		loc = time.UTC // compile checked the zone; this cannot happen
	}
	var out []time.Time
	for next := c.Next(t); !next.IsZero() && len(out) < n; next = c.Next(next) {
		out = append(out, next.In(loc))
	}
	return out
}
