package main

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/starbook/starbook/policy"
	"github.com/starbook/starbook/service"
)

var policyCmd = &cobra.Command{
	Use:   "policy",
	Short: "Apply, show and test policies (Starlark rules on runbooks and their effects)",
	Long: `Policies are Starlark files that define on_apply(runbook), judged at every
apply against a description of each runbook, and/or on_effect(effect,
history), judged before each HTTP request or Slack message a new step makes.
Each returns None to allow or deny("why"). docs/policies.md has the values they see.`,
}

var policyApplyCmd = &cobra.Command{
	Use:   "apply PATH...",
	Short: "Replace the cluster's policy set with the .star files in PATH... (admin)",
	Long: `Apply sends every .star file in PATH... (a directory contributes its files,
recursively, keyed by their path relative to it; *_test.star tests included)
as the cluster's new policy set. The server loads every policy and runs every
test, and stores the set only if all load and pass: otherwise it refuses it
whole, naming each file:line. The set replaces the previous one entirely; the
nodes enforce it within moments. Needs the admin role.`,
	Args: cobra.MinimumNArgs(1),
	RunE: func(cmd *cobra.Command, args []string) error {
		files, err := policy.ReadFiles(args...)
		if err != nil {
			return err
		}
		c, err := newClient(cmd)
		if err != nil {
			return err
		}
		set, err := c.ApplyPolicies(cmd.Context(), files)
		if err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "applied policies %s: %d files, %d tests passed\n", set.Version, len(set.Files), set.Tests)
		return nil
	},
}

var policyShowCmd = &cobra.Command{
	Use:   "show",
	Short: "Show the cluster's policy set",
	Args:  cobra.NoArgs,
	RunE: func(cmd *cobra.Command, args []string) error {
		c, err := newClient(cmd)
		if err != nil {
			return err
		}
		set, err := c.Policies(cmd.Context())
		if err != nil {
			return err
		}
		if set == nil {
			fmt.Fprintln(cmd.OutOrStdout(), "no policies")
			return nil
		}
		fmt.Fprintf(cmd.OutOrStdout(), "policies %s applied %s\n", set.Version, set.AppliedAt.Format("2006-01-02 15:04:05Z07:00"))
		for _, f := range set.Files {
			fmt.Fprintf(cmd.OutOrStdout(), "  %s\n", f)
		}
		return nil
	},
}

var policyTestCmd = &cobra.Command{
	Use:   "test [PATH...]",
	Short: "Run the policies' *_test.star tests, offline",
	Long: `Test loads the policy files in PATH... (default "policies"; directories are
read recursively) as policy apply would, then runs every test_* function of
their *_test.star files. Tests load() the policy they test and call its
functions with values built by runbook(...), effect(...) and step(...), and
check verdicts with assert.allowed, assert.denied, assert.eq and assert.true.
No server is needed. The exit status is 1 when a policy does not load or a
test fails.

  -v   list every test, not only failures`,
	RunE: func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			args = []string{"policies"}
		}
		files, err := policy.ReadFiles(args...)
		if err != nil {
			return err
		}
		verbose, _ := cmd.Flags().GetBool("verbose")
		if _, err := policy.Load(files); err != nil {
			return err
		}
		results, err := policy.Test(cmd.Context(), files)
		if err != nil {
			return err
		}
		failed := policy.Failed(results)
		for _, r := range results {
			if r.Err != nil || verbose {
				fmt.Fprintln(cmd.OutOrStdout(), r)
			}
		}
		fmt.Fprintf(cmd.OutOrStdout(), "%d passed, %d failed\n", len(results)-len(failed), len(failed))
		if len(failed) > 0 {
			return fmt.Errorf("%d of %d policy tests failed", len(failed), len(results))
		}
		return nil
	},
}

// loadPolicyDir reads and checks the policy set in dir, as policy apply
// does, for serve --policies.
func loadPolicyDir(ctx context.Context, dir string) (map[string]string, error) {
	files, err := policy.ReadFiles(filepath.Clean(dir))
	if err != nil {
		return nil, fmt.Errorf("--policies: %w", err)
	}
	if _, _, err := service.CheckPolicies(ctx, files); err != nil {
		return nil, fmt.Errorf("--policies %s: %w", dir, err)
	}
	return files, nil
}

func init() {
	policyTestCmd.Flags().BoolP("verbose", "v", false, "list every test")
	policyCmd.AddCommand(policyApplyCmd, policyShowCmd, policyTestCmd)
	rootCmd.AddCommand(policyCmd)
}
