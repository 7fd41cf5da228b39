package main

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/starbook/starbook"
	"github.com/starbook/starbook/quota"
)

var storeCmd = func() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "store",
		Short: "Show how full the store (etcd) is; free it",
		Long: `Store shows etcd's db file against its quota (serve --etcd-quota), as the node
at --server reads it now. From 90% of the quota, or once etcd raised its
NOSPACE alarm (past the quota etcd refuses every write), nodes refuse new
runs (API and CLI 507, webhooks and alerts 507 and a dead letter with reason
storage, cron ticks a dead letter); runs in flight go on, and a run whose
write etcd refused waits for space, keeping its claim, and is not lost.

To make room: let retention delete what ended (a shorter serve --retention),
then "starbook store free" (admin): it compacts etcd's history, defragments
each member (only a defragmentation shrinks the file, and it blocks the
member for about a second per 200 MB) and disarms the NOSPACE alarm of the
members back under 90%. Or raise the quota (serve --etcd-quota).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			sp, err := c.StoreSpace(cmd.Context())
			if err != nil {
				return err
			}
			return printStoreSpace(cmd.OutOrStdout(), sp, asJSON)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	free := &cobra.Command{
		Use:   "free",
		Short: "Compact etcd, defragment its members and disarm NOSPACE (admin)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			sp, err := c.FreeStore(cmd.Context())
			if err != nil {
				return err
			}
			return printStoreSpace(cmd.OutOrStdout(), sp, asJSON)
		},
	}
	free.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.AddCommand(free)
	return cmd
}()

func init() { rootCmd.AddCommand(storeCmd) }

func printStoreSpace(out io.Writer, sp *starbook.StoreSpace, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(sp)
	}
	if f := sp.Freed; f != nil {
		fmt.Fprintf(out, "compacted to revision %d\n", f.Compacted)
		for _, m := range f.Members {
			fmt.Fprintf(out, "defragmented %s: %s -> %s (%s in use) in %s\n", m.Endpoint, quota.FormatSize(m.Before),
				quota.FormatSize(m.After), quota.FormatSize(m.InUse), m.Took.Round(time.Millisecond))
		}
		if f.Disarmed > 0 {
			fmt.Fprintf(out, "disarmed %d NOSPACE alarm(s)\n", f.Disarmed)
		}
		for _, ep := range f.StillFull {
			fmt.Fprintf(out, "%s is still over 90%% of its quota: delete more (a shorter serve --retention) or raise serve --etcd-quota\n", ep)
		}
	}
	pct := 0.0
	if sp.Quota > 0 {
		pct = 100 * float64(sp.DBBytes) / float64(sp.Quota)
	}
	fmt.Fprintf(out, "db file: %s of %s quota (%.0f%%), %s in use\n", quota.FormatSize(sp.DBBytes),
		quota.FormatSize(sp.Quota), pct, quota.FormatSize(sp.InUse))
	if sp.Alarm {
		fmt.Fprintln(out, "etcd's NOSPACE alarm is raised: it refuses every write")
	}
	if sp.Refusal != "" {
		fmt.Fprintln(out, "new runs are refused: "+sp.Refusal)
	} else {
		fmt.Fprintln(out, "new runs are accepted")
	}
	return nil
}
