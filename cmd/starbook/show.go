package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/starbook/starbook"
	"github.com/starbook/starbook/api"
	sbruntime "github.com/starbook/starbook/runtime"
)

// maxErrorWidth is how much of a step's error the timeline shows.
const maxErrorWidth = 80

var showCmd = func() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show ID",
		Short: "Show an execution and the timeline of its recorded steps",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			d, err := c.ExecutionDetail(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if asJSON {
				usage := d.Usage
				if usage == nil { // a node from before usage
					u := sbruntime.UsageOf(d.Execution, d.History)
					usage = &u
				}
				return printJSON(cmd.OutOrStdout(), struct {
					Execution *sbruntime.Execution `json:"execution"`
					History   []*sbruntime.Event   `json:"history"`
					Usage     *sbruntime.Usage     `json:"usage"`
				}{d.Execution, nonNil(d.History), usage})
			}
			// The libraries its version pinned; a node from before them,
			// or a version since deleted, has none to show.
			var libs map[string]string
			if b, err := c.RunbookVersion(cmd.Context(), d.Execution.Runbook, d.Execution.Version); err == nil {
				libs = b.Libraries
			}
			return printExecution(cmd.OutOrStdout(), d.Execution, d.History, d.Waits, libs, time.Now())
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, `print {"execution": {...}, "history": [...], "usage": {...}} as JSON`)
	return cmd
}()

func init() { rootCmd.AddCommand(showCmd) }

