package main

import (
	"bufio"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/starbook/starbook/auth"
)

var tokenCmd = func() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Make API tokens and the hashes an --auth-file stores",
	}
	var name, role string
	newCmd := &cobra.Command{
		Use:   "new --name NAME --role ROLE",
		Short: "Print a new random token (on stderr) and its --auth-file entry (on stdout)",
		Long: `New makes a random token for NAME with ROLE (viewer, operator, approver or
admin). The token is printed once, on stderr: give it to its holder. The entry
to add under "tokens:" in the --auth-file is printed on stdout; it holds only
the token's SHA-256.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := auth.ParseRole(role)
			if err != nil {
				return err
			}
			tok := auth.NewToken()
			if _, err := auth.New([]auth.Token{{Name: name, Role: r, SHA256: auth.Hash(tok)}}); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "token for %s (shown once): %s\n", name, tok)
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "  - name: %s\n    role: %s\n    sha256: %s\n", name, r, auth.Hash(tok))
			return err
		},
	}
	newCmd.Flags().StringVar(&name, "name", "", "who holds the token (recorded as the actor of what it does)")
	newCmd.Flags().StringVar(&role, "role", "", "viewer, operator, approver or admin")
	_ = newCmd.MarkFlagRequired("name")
	_ = newCmd.MarkFlagRequired("role")
	hashCmd := &cobra.Command{
		Use:   "hash",
		Short: "Print the SHA-256 of the token read from stdin (one line), for an --auth-file",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
			tok := strings.TrimSpace(line)
			if tok == "" {
				if err != nil {
					return fmt.Errorf("read the token from stdin: %w", err)
				}
				return fmt.Errorf("no token on stdin")
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), auth.Hash(tok))
			return err
		},
	}
	cmd.AddCommand(newCmd, hashCmd)
	return cmd
}()

func init() { rootCmd.AddCommand(tokenCmd) }
