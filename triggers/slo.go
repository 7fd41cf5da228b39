package triggers

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// SLO is a runbook's service level objective, declared at top level by
// slo(success=, latency=, window=) and stored with the version in its Set.
// Over Window, at least Success of the runbook's ended executions must
// complete, and each Latency percentile of their durations must stay at or
// under its Max.
type SLO struct {
	Success float64         // target ratio of successful ended executions, in (0, 1)
	Latency []LatencyTarget // by increasing quantile; may be empty
	Window  time.Duration   // the rolling window the objective is judged over
	Where   string          // file:line:col of the declaration
}

// LatencyTarget is one latency objective: the Quantile (0.95 for "p95") of
// execution durations at most Max.
type LatencyTarget struct {
	Name     string // as declared: "p95", "p99.9"
	Quantile float64
	Max      time.Duration
}

// SLO window bounds: a window shorter than a day judges too few runs, one
// longer than a year outlives any retention.
const (
	MinSLOWindow     = time.Hour
	MaxSLOWindow     = 366 * 24 * time.Hour
	DefaultSLOWindow = 28 * 24 * time.Hour
)

var percentileName = regexp.MustCompile(`^p([1-9][0-9]?(\.[0-9]{1,3})?)$`)

// ParsePercentile reads a latency key such as "p50", "p95" or "p99.9" and
// returns its quantile (0.5, 0.95, 0.999).
func ParsePercentile(name string) (float64, error) {
	m := percentileName.FindStringSubmatch(name)
	if m == nil {
		return 0, fmt.Errorf("latency key %q: want a percentile such as \"p50\", \"p95\" or \"p99.9\"", name)
	}
	q, _ := strconv.ParseFloat(m[1]+"e-2", 64) // 0.999 exactly, not 99.9/100
	return q, nil
}

// NewSLO validates an objective: success in (0, 1), each latency key a
// percentile with a positive duration, window between MinSLOWindow and
// MaxSLOWindow (0: DefaultSLOWindow).
func NewSLO(success float64, latency map[string]time.Duration, window time.Duration) (*SLO, error) {
	if math.IsNaN(success) || success <= 0 || success >= 1 {
		return nil, fmt.Errorf("success=%v: want a ratio strictly between 0 and 1, such as 0.99", success)
	}
	if window == 0 {
		window = DefaultSLOWindow
	}
	if window < MinSLOWindow || window > MaxSLOWindow {
		return nil, fmt.Errorf("window=%q: want from %s to %s, such as \"28d\"",
			FormatDuration(window), FormatDuration(MinSLOWindow), FormatDuration(MaxSLOWindow))
	}
	s := &SLO{Success: success, Window: window}
	for name, max := range latency {
		q, err := ParsePercentile(name)
		if err != nil {
			return nil, err
		}
		if max <= 0 {
			return nil, fmt.Errorf("latency %s=%q: want a positive duration such as \"10m\"", name, FormatDuration(max))
		}
		s.Latency = append(s.Latency, LatencyTarget{Name: name, Quantile: q, Max: max})
	}
	slices.SortFunc(s.Latency, func(a, b LatencyTarget) int {
		if a.Quantile == b.Quantile {
			return strings.Compare(a.Name, b.Name)
		}
		if a.Quantile < b.Quantile {
			return -1
		}
		return 1
	})
	for i := 1; i < len(s.Latency); i++ {
		if s.Latency[i].Quantile == s.Latency[i-1].Quantile {
			return nil, fmt.Errorf("latency keys %q and %q name the same percentile", s.Latency[i-1].Name, s.Latency[i].Name)
		}
	}
	return s, nil
}

// SetSLO records the runbook's objective declared at where; a runbook
// declares at most one.
func (s *Set) SetSLO(o *SLO, where string) error {
	if s.SLO != nil {
		return fmt.Errorf("an slo() is already declared at %s: a runbook has one objective", s.SLO.Where)
	}
	o.Where = where
	s.SLO = o
	return nil
}

// sloJSON is how an SLO is stored: as declared, durations as "28d", "10m".
type sloJSON struct {
	Success float64           `json:"success"`
	Latency map[string]string `json:"latency,omitempty"`
	Window  string            `json:"window"`
	Where   string            `json:"where,omitempty"`
}

// MarshalJSON writes {"success", "latency": {"p95": "10m"}, "window": "28d", "where"}.
func (s *SLO) MarshalJSON() ([]byte, error) {
	j := sloJSON{Success: s.Success, Window: FormatDuration(s.Window), Where: s.Where}
	if len(s.Latency) > 0 {
		j.Latency = map[string]string{}
		for _, l := range s.Latency {
			j.Latency[l.Name] = FormatDuration(l.Max)
		}
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads what MarshalJSON writes and validates it as NewSLO does.
func (s *SLO) UnmarshalJSON(b []byte) error {
	var j sloJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	window, err := ParseDuration(j.Window)
	if err != nil {
		return fmt.Errorf("slo window: %w", err)
	}
	latency := map[string]time.Duration{}
	for name, v := range j.Latency {
		if latency[name], err = ParseDuration(v); err != nil {
			return fmt.Errorf("slo latency %s: %w", name, err)
		}
	}
	o, err := NewSLO(j.Success, latency, window)
	if err != nil {
		return fmt.Errorf("slo: %w", err)
	}
	*s = *o
	s.Where = j.Where
	return nil
}

// ParseDuration reads a Go duration ("10m", "1h30m") or whole days with an
// optional Go duration after them ("28d", "1d12h"): time.ParseDuration has no
// days.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	var d time.Duration
	if days, rest, ok := strings.Cut(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 || n > 100_000 {
			return 0, fmt.Errorf("invalid duration %q (want e.g. \"10m\", \"6h\", \"28d\")", s)
		}
		d = time.Duration(n) * 24 * time.Hour
		if s = rest; s == "" {
			return d, nil
		}
	}
	r, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q (want e.g. \"10m\", \"6h\", \"28d\")", s)
	}
	return d + r, nil
}

// FormatDuration writes d as ParseDuration reads it, shortest first: "28d",
// "1d12h", "10m", "1h30m", "1.5s".
func FormatDuration(d time.Duration) string {
	if d <= 0 {
		return d.String()
	}
	const day = 24 * time.Hour
	out := ""
	if d >= day {
		out = strconv.FormatInt(int64(d/day), 10) + "d"
		if d %= day; d == 0 {
			return out
		}
	}
	s := d.String()
	// "1h0m0s" -> "1h", "10m0s" -> "10m"; not "1m0.5s", whose 0s is a number.
	for _, zero := range []string{"0s", "0m"} {
		if strings.HasSuffix(s, zero) && len(s) > 2 && !strings.ContainsAny(s[len(s)-3:len(s)-2], "0123456789.") {
			s = s[:len(s)-2]
		}
	}
	return out + s
}
