// Command gen writes starbook's dashboards as JSON files into the current
// directory (go generate runs it in deploy/grafana).
package main

import (
	"fmt"
	"os"

	dashboards "github.com/starbook/starbook/deploy/grafana"
)

func main() {
	files, err := dashboards.Render()
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
	for name, b := range files {
		if err := os.WriteFile(name, b, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "gen:", err)
			os.Exit(1)
		}
	}
}
