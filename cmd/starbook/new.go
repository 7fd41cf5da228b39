package main

import (
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/starbook/starbook/scaffold"
)

var newCmd = func() *cobra.Command {
	var (
		alerts        []string
		cron, webhook string
		dir           string
		force         bool
	)
	cmd := &cobra.Command{
		Use:   "new NAME [--alert LABEL=VALUE]... [--cron SPEC] [--webhook NAME] [--dir DIR]",
		Short: "Start a new runbook: NAME.star, its tests and its input schema",
		Long: `New writes a runbook to start from, in DIR (default "."):

  NAME.star          an opening comment to complete, the trigger
                     declarations, main(event) with one step run by call()
                     and a Slack report; with --alert and no --cron, a
                     wait_for_approval before it acts (an alert pages a
                     person; a schedule runs unattended)
  NAME_test.star     tests that pass offline with mocks (starbook test)
  NAME.schema.json   its input: {"target": ...} and, with --alert, the
                     alert's labels

The files pass starbook check, starbook test and starbook fmt --check as
written. New refuses a name apply would refuse, an alert label that is not
LABEL=VALUE, a cron spec robfig/cron refuses, a webhook name the server
would refuse, and files that exist already (--force overwrites them).

  --alert LABEL=VALUE   trigger.alert on this label (repeatable)
  --cron SPEC           trigger.cron, five fields or @hourly, @every 10m
  --webhook NAME        trigger.webhook, signed with the nodes' secret
                        NAME_HOOK_SECRET (NAME: the runbook's, upper-case)`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o := scaffold.Options{Name: args[0], Cron: cron, Webhook: webhook}
			for _, a := range alerts {
				l, err := scaffold.ParseLabel(a)
				if err != nil {
					return err
				}
				o.Alert = append(o.Alert, l)
			}
			files, err := scaffold.Generate(o)
			if err != nil {
				return err
			}
			if err := scaffold.Write(dir, files, force); err != nil {
				return err
			}
			for _, f := range files {
				fmt.Fprintln(cmd.OutOrStdout(), filepath.Join(dir, f.Name))
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&alerts, "alert", nil, "start on alerts with this label, LABEL=VALUE (repeatable)")
	cmd.Flags().StringVar(&cron, "cron", "", "start on this cron schedule (robfig/cron: five fields or a descriptor)")
	cmd.Flags().StringVar(&webhook, "webhook", "", "start on POST /hooks/NAME, HMAC-signed")
	cmd.Flags().StringVar(&dir, "dir", ".", "the directory to write the files in (made if missing)")
	cmd.Flags().BoolVar(&force, "force", false, "overwrite files that exist")
	return cmd
}()

func init() { rootCmd.AddCommand(newCmd) }
