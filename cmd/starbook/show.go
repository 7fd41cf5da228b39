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
			e, history, err := c.Execution(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), struct {
					Execution *sbruntime.Execution `json:"execution"`
					History   []*sbruntime.Event   `json:"history"`
				}{e, nonNil(history)})
			}
			return printExecution(cmd.OutOrStdout(), e, history)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, `print {"execution": {...}, "history": [...]} as JSON`)
	return cmd
}()

func init() { rootCmd.AddCommand(showCmd) }

// printExecution writes a header about e, then its history as a table in
// position order, fan_out branches indented by depth.
func printExecution(w io.Writer, e *sbruntime.Execution, history []*sbruntime.Event) error {
	row := func(k, v string) {
		// Continuation lines of a multi-line value (a Starlark backtrace)
		// line up under its first line.
		fmt.Fprintf(w, "%-10s%s\n", k+":", strings.ReplaceAll(v, "\n", "\n"+strings.Repeat(" ", 10)))
	}
	row("ID", e.ID)
	row("Runbook", e.Runbook+"@"+e.Version)
	row("Status", string(e.Status))
	row("Trigger", triggerString(e.Trigger))
	row("Created", formatTime(e.CreatedAt))
	ended, took := "-", "-"
	if e.EndedAt != nil {
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

	if len(history) == 0 {
		_, err := fmt.Fprintln(w, "\nNo steps recorded.")
		return err
	}
	events := slices.Clone(history)
	slices.SortStableFunc(events, func(a, b *sbruntime.Event) int {
		return sbruntime.ComparePositions(a.Position, b.Position)
	})
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "POSITION\tKIND\tNAME\tSTATUS\tATTEMPTS\tDURATION\tERROR")
	for _, ev := range events {
		status := "ok"
		if ev.Failed() {
			status = "failed"
		}
		attempts := "-"
		if ev.Attempts > 0 {
			attempts = strconv.Itoa(ev.Attempts)
		}
		took := "-"
		if !ev.StartedAt.IsZero() && !ev.EndedAt.IsZero() {
			took = humanDuration(ev.EndedAt.Sub(ev.StartedAt))
		}
		fmt.Fprintf(tw, "%s%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			strings.Repeat("  ", positionDepth(ev.Position)), ev.Position,
			ev.Kind, orDash(ev.Name), status, attempts, took, orDash(firstLine(ev.Error, maxErrorWidth)))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return printDecisions(w, events)
}

// positionDepth is the fan_out nesting of a position: "4" is 0, "4/0/2" is 1,
// "4/0/2/1/3" is 2.
func positionDepth(p string) int { return (strings.Count(p, "/") + 1) / 2 }

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

// firstLine returns the first line of s, cut to width characters, as one
// table cell. A Starlark backtrace starts with a line that says nothing, so
// its last line, the error itself, is used instead.
func firstLine(s string, width int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	s = lines[0]
	if strings.HasPrefix(s, "Traceback (most recent call last):") {
		s = lines[len(lines)-1]
	}
	s = strings.TrimSpace(strings.ReplaceAll(s, "\t", " "))
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
