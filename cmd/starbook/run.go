package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	sbruntime "github.com/starbook/starbook/runtime"
)

// waitPoll is how long one wait request of run --wait lasts; it stays under
// the server's maximum and the client's request timeout.
const waitPoll = 60 * time.Second

var runCmd = func() *cobra.Command {
	var (
		input     string
		inputFile string
		wait      bool
		force     bool
		dry       dryRun
	)
	cmd := &cobra.Command{
		Use:   "run NAME",
		Short: "Start an execution of a runbook and print its id",
		Long: `Run starts an execution of the current version of runbook NAME, recorded as
triggered manually by you, and prints its id.

With --wait it then waits for the execution to end, prints "ID STATUS" and
exits with status 1 unless the execution completed.

With --dry-run nothing is started: the runbook (the current version of NAME
fetched from the server, or NAME itself when it is a .star file) runs here,
offline, with every effect mocked (see dryrun.go), and the steps it took are
printed; the exit status is 1 unless it completed.

A paused runbook (starbook pause) is refused, naming who paused it and why;
--force starts it all the same (admins only), recording whose pause it
overrode.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			in, err := readInput(cmd, input, inputFile)
			if err != nil {
				return err
			}
			if dry.on {
				return dry.run(cmd, args[0], in)
			}
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			e, err := c.StartForced(ctx, args[0], in, force)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintln(out, e.ID)
			if !wait {
				return nil
			}
			id := e.ID
			for !e.Status.Terminal() {
				if e, _, err = c.Wait(ctx, id, waitPoll); err != nil {
					return fmt.Errorf("wait for %s: %w", id, err)
				}
			}
			fmt.Fprintf(out, "%s %s\n", e.ID, e.Status)
			if e.Status == sbruntime.StatusCompleted {
				return nil
			}
			if e.Error != "" {
				return fmt.Errorf("execution %s %s: %s", e.ID, e.Status, e.Error)
			}
			return fmt.Errorf("execution %s %s", e.ID, e.Status)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&input, "input", "", "input of the execution, as JSON")
	fl.StringVar(&inputFile, "input-file", "", "read the input JSON from a file ('-' for stdin)")
	fl.BoolVar(&wait, "wait", false, "wait for the execution to end; exit 1 unless it completed")
	fl.BoolVar(&force, "force", false, "start it even while its runbook is paused (admin)")
	dry.flags(fl)
	cmd.MarkFlagsMutuallyExclusive("input", "input-file")
	cmd.MarkFlagsMutuallyExclusive("dry-run", "wait")
	cmd.MarkFlagsMutuallyExclusive("dry-run", "force")
	return cmd
}()

func init() { rootCmd.AddCommand(runCmd) }

// readInput returns the execution input given by --input or --input-file (nil
// when neither is set), checked to be JSON before any request is made.
func readInput(cmd *cobra.Command, input, inputFile string) (json.RawMessage, error) {
	var b []byte
	flag := "--input"
	switch {
	case cmd.Flags().Changed("input"):
		b = []byte(input)
	case cmd.Flags().Changed("input-file"):
		flag = "--input-file"
		var err error
		if inputFile == "-" {
			b, err = io.ReadAll(cmd.InOrStdin())
		} else {
			b, err = os.ReadFile(inputFile)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", flag, err)
		}
	default:
		return nil, nil
	}
	// Unmarshal checks the whole document and reports where it breaks.
	var raw json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("invalid %s: %w", flag, err)
	}
	return raw, nil
}
