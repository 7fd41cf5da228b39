package api

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"time"

	sbruntime "github.com/starbook/starbook/runtime"
)

// TimelineRow is one step of an execution's timeline, as the web UI and
// `starbook show` draw it: recorded events and pending waits in position
// order, fan_out items under their fan_out, undos marked as compensation.
type TimelineRow struct {
	Position string `json:"position"`
	// Depth is the fan_out nesting: "4" is 0, "4/1/2" is 1.
	Depth int `json:"depth"`
	// Parent is the fan_out a row runs in, Item its item index ("" and -1 at the top).
	Parent string `json:"parent,omitempty"`
	Item   int    `json:"item"`
	Kind   string `json:"kind"`
	Name   string `json:"name,omitempty"`
	// State is ok, failed or waiting.
	State    string `json:"state"`
	Attempts int    `json:"attempts,omitempty"`
	// Retries is Attempts - 1: how often the step was tried again.
	Retries int `json:"retries,omitempty"`
	// Compensation marks an undo that ran because the execution failed.
	Compensation bool      `json:"compensation,omitempty"`
	Start        time.Time `json:"start"`
	// OffsetMS is Start from the execution's creation; DurationMS runs to the
	// row's end, or to now for a pending wait.
	OffsetMS   float64 `json:"offset_ms"`
	DurationMS float64 `json:"duration_ms"`
	Error      string  `json:"error,omitempty"`
	Where      string  `json:"where,omitempty"`
	// Detail says what a wait waits for (the approval's message, the
	// signal's name, the timer's deadline).
	Detail string `json:"detail,omitempty"`
	// Child is the execution a run_runbook row started or waits for.
	Child string `json:"child,omitempty"`
}

// Row states.
const (
	StateOK      = "ok"
	StateFailed  = "failed"
	StateWaiting = "waiting"
)

// Timeline builds e's timeline from its history and pending waits; now ends
// the bars of pending waits.
func Timeline(e *sbruntime.Execution, history []*sbruntime.Event, waits []*sbruntime.Wait, now time.Time) []TimelineRow {
	rows := make([]TimelineRow, 0, len(history)+len(waits))
	for _, ev := range history {
		r := newRow(e, ev.Position, ev.Kind, ev.Name, ev.StartedAt, ev.EndedAt, ev.Where)
		r.State, r.Attempts = StateOK, ev.Attempts
		if ev.Attempts > 1 {
			r.Retries = ev.Attempts - 1
		}
		if ev.Failed() {
			r.State, r.Error = StateFailed, ErrorLine(ev.Error)
		}
		r.Compensation = ev.Kind == sbruntime.KindUndo
		r.Detail = eventDetail(ev)
		r.Child = childOf(ev.Kind, ev.Name, ev.Result)
		rows = append(rows, r)
	}
	for _, w := range waits {
		if slices.ContainsFunc(history, func(ev *sbruntime.Event) bool { return ev.Position == w.Position }) {
			continue
		}
		r := newRow(e, w.Position, w.Kind, w.Name, w.Since, now, w.Where)
		r.State, r.Detail = StateWaiting, waitDetail(w)
		r.Child = childOf(w.Kind, w.Name, nil)
		rows = append(rows, r)
	}
	slices.SortStableFunc(rows, func(a, b TimelineRow) int { return sbruntime.ComparePositions(a.Position, b.Position) })
	return rows
}

func newRow(e *sbruntime.Execution, pos, kind, name string, start, end time.Time, where string) TimelineRow {
	r := TimelineRow{Position: pos, Kind: kind, Name: name, Start: start, Where: where, Item: -1}
	parts := strings.Split(pos, "/")
	r.Depth = len(parts) / 2
	if len(parts) >= 3 {
		r.Parent = strings.Join(parts[:len(parts)-2], "/")
		r.Item = atoi(parts[len(parts)-2])
	}
	if !start.IsZero() {
		r.OffsetMS = ms(start.Sub(e.CreatedAt))
		if !end.IsZero() && !end.Before(start) {
			r.DurationMS = ms(end.Sub(start))
		}
	}
	return r
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		return -1
	}
	return n
}

// eventDetail summarises what a recorded wait returned.
func eventDetail(ev *sbruntime.Event) string {
	switch ev.Kind {
	case sbruntime.KindApproval:
		var res sbruntime.ApprovalResult
		if json.Unmarshal(ev.Result, &res) == nil && res.Decision != "" {
			s := res.Decision
			if len(res.By) > 0 {
				s += " by " + strings.Join(res.By, ", ")
			}
			return s
		}
	case sbruntime.KindFanOut:
		var items []json.RawMessage
		if json.Unmarshal(ev.Result, &items) == nil && ev.Result != nil {
			return plural(len(items), "item")
		}
	}
	return ""
}

// childOf is the child execution of a run_runbook row: the one its step
// started (its result's id), or the one its wait (signal child.<id>)
// waits for; "" for another row.
func childOf(kind, name string, result json.RawMessage) string {
	switch {
	case kind == sbruntime.KindCall && name == "run_runbook":
		var child struct{ ID string }
		if json.Unmarshal(result, &child) == nil {
			return child.ID
		}
	case kind == sbruntime.KindSignal && strings.HasPrefix(name, "child."):
		return strings.TrimPrefix(name, "child.")
	}
	return ""
}

// waitDetail says what a pending wait waits for.
func waitDetail(w *sbruntime.Wait) string {
	switch w.Kind {
	case sbruntime.KindApproval:
		if req, err := sbruntime.ParseApprovalRequest(w); err == nil {
			return "approval: " + ErrorLine(req.Message)
		}
	case sbruntime.KindSignal:
		return "signal " + w.Name
	}
	if w.Deadline != nil {
		return "until " + w.Deadline.UTC().Format(time.RFC3339)
	}
	return ""
}

func plural(n int, what string) string {
	s := strconv.Itoa(n) + " " + what
	if n != 1 {
		s += "s"
	}
	return s
}

// ErrorLine is the line of an error worth one table cell: the first line,
// where a Starlark backtrace's "Traceback ..." gives way to its last line
// (the error itself), keeping any context before it.
func ErrorLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	line := lines[0]
	if before, _, ok := strings.Cut(line, "Traceback (most recent call last):"); ok {
		line = strings.TrimSpace(strings.TrimSpace(before) + " " + strings.TrimSpace(lines[len(lines)-1]))
	}
	return strings.TrimSpace(strings.ReplaceAll(line, "\t", " "))
}
