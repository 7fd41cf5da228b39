package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"
)

var signalCmd = func() *cobra.Command {
	var data string
	cmd := &cobra.Command{
		Use:   "signal ID NAME",
		Short: "Deliver a signal (with optional JSON data) to an execution",
		Long: `Signal delivers NAME to execution ID: a wait_for_signal(NAME) waiting for it
returns {"name", "data", "by", "at"}; a signal sent before the script reaches
the wait is kept and consumed when it does. The sender recorded is
$STARBOOK_USER, else the OS user.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var raw json.RawMessage
			if data != "" {
				if !json.Valid([]byte(data)) {
					return fmt.Errorf("--data is not valid JSON: %s", data)
				}
				raw = json.RawMessage(data)
			}
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			if err := c.Signal(cmd.Context(), args[0], args[1], raw); err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "signal %s delivered to %s\n", args[1], args[0])
			return err
		},
	}
	cmd.Flags().StringVar(&data, "data", "", "the signal's data, as JSON")
	return cmd
}()

func init() { rootCmd.AddCommand(signalCmd) }
