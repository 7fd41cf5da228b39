package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/starbook/starbook"
	sbruntime "github.com/starbook/starbook/runtime"
)

// printWaits lists pending approvals and signal waits, oldest first.
func printWaits(w io.Writer, waits []*starbook.PendingWait) error {
	if len(waits) == 0 {
		_, err := fmt.Fprintln(w, "Nothing is waiting for an approval or a signal.")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "EXECUTION\tRUNBOOK\tPOSITION\tWAITS FOR\tAPPROVERS\tRECEIVED\tSINCE\tDEADLINE\tMESSAGE")
	for _, p := range waits {
		what, approvers, received := "signal "+p.Name, "-", "-"
		if p.Kind == sbruntime.KindApproval {
			what = "approval"
			if p.Escalated {
				what += " (escalated)"
			}
			approvers = "anyone"
			if len(p.Approvers) > 0 {
				approvers = strings.Join(p.Approvers, ",")
			}
			var who []string
			for _, a := range p.Approvals {
				who = append(who, a.User)
			}
			received = fmt.Sprintf("%d/%d", len(p.Approvals), p.Required)
			if len(who) > 0 {
				received += " " + strings.Join(who, ",")
			}
		}
		deadline := "-"
		if p.Deadline != nil {
			deadline = formatTime(*p.Deadline)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.Execution, orDash(p.Runbook), p.Position, what,
			approvers, received, formatTime(p.Since), deadline, orDash(firstLine(p.Message, 60)))
	}
	return tw.Flush()
}

// printDecisions writes the decisions recorded by the approval events of a
// history, one line each: who, how, when and any comment.
func printDecisions(w io.Writer, events []*sbruntime.Event) error {
	first := true
	for _, ev := range events {
		if ev.Kind != sbruntime.KindApproval {
			continue
		}
		var r sbruntime.ApprovalResult
		if len(ev.Result) == 0 || json.Unmarshal(ev.Result, &r) != nil {
			if ev.Error == "" {
				continue
			}
		}
		if first {
			fmt.Fprintln(w, "\nApprovals:")
			first = false
		}
		outcome := "rejected"
		if r.Approved {
			outcome = "approved"
		}
		switch {
		case ev.Failed():
			fmt.Fprintf(w, "  %s  timed out: %s\n", ev.Position, firstLine(ev.Error, 100))
		case r.Decision == sbruntime.DecisionTimeout:
			fmt.Fprintf(w, "  %s  timed out at %s: %s (on_timeout)\n", ev.Position, formatTime(r.At), outcome)
		default:
			fmt.Fprintf(w, "  %s  %s by %s via %s at %s\n", ev.Position, outcome, strings.Join(r.By, ", "), r.Via, formatTime(r.At))
		}
		for _, d := range r.Decisions {
			line := fmt.Sprintf("       %-7s %s via %s at %s", d.Decision, d.User, d.Via, formatTime(d.At))
			if d.Comment != "" {
				line += fmt.Sprintf(" %q", d.Comment)
			}
			fmt.Fprintln(w, line)
		}
	}
	return nil
}
