package main

import (
	"github.com/spf13/cobra"

	"github.com/starbook/starbook/lsp"
	"github.com/starbook/starbook/starfmt"
)

var lspCmd = func() *cobra.Command {
	return &cobra.Command{
		Use:   "lsp",
		Short: "Run the language server for runbooks over stdio (for editors)",
		Long: `Lsp speaks the Language Server Protocol on stdin and stdout, for an editor
to start: check's findings as you type (300 ms after the last change),
completion, hover and signature help for the built-ins, @std and the
runbook's own functions, go to definition across load() (an @std module
opens as a read-only copy under the user cache directory), document symbols
and formatting (as starbook fmt formats). It reads @std as check does (STARBOOK_STD_DIR serves it from
a directory). docs/editors.md shows how to set up VS Code and Neovim.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			srv, err := lsp.New(lsp.Options{Format: starfmt.Format})
			if err != nil {
				return err
			}
			return srv.Serve(cmd.Context())
		},
	}
}()

func init() { rootCmd.AddCommand(lspCmd) }
