package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

var cancelCmd = &cobra.Command{
	Use:   "cancel ID",
	Short: "Cancel an execution that has not ended",
	Long: `Cancel stops execution ID and prints "ID STATUS" with the status it has
afterwards: cancelled, or the status it had already ended with.`,
	Args: cobra.ExactArgs(1),
	RunE: func(cmd *cobra.Command, args []string) error {
		c, err := newClient(cmd)
		if err != nil {
			return err
		}
		e, err := c.Cancel(cmd.Context(), args[0])
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s %s\n", e.ID, e.Status)
		return err
	},
}

func init() { rootCmd.AddCommand(cancelCmd) }
