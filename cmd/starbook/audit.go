package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/starbook/starbook"
)

var auditCmd = func() *cobra.Command {
	var (
		limit  int
		after  string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "List the audit log: who did what, when, from where, and how it ended",
		Long: `Audit lists the node's audit log, oldest first: every mutating API request
(apply, run, cancel, signal, approve), every hook delivery and every Slack
decision, with its actor and role, action, target, time, remote address and
outcome (ok, denied, refused, failed). Without --after it shows the newest
--limit records; with --after ID the ones after that record. Reading the log
needs the admin role when authentication is on.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			if limit < 1 || limit > starbook.MaxAuditLimit {
				return fmt.Errorf("--limit %d: want 1 to %d", limit, starbook.MaxAuditLimit)
			}
			resp, err := c.Audit(cmd.Context(), after, limit)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), resp)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TIME\tACTOR\tROLE\tACTION\tTARGET\tOUTCOME\tREMOTE\tID")
			for _, r := range resp.Audit {
				target := r.Execution
				if target == "" {
					target = r.Runbook
				} else if r.Runbook != "" {
					target = r.Runbook + "/" + r.Execution
				}
				if r.Detail != "" {
					target += " (" + r.Detail + ")"
				}
				outcome := r.Outcome
				if r.Status != 0 {
					outcome += fmt.Sprintf(" %d", r.Status)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", formatTime(r.Time), r.Actor, dash(r.Role), r.Action,
					dash(target), outcome, dash(r.Remote), r.ID)
			}
			return tw.Flush()
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&limit, "limit", starbook.DefaultAuditLimit, "records to list")
	fl.StringVar(&after, "after", "", "list the records after this id")
	fl.BoolVar(&asJSON, "json", false, `print {"audit": [...], "next": ID} as JSON`)
	return cmd
}()

func init() { rootCmd.AddCommand(auditCmd) }

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
