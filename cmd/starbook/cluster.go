package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

var clusterCmd = func() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Show the nodes, the leader and each node's claims",
		Long: `Cluster lists the nodes registered in etcd: which one leads (fires
timers and cron), how many executions each has claimed, and how much of its
lease is left (a live node renews it: this is its heartbeat), and the
store's format (see docs/cluster.md, "Upgrades"). In a cluster of embedded etcd
members (serve --initial-cluster) it lists the members too; add-member and
remove-member change them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			st, err := c.Cluster(cmd.Context())
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			fmt.Fprintf(out, "leader: %s\n", st.Leader)
			fmt.Fprintf(out, "store format: %d", st.Format)
			if st.FormatWrittenBy != "" {
				fmt.Fprintf(out, " (written by %s)", st.FormatWrittenBy)
			}
			fmt.Fprint(out, "\n\n")
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NODE\tLEADER\tCLAIMS\tWORKERS\tLEASE\tSTARTED\tCLAIMED")
			for _, n := range st.Nodes {
				leader := ""
				if n.Leader {
					leader = "*"
				}
				claimed := strings.Join(n.Claimed, ",")
				if len(claimed) > 60 {
					claimed = claimed[:57] + "..."
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%.0fs/%ds\t%s\t%s\n", n.ID, leader, n.Claims, n.Workers,
					n.LeaseRemaining, n.TTLSeconds, n.Started.Local().Format("2006-01-02T15:04:05Z07:00"), claimed)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			return printMembers(out, st.Members)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the cluster status as JSON")
	return cmd
}()

func init() { rootCmd.AddCommand(clusterCmd) }
