package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/starbook/starbook/api"
	sbruntime "github.com/starbook/starbook/runtime"
)

var approveCmd = func() *cobra.Command {
	var (
		reject  bool
		comment string
		as      string
	)
	cmd := &cobra.Command{
		Use:   "approve ID [POSITION]",
		Short: "Approve (or --reject) a pending approval of an execution",
		Long: `Approve records your decision on the pending wait_for_approval of execution
ID at POSITION, or on its only pending approval without POSITION. You must be
one of its approvers (by name, email, or through Slack user groups). With
required=2 and more, approvals accumulate until enough distinct people
approved; one reject decides at once. The first deciding answer wins.

With authentication on (--token or $STARBOOK_TOKEN), you are the token's
holder; --as USER decides for someone else, which only an admin may do.
Without it, you are --as USER, else $STARBOOK_USER, else the OS user, and
that name is trusted as given.`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			// "as" goes in the body only when given: with a token the server
			// knows who you are, and naming yourself differently is refused.
			user := strings.TrimSpace(as)
			shown := user
			switch {
			case shown == "" && c.Token != "":
				shown = "you"
			case shown == "":
				shown = c.User
			}
			if shown == "" {
				return fmt.Errorf("who are you? pass --as USER or set STARBOOK_USER")
			}
			position := ""
			if len(args) == 2 {
				position = args[1]
			}
			req := api.DecisionRequest{Decision: sbruntime.DecisionApprove, Comment: comment, As: user}
			if reject {
				req.Decision = sbruntime.DecisionReject
			}
			st, err := c.Decide(cmd.Context(), args[0], position, req)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), describeState(st, shown))
			return err
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&reject, "reject", false, "reject instead of approving")
	fl.StringVar(&comment, "comment", "", "a comment recorded with the decision")
	fl.StringVar(&as, "as", "", "decide as this user (default: the token's holder, else $STARBOOK_USER or the OS user)")
	return cmd
}()

func init() { rootCmd.AddCommand(approveCmd) }

// describeState says what a decision did.
func describeState(st *sbruntime.ApprovalState, user string) string {
	where := st.Execution + " position " + st.Position
	switch {
	case st.Duplicate:
		return fmt.Sprintf("%s: %s had already approved (%d of %d approvals)", where, user, len(st.Approvals), st.Required)
	case st.Resolved && st.Result != nil && st.Result.Approved:
		return fmt.Sprintf("%s: approved by %s", where, strings.Join(st.Result.By, ", "))
	case st.Resolved && st.Result != nil:
		return fmt.Sprintf("%s: rejected by %s", where, strings.Join(st.Result.By, ", "))
	}
	return fmt.Sprintf("%s: approval by %s recorded (%d of %d approvals)", where, user, len(st.Approvals), st.Required)
}
