package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/starbook/starbook"
	"github.com/starbook/starbook/api"
)

var dlqCmd = func() *cobra.Command {
	var (
		runbook string
		reason  string
		limit   int
		all     bool
		asJSON  bool
	)
	cmd := &cobra.Command{
		Use:   "dlq [--runbook N] [--reason R] [--limit K] [--all] [--json]",
		Short: "List dead letters: executions that did not complete and trigger events that started nothing",
		Long: `Dlq lists the dead letters, newest first: executions that ended failed, stuck,
with compensation_failed, dropped by a trigger's on_excess="drop" or refused
by a budget, and trigger events that started nothing (an alert no runbook
matches, an event a schema or a budget refused), each until acknowledged
with "starbook dlq ack". Reasons: ` + strings.Join(starbook.DeadLetterReasons, ", ") + `.
It lists one page (--limit, the server's default 100); --all lists every
match, a page at a time.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if limit < 0 {
				return fmt.Errorf("invalid --limit %d: want a positive number", limit)
			}
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			// The server checks reason and limit and says what it accepts.
			f := starbook.DeadLetterFilter{Runbook: runbook, Reason: reason, Limit: limit}
			var list []*starbook.DeadLetter
			next := ""
			if all {
				if f.Limit == 0 {
					f.Limit = api.MaxLimit // fewest round trips
				}
				list, err = allDeadLetters(cmd.Context(), c, f)
			} else {
				list, next, err = c.DeadLettersPage(cmd.Context(), f)
			}
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), struct {
					DeadLetters []*starbook.DeadLetter `json:"dead_letters"`
				}{nonNil(list)})
			}
			if err := printDeadLetters(cmd.OutOrStdout(), list); err != nil {
				return err
			}
			if next != "" {
				// Before paging, dlq listed every dead letter: say that
				// this is not all of them.
				fmt.Fprintf(cmd.ErrOrStderr(), "more dead letters are older: --all lists them all\n")
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&runbook, "runbook", "", "only this runbook's")
	cmd.Flags().StringVar(&reason, "reason", "", "only this reason's")
	cmd.Flags().IntVar(&limit, "limit", 0, fmt.Sprintf("at most this many (server default %d, max %d)", api.DefaultLimit, api.MaxLimit))
	cmd.Flags().BoolVar(&all, "all", false, fmt.Sprintf("every matching dead letter, a page of --limit at a time (default %d)", api.MaxLimit))
	cmd.Flags().BoolVar(&asJSON, "json", false, `print {"dead_letters": [...]} as the API returns it`)
	cmd.AddCommand(dlqAckCmd, dlqReplayCmd)
	return cmd
}()

var dlqAckCmd = func() *cobra.Command {
	var comment string
	cmd := &cobra.Command{
		Use:   "ack ID [--comment TEXT]",
		Short: "Acknowledge a dead letter: remove it, recording who did and why in the audit log",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			dl, err := c.AckDeadLetter(cmd.Context(), args[0], comment)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s acknowledged (%s, %s)\n", dl.ID, dl.Kind, dl.Reason)
			return err
		},
	}
	cmd.Flags().StringVar(&comment, "comment", "", "why (kept in the audit log)")
	return cmd
}()

var dlqReplayCmd = func() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "replay ID [--force]",
		Short: "Dispatch a trigger event's dead letter again, once, and print the runs it started",
		Long: `Replay dispatches the stored payload of trigger event dead letter ID again,
once: an event a pause, a schema or a budget refused starts its runbook with
the payload as input and the original trigger (alert, webhook, cron); an
alert no runbook matched is matched again against the current runbooks. The
runs start and the dead letter goes in one step; a second replay starts
nothing and says which runs the first started. A runbook still paused is
refused unless --force (admin). An execution's dead letter is redriven
(starbook redrive), not replayed.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			res, err := c.ReplayDeadLetter(cmd.Context(), args[0], force)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			for _, e := range res.Executions {
				fmt.Fprintf(out, "%s %s %s\n", e.ID, e.Runbook, e.Status)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "start a runbook that is still paused (admin)")
	return cmd
}()

func init() { rootCmd.AddCommand(dlqCmd) }

// allDeadLetters lists every dead letter matching f, newest first, a page
// of f.Limit at a time.
func allDeadLetters(ctx context.Context, c *api.Client, f starbook.DeadLetterFilter) ([]*starbook.DeadLetter, error) {
	return walkPages("dead letters", f.After, true, func(after string) ([]*starbook.DeadLetter, string, error) {
		f.After = after
		return c.DeadLettersPage(ctx, f)
	})
}

func printDeadLetters(w io.Writer, list []*starbook.DeadLetter) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tKIND\tREASON\tRUNBOOK\tAT\tWHY")
	for _, dl := range list {
		why := lastLine(dl.Error) // after a Starlark backtrace, the error itself
		if dl.Kind == starbook.DeadEvent {
			why = dl.Source
			if dl.Detail != "" {
				why += ": " + dl.Detail
			}
		}
		rb := dl.Runbook
		if rb == "" {
			rb = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", dl.ID, dl.Kind, dl.Reason, rb, formatTime(dl.At), firstLine(why, 80))
	}
	return tw.Flush()
}

// lastLine is the last non-empty line of s.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}
