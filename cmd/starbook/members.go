package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/starbook/starbook"
)

var addMemberCmd = &cobra.Command{
	Use:   "add-member NAME PEER_URL",
	Short: "Add an etcd member to a cluster of embedded members (admin)",
	Long: `Add-member adds the etcd member NAME, reachable by its peers at
PEER_URL, to the cluster of embedded members the node at --server belongs to,
and prints the flags the new node must start with: its --node-id is NAME, its
--initial-cluster the line printed, with --initial-cluster-state existing.

The cluster counts the new member in its quorum at once (three members and a
fourth that has not started tolerate no loss): start it promptly, or remove it.`,
	Args: cobra.ExactArgs(2),
	RunE: func(cmd *cobra.Command, args []string) error {
		c, err := newClient(cmd)
		if err != nil {
			return err
		}
		added, err := c.AddMember(cmd.Context(), args[0], args[1])
		if err != nil {
			return fmt.Errorf("add member %s: %w", args[0], err)
		}
		out := cmd.OutOrStdout()
		fmt.Fprintf(out, "added member %s (id %s) at %s\n", args[0], added.Member.ID, strings.Join(added.Member.PeerURLs, ","))
		fmt.Fprintf(out, "start it with:\n  starbook serve --node-id=%s --initial-cluster=%s --initial-cluster-state=%s --peer-listen=HOST:PORT --data-dir=EMPTY_DIR\n",
			args[0], added.InitialCluster, added.InitialClusterState)
		return nil
	},
}

var removeMemberCmd = &cobra.Command{
	Use:   "remove-member NAME",
	Short: "Remove an etcd member from a cluster of embedded members (admin)",
	Long: `Remove-member removes the etcd member NAME (or, for an added member that
never started, its hex id) from the cluster of embedded members the node at
--server belongs to. The removed member stops serving; stop its node, and
clear its data dir before it joins again. The last member cannot be removed.`,
	Args: cobra.ExactArgs(1),
	RunE: func(cmd *cobra.Command, args []string) error {
		c, err := newClient(cmd)
		if err != nil {
			return err
		}
		if err := c.RemoveMember(cmd.Context(), args[0]); err != nil {
			return fmt.Errorf("remove member %s: %w", args[0], err)
		}
		fmt.Fprintf(cmd.OutOrStdout(), "removed member %s\n", args[0])
		return nil
	},
}

func init() { clusterCmd.AddCommand(addMemberCmd, removeMemberCmd) }

// printMembers writes the etcd members of a cluster status, if any.
func printMembers(out io.Writer, members []starbook.Member) error {
	if len(members) == 0 {
		return nil
	}
	fmt.Fprint(out, "\n")
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MEMBER\tID\tHEALTHY\tRAFT LEADER\tPEER URLS")
	for _, m := range members {
		name := m.Name
		if name == "" {
			name = "(not started)"
		}
		leader := ""
		if m.Leader {
			leader = "*"
		}
		fmt.Fprintf(tw, "%s\t%s\t%t\t%s\t%s\n", name, m.ID, m.Healthy, leader, strings.Join(m.PeerURLs, ","))
	}
	return tw.Flush()
}
