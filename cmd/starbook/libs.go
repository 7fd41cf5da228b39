package main

import (
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/starbook/starbook/stdlib"
)

// libFlagUsage is the help of --lib, on every command that reads runbooks.
const libFlagUsage = "a team's library of modules, loaded as @NAME/FILE.star (NAME=DIR, repeatable; pinned in each version's bundle at apply)"

// addLibFlag adds --lib NAME=DIR to cmd.
func addLibFlag(cmd *cobra.Command) {
	cmd.Flags().StringArray("lib", nil, libFlagUsage)
}

// libraries returns @std (embedded, or $STARBOOK_STD_DIR) and the
// libraries of specs (--lib NAME=DIR).
func libraries(specs []string) (*stdlib.Set, error) {
	set, err := stdlib.Default(os.Getenv)
	if err != nil {
		return nil, err
	}
	for _, spec := range specs {
		if err := set.AddDir(spec); err != nil {
			return nil, err
		}
	}
	return set, nil
}

// librariesOf returns the libraries cmd's --lib flags give, with @std.
func librariesOf(cmd *cobra.Command) (*stdlib.Set, error) {
	specs, _ := cmd.Flags().GetStringArray("lib")
	return libraries(specs)
}

// teamLibraryFiles returns the modules of set's libraries other than @std,
// by bundle file name ("@team/payments.star"), their tests left out: what
// apply sends beside the runbooks, since the node has only @std.
func teamLibraryFiles(set *stdlib.Set) (map[string]string, error) {
	out := map[string]string{}
	for _, lib := range set.Names() {
		if lib == stdlib.Std {
			continue
		}
		files, err := set.Files(lib)
		if err != nil {
			return nil, err
		}
		for name, src := range files {
			if !strings.HasSuffix(name, "_test.star") {
				out[name] = src
			}
		}
	}
	return out, nil
}