// printExecution writes a header about e, then its timeline as the web UI
// draws it (api.Timeline): steps and pending waits in position order, fan_out
// items grouped under their fan_out, undos under "compensation", retries,
// and a waterfall bar placing each step in the execution's time span.
func printExecution(w io.Writer, e *sbruntime.Execution, history []*sbruntime.Event, waits []*sbruntime.Wait, libraries map[string]string, now time.Time) error {
	row := func(k, v string) {
		// Continuation lines of a multi-line value (a Starlark backtrace)
		// line up under its first line; a key as wide as the column
		// ("Libraries:") keeps a space before its value.
		fmt.Fprintf(w, "%-9s %s\n", k+":", strings.ReplaceAll(v, "\n", "\n"+strings.Repeat(" ", 10)))
	}
	row("ID", e.ID)
	row("Runbook", e.Runbook+"@"+e.Version)
	if len(libraries) > 0 {
		row("Libraries", starbook.LibrariesString(libraries))
	}
	for _, m := range e.Migrations {
		by := ""
		if m.By != "" {
			by = " by " + m.By
		}
		row("Migrated", fmt.Sprintf("from %s to %s at %s%s", m.From, m.To, formatTime(m.At), by))
	}
	row("Status", string(e.Status))
	row("Trigger", triggerString(e.Trigger))
	if e.Trigger.Type == "runbook" && e.Trigger.Source != "" { // a child of run_runbook
		row("Parent", fmt.Sprintf("%s (its step %s)", e.Trigger.Source, e.Trigger.Attrs["position"]))
	}
	if children := childrenOf(history); len(children) > 0 {
		row("Children", strings.Join(children, ", "))
	}
	row("Created", formatTime(e.CreatedAt))
	ended, took := "-", "-"
	end := now
	if e.EndedAt != nil {
		end = *e.EndedAt
		ended = formatTime(*e.EndedAt)
		took = humanDuration(e.EndedAt.Sub(e.CreatedAt))
	}
	row("Ended", ended)
	row("Duration", took)
	if len(e.Input) > 0 {
		row("Input", compactJSON(e.Input))
	}
	if len(e.Result) > 0 {
		row("Result", compactJSON(e.Result))
	}
	if e.Error != "" {
		row("Error", strings.TrimRight(e.Error, "\n"))
	}
	u := sbruntime.UsageOf(e, history)
	row("Usage", fmt.Sprintf("%d steps, %d retries, %d HTTP calls, %d fan_out items, %s wall time",
		u.Steps, u.Retries, u.HTTPCalls, u.FanOutItems, humanDuration(time.Duration(u.WallTimeMS)*time.Millisecond)))

	rows := api.Timeline(e, history, waits, now)
	if len(rows) == 0 {
		_, err := fmt.Fprintln(w, "\nNo steps recorded.")
		return err
	}
	span := float64(end.Sub(e.CreatedAt)) / float64(time.Millisecond)
	for _, r := range rows {
		span = max(span, r.OffsetMS+r.DurationMS)
	}
	fmt.Fprintln(w)
	var table bytes.Buffer
	tw := tabwriter.NewWriter(&table, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "POSITION\tKIND\tNAME\tSTATE\tRETRIES\tDURATION\tWATERFALL\tERROR / DETAIL")
	group, compensation := "", false
	for _, r := range rows {
		if r.Compensation && !compensation {
			compensation = true
			fmt.Fprintln(tw, "--\tcompensation\t\t\t\t\t\t")
		}
		if g := r.Parent + "/" + strconv.Itoa(r.Item); r.Parent != "" && g != group {
			fmt.Fprintf(tw, "%s· item %d\t\t\t\t\t\t\t\n", strings.Repeat("  ", r.Depth), r.Item)
			group = g
		} else if r.Parent == "" {
			group = ""
		}
		retries := "-"
		if r.Retries > 0 {
			retries = strconv.Itoa(r.Retries)
		}
		note := r.Error
		if note == "" {
			note = r.Detail
		}
		fmt.Fprintf(tw, "%s%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			strings.Repeat("  ", r.Depth), r.Position, r.Kind, orDash(r.Name), r.State, retries,
			humanDuration(time.Duration(r.DurationMS*float64(time.Millisecond))),
			waterfall(r, span, waterfallWidth), orDash(firstLine(note, maxErrorWidth)))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, line := range strings.Split(strings.TrimRight(table.String(), "\n"), "\n") {
		if _, err := io.WriteString(w, strings.TrimRight(line, " ")+"\n"); err != nil {
			return err
		}
	}
	events := slices.Clone(history)
	slices.SortStableFunc(events, func(a, b *sbruntime.Event) int { return sbruntime.ComparePositions(a.Position, b.Position) })
	return printDecisions(w, events)
}

// waterfallWidth is the width of the waterfall column in characters.
const waterfallWidth = 24

// waterfall draws r's bar on a line of width cells spanning span ms: "=" for
// a step that ran, "x" for one that failed, "~" for a pending wait.
func waterfall(r api.TimelineRow, span float64, width int) string {
	if span <= 0 {
		span = 1
	}
	from := int(r.OffsetMS / span * float64(width))
	to := int((r.OffsetMS + r.DurationMS) / span * float64(width))
	from = min(max(from, 0), width-1)
	to = min(max(to, from+1), width)
	fill := "="
	switch r.State {
	case api.StateFailed:
		fill = "x"
	case api.StateWaiting:
		fill = "~"
	}
	return "|" + strings.Repeat(" ", from) + strings.Repeat(fill, to-from) + strings.Repeat(" ", width-to) + "|"
}

// humanDuration rounds d to a precision that suits its size.
func humanDuration(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(10 * time.Millisecond).String()
	default:
		return d.Round(time.Second).String()
	}
}

// firstLine returns the line of s worth one table cell (api.ErrorLine), cut
// to width characters.
func firstLine(s string, width int) string {
	s = api.ErrorLine(s)
	if r := []rune(s); len(r) > width {
		return string(r[:width-3]) + "..."
	}
	return s
}

// compactJSON returns b on one line; b as it is if it is not JSON.
func compactJSON(b []byte) string {
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return string(b)
	}
	return buf.String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// childrenOf lists the child executions history's run_runbook steps
// started, as "id (runbook)", in step order.
func childrenOf(history []*sbruntime.Event) []string {
	var out []string
	for _, ev := range history {
		if ev.Kind != sbruntime.KindCall || ev.Name != "run_runbook" || len(ev.Result) == 0 {
			continue
		}
		var child struct{ ID, Runbook string }
		if json.Unmarshal(ev.Result, &child) == nil && child.ID != "" {
			out = append(out, child.ID+" ("+child.Runbook+")")
		}
	}
	return out
}
