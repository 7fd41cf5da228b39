package main

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/starbook/starbook"
)

var rolloutCmd = func() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rollout",
		Short: "Show, promote or abort a runbook's canary rollout (started by apply --canary)",
		Long: `A rollout started by apply --canary sends a share of a runbook's new runs to
its canary version while the stable version stays current. The leader
promotes the canary after enough of its runs ended within the failure bound
and rolls it back as soon as more fail; promote and abort decide by hand.
Runs keep the version they started on whatever happens to the rollout.`,
	}
	var asJSON bool
	status := &cobra.Command{
		Use:   "status RUNBOOK",
		Short: "Show the runbook's latest rollout and its canary's runs",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			r, err := c.Rollout(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return printRollout(cmd.OutOrStdout(), r, asJSON)
		},
	}
	status.Flags().BoolVar(&asJSON, "json", false, "print the rollout as JSON")
	end := func(use, short string, fn func(cmd *cobra.Command, name string) (*starbook.Rollout, error)) *cobra.Command {
		return &cobra.Command{Use: use + " RUNBOOK", Short: short, Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				r, err := fn(cmd, args[0])
				if err != nil {
					return err
				}
				return printRollout(cmd.OutOrStdout(), r, false)
			}}
	}
	promote := end("promote", "Make the canary the current version now and end the rollout",
		func(cmd *cobra.Command, name string) (*starbook.Rollout, error) {
			c, err := newClient(cmd)
			if err != nil {
				return nil, err
			}
			return c.PromoteRollout(cmd.Context(), name)
		})
	abort := end("abort", "End the rollout; new runs use the stable version again",
		func(cmd *cobra.Command, name string) (*starbook.Rollout, error) {
			c, err := newClient(cmd)
			if err != nil {
				return nil, err
			}
			return c.AbortRollout(cmd.Context(), name)
		})
	cmd.AddCommand(status, promote, abort)
	return cmd
}()

func init() { rootCmd.AddCommand(rolloutCmd) }

// printRollout writes r as a few lines of text, or as JSON.
func printRollout(w io.Writer, r *starbook.Rollout, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	fmt.Fprintf(w, "runbook  %s\nstate    %s\nstable   %s\ncanary   %s (%v%% of new runs)\n", r.Runbook, r.State, r.Stable, r.Canary, r.Percent)
	fmt.Fprintf(w, "bounds   promote after %d runs, roll back above failure rate %v\n", r.CanaryRuns, r.MaxFailureRate)
	fmt.Fprintf(w, "started  %s by %s\n", r.StartedAt.Format(time.RFC3339), r.By)
	if r.EndedAt != nil {
		fmt.Fprintf(w, "ended    %s by %s: %s\n", r.EndedAt.Format(time.RFC3339), r.EndedBy, r.Reason)
	}
	if c := r.Counts; c != nil {
		fmt.Fprintf(w, "runs     %d started, %d ended, %d failed, %d in flight\n", c.Started, c.Ended, c.Failed, c.InFlight)
	}
	return nil
}
