package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
)

var healthcheckCmd = func() *cobra.Command {
	var (
		ready   bool
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "healthcheck",
		Short: "Exit 0 if the node at --server answers /healthz (or /readyz) with 200",
		Long: `Healthcheck asks the node at --server for GET /healthz (with --ready,
GET /readyz) and exits 0 when it answers 200, 1 otherwise. It is the
container image's HEALTHCHECK: the distroless image has no curl. Neither
endpoint needs a token.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			check, what := c.Health, "/healthz"
			if ready {
				check, what = c.Ready, "/readyz"
			}
			if err := check(ctx); err != nil {
				return fmt.Errorf("%s%s: %w", c.BaseURL, what, err)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s%s: ok\n", c.BaseURL, what)
			return err
		},
	}
	cmd.Flags().BoolVar(&ready, "ready", false, "check /readyz (ready to take work) instead of /healthz")
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Second, "give up after this long")
	return cmd
}()

func init() { rootCmd.AddCommand(healthcheckCmd) }
