package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/starbook/starbook"
	"github.com/starbook/starbook/api"
	sbruntime "github.com/starbook/starbook/runtime"
)

var redriveCmd = func() *cobra.Command {
	var (
		from, version   string
		dryRun          bool
		runbook, status string
		since           time.Duration
	)
	cmd := &cobra.Command{
		Use:   "redrive (ID | --runbook N --status S --since D) [--from failed|start] [--version pinned|current] [--dry-run]",
		Short: "Run ended executions again: from their failed step, or from the start",
		Long: `Redrive runs execution ID again. --from failed (the default) keeps every
successful step of its history and runs again from the failed step, as a new
attempt of the same execution (the history stays: the attempt is recorded);
an execution whose compensations ran can only be redriven --from start,
which starts a new execution with the same input, linked both ways.
--version current moves the execution onto the runbook's current version,
only when a replay of its history there is compatible (as starbook replay
checks). --dry-run checks and says what would happen, storing nothing.

Without ID, it redrives every execution of --status (default failed) that
ended in the last --since, of --runbook if given, one at a time, and lists
them; with --dry-run it only lists them.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			req := starbook.RedriveRequest{From: from, Version: version, DryRun: dryRun}
			w := cmd.OutOrStdout()
			if len(args) == 1 {
				if runbook != "" || since != 0 || cmd.Flags().Changed("status") {
					return errors.New("give an execution ID or --runbook/--status/--since, not both")
				}
				res, err := c.Redrive(cmd.Context(), args[0], req)
				if err != nil {
					return err
				}
				return printRedrive(w, res.Redrive)
			}
			if since <= 0 {
				return errors.New("give an execution ID, or --since D (with --runbook N, --status S) to redrive many")
			}
			return bulkRedrive(cmd.Context(), c, w, starbook.Filter{Runbook: runbook, Status: sbruntime.Status(status),
				Limit: api.MaxLimit}, time.Now().Add(-since), req)
		},
	}
	cmd.Flags().StringVar(&from, "from", starbook.RedriveFromFailed, "failed: again from the failed step; start: a new execution")
	cmd.Flags().StringVar(&version, "version", starbook.RedriveVersionPin, "pinned: the version it ran; current: the runbook's current one, if the history replays on it")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "say what would be redriven, change nothing")
	cmd.Flags().StringVar(&runbook, "runbook", "", "many: only this runbook's executions")
	cmd.Flags().StringVar(&status, "status", string(sbruntime.StatusFailed), "many: executions that ended with this status")
	cmd.Flags().DurationVar(&since, "since", 0, "many: executions that ended in the last D (e.g. 1h)")
	return cmd
}()

func init() { rootCmd.AddCommand(redriveCmd) }

// bulkRedrive redrives, one at a time, the executions matching f that
// ended after cutoff, skipping those redriven from the start already.
func bulkRedrive(ctx context.Context, c *api.Client, w io.Writer, f starbook.Filter, cutoff time.Time, req starbook.RedriveRequest) error {
	list, err := allExecutions(ctx, c, f)
	if err != nil {
		return err
	}
	var picked []*sbruntime.Execution
	for _, e := range list {
		if e.EndedAt != nil && !e.EndedAt.Before(cutoff) && len(e.RedrivenAs) == 0 {
			picked = append(picked, e)
		}
	}
	if len(picked) == 0 {
		_, err := fmt.Fprintln(w, "no execution to redrive")
		return err
	}
	failed := 0
	for _, e := range picked {
		res, err := c.Redrive(ctx, e.ID, req)
		if err != nil {
			failed++
			fmt.Fprintf(w, "%s %s: %v\n", e.ID, e.Runbook, err)
			continue
		}
		fmt.Fprintf(w, "%s %s: ", e.ID, e.Runbook)
		if err := printRedrive(w, res.Redrive); err != nil {
			return err
		}
	}
	verb := "redriven"
	if req.DryRun {
		verb = "would be redriven (dry run: nothing changed)"
	}
	fmt.Fprintf(w, "%d of %d %s\n", len(picked)-failed, len(picked), verb)
	if failed > 0 {
		return fmt.Errorf("%d redrive(s) refused", failed)
	}
	return nil
}

func printRedrive(w io.Writer, r *starbook.RedriveResult) error {
	var b strings.Builder
	if r.DryRun {
		b.WriteString("would redrive ")
	} else {
		b.WriteString("redriven ")
	}
	if r.From == starbook.RedriveFromStart {
		if r.New != "" {
			fmt.Fprintf(&b, "from the start as %s", r.New)
		} else {
			b.WriteString("from the start as a new execution")
		}
	} else {
		fmt.Fprintf(&b, "from the failed step: attempt %d replays %d event(s)", r.Attempt, r.Kept)
		if len(r.Rerun) > 0 {
			fmt.Fprintf(&b, ", runs position(s) %s again", strings.Join(r.Rerun, ", "))
		}
	}
	fmt.Fprintf(&b, " on version %s", r.Version)
	if r.Replay != "" {
		fmt.Fprintf(&b, " (replay: %s)", r.Replay)
	}
	_, err := fmt.Fprintln(w, b.String())
	return err
}
