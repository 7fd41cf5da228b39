package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/starbook/starbook"
)

var dlqCmd = func() *cobra.Command {
	var (
		runbook string
		reason  string
		asJSON  bool
	)
	cmd := &cobra.Command{
		Use:   "dlq [--runbook N] [--reason R] [--json]",
		Short: "List dead letters: executions that did not complete and trigger events that started nothing",
		Long: `Dlq lists the dead letters, newest first: executions that ended failed, stuck,
with compensation_failed, dropped by a trigger's on_excess="drop" or refused
by a budget, and trigger events that started nothing (an alert no runbook
matches, an event a schema or a budget refused), each until acknowledged
with "starbook dlq ack". Reasons: failed, stuck, compensation_failed,
dropped, budget, no_runbook, refused.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			list, err := c.DeadLetters(cmd.Context(), starbook.DeadLetterFilter{Runbook: runbook, Reason: reason})
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), struct {
					DeadLetters []*starbook.DeadLetter `json:"dead_letters"`
				}{nonNil(list)})
			}
			return printDeadLetters(cmd.OutOrStdout(), list)
		},
	}
	cmd.Flags().StringVar(&runbook, "runbook", "", "only this runbook's")
	cmd.Flags().StringVar(&reason, "reason", "", "only this reason's")
	cmd.Flags().BoolVar(&asJSON, "json", false, `print {"dead_letters": [...]} as the API returns it`)
	cmd.AddCommand(dlqAckCmd)
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

func init() { rootCmd.AddCommand(dlqCmd) }

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
