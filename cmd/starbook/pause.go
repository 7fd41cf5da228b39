package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/starbook/starbook"
	"github.com/starbook/starbook/api"
)

var pauseCmd = func() *cobra.Command {
	var (
		all           bool
		reason        string
		until         string
		cancelRunning bool
		asJSON        bool
	)
	cmd := &cobra.Command{
		Use:   "pause [RUNBOOK | --all] [--reason TEXT] [--until 2h|TIME] [--cancel-running]",
		Short: "Stop a runbook's (or every runbook's) triggers from starting runs, until resumed",
		Long: `Pause stops runbook RUNBOOK (--all: every runbook) from starting runs: its
alerts, webhooks and cron ticks start nothing and are kept as dead letters
with reason "paused" (replay them with "starbook dlq replay ID"), and a start
by hand is refused unless forced (starbook run --force, admins only). Runs in
flight go on; --cancel-running cancels them. --until resumes it by itself
after a duration (2h, 90m) or at a time (RFC 3339, e.g. 2026-01-02T15:04:05Z);
the cluster's leader does it, whichever node that is then.

Without RUNBOOK or --all it lists the pauses in force.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			runbook, err := pauseTarget(args, all)
			if err != nil {
				return err
			}
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			if runbook == "" {
				if cmd.Flags().Changed("reason") || until != "" || cancelRunning {
					return fmt.Errorf("name a RUNBOOK or --all to pause")
				}
				list, err := c.Pauses(cmd.Context())
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(cmd.OutOrStdout(), api.PausesResponse{Pauses: nonNil(list)})
				}
				if len(list) == 0 {
					_, err := fmt.Fprintln(cmd.OutOrStdout(), "no runbook is paused")
					return err
				}
				return printPauses(cmd.OutOrStdout(), list)
			}
			req := starbook.PauseRequest{Paused: true, Reason: reason, CancelRunning: cancelRunning}
			if until != "" {
				if req.Until, err = parseUntil(until, time.Now()); err != nil {
					return err
				}
			}
			st, err := c.Pause(cmd.Context(), runbook, req)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), st)
			}
			out := cmd.OutOrStdout()
			fmt.Fprintln(out, describePause(st))
			for _, id := range st.Cancelled {
				fmt.Fprintf(out, "cancelled %s\n", id)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&all, "all", false, "pause every runbook")
	fl.StringVar(&reason, "reason", "", "why (shown to whoever is refused, and kept in the audit log)")
	fl.StringVar(&until, "until", "", "resume by itself after this duration (2h) or at this RFC 3339 time")
	fl.BoolVar(&cancelRunning, "cancel-running", false, "also cancel the runs in flight")
	fl.BoolVar(&asJSON, "json", false, "print the pause state as JSON")
	return cmd
}()

var resumeCmd = func() *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "resume RUNBOOK | --all",
		Short: "Lift a runbook's pause (or the pause of every runbook)",
		Long: `Resume lifts the pause of RUNBOOK (--all: the pause of every runbook, which
leaves each runbook's own pause in place). Events kept as dead letters while
it was paused stay there: replay them with "starbook dlq replay ID".`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			runbook, err := pauseTarget(args, all)
			if err != nil {
				return err
			}
			if runbook == "" {
				return fmt.Errorf("name a RUNBOOK or --all to resume")
			}
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			st, err := c.Pause(cmd.Context(), runbook, starbook.PauseRequest{})
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), describePause(st))
			return err
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "lift the pause of every runbook")
	return cmd
}()

func init() {
	rootCmd.AddCommand(pauseCmd)
	rootCmd.AddCommand(resumeCmd)
}

// pauseTarget is the runbook a pause or resume names: RUNBOOK, or
// starbook.AllRunbooks with --all; "" for neither.
func pauseTarget(args []string, all bool) (string, error) {
	switch {
	case all && len(args) > 0:
		return "", fmt.Errorf("give a RUNBOOK or --all, not both")
	case all:
		return starbook.AllRunbooks, nil
	case len(args) == 1:
		if args[0] == starbook.AllRunbooks {
			return starbook.AllRunbooks, nil
		}
		return args[0], nil
	}
	return "", nil
}

// parseUntil reads --until: a duration from now (2h, 90m) or an RFC 3339
// time; either must be in the future.
func parseUntil(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		if d <= 0 {
			return time.Time{}, fmt.Errorf("invalid --until %s: want a positive duration, such as 2h", s)
		}
		return now.Add(d).Truncate(time.Second), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("invalid --until %q: want a duration (2h, 90m) or an RFC 3339 time (2026-01-02T15:04:05Z)", s)
	}
	if !t.After(now) {
		return time.Time{}, fmt.Errorf("invalid --until %s: it is in the past (now %s)", s, now.UTC().Format(time.RFC3339))
	}
	return t, nil
}

// describePause says in one line whether a runbook is paused, by whom,
// since when, why and until when.
func describePause(st *starbook.PauseState) string {
	name := st.Runbook
	if name == starbook.AllRunbooks {
		name = "every runbook"
	}
	if !st.Paused {
		return name + " is not paused"
	}
	s := name + " paused"
	if st.All {
		s += " (every runbook is)"
	}
	if st.By != "" {
		s += " by " + st.By
	}
	if !st.At.IsZero() {
		s += " since " + formatTime(st.At)
	}
	if !st.Until.IsZero() {
		s += " until " + formatTime(st.Until)
	}
	if st.Reason != "" {
		s += ": " + st.Reason
	}
	return s
}

func printPauses(w io.Writer, list []starbook.PauseState) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RUNBOOK\tBY\tSINCE\tUNTIL\tREASON")
	for _, p := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", p.Runbook, orDash(p.By), formatTime(p.At), formatTime(p.Until), orDash(firstLine(p.Reason, 80)))
	}
	return tw.Flush()
}

// warnPauses writes a line per pause in force to w ("PAUSED ..."), for the
// listings an on-call engineer reads first; a node without pauses (an older
// one) shows nothing, another error a warning.
func warnPauses(ctx context.Context, c *api.Client, w io.Writer) {
	list, err := c.Pauses(ctx)
	var ae *api.Error
	switch {
	case errors.As(err, &ae) && ae.Status == 404:
		return
	case err != nil:
		fmt.Fprintf(w, "(pauses not read: %v)\n", err)
		return
	}
	for i := range list {
		fmt.Fprintln(w, "PAUSED: "+describePause(&list[i]))
	}
}
