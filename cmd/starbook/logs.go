package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/starbook/starbook/api"
	sbruntime "github.com/starbook/starbook/runtime"
)

var logsCmd = func() *cobra.Command {
	var follow, asJSON bool
	var after int64
	cmd := &cobra.Command{
		Use:   "logs ID",
		Short: "Print the lines an execution logged; -f follows it until it ends",
		Long: `Logs prints the lines execution ID logged with log() or print(), oldest
first, each with its time, level and position. Lines are written once, never
again on replay. --follow keeps printing new lines until the execution ends
(reconnecting if the connection breaks).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			print := func(l *sbruntime.LogLine) error { return printLogLine(out, l, asJSON) }
			id, ctx := args[0], cmd.Context()
			if !follow {
				for {
					resp, err := c.Logs(ctx, id, after)
					if err != nil {
						return err
					}
					for _, l := range resp.Logs {
						if err := print(l); err != nil {
							return err
						}
					}
					if len(resp.Logs) == 0 || resp.Next == after {
						return nil
					}
					after = resp.Next
				}
			}
			return followLogs(ctx, cmd, id, after, print)
		},
	}
	fl := cmd.Flags()
	fl.BoolVarP(&follow, "follow", "f", false, "keep printing new lines until the execution ends")
	fl.BoolVar(&asJSON, "json", false, "print each line as a JSON object")
	fl.Int64Var(&after, "after", 0, "print only lines after this seq")
	return cmd
}()

func init() { rootCmd.AddCommand(logsCmd) }

// followLogs follows the stream, and after a broken connection follows on
// from the last line seen until the execution has ended.
func followLogs(ctx context.Context, cmd *cobra.Command, id string, after int64, print func(*sbruntime.LogLine) error) error {
	c, err := newClient(cmd)
	if err != nil {
		return err
	}
	for backoff := 500 * time.Millisecond; ; backoff = min(2*backoff, 10*time.Second) {
		last, err := c.FollowLogs(ctx, id, after, print)
		if ctx.Err() != nil {
			return nil
		}
		var apiErr *api.Error
		if errors.As(err, &apiErr) {
			return err // unknown execution, bad request: following again will not help
		}
		if last > after {
			backoff = 500 * time.Millisecond
		}
		after = last
		if err == nil { // the server ends the stream when the execution has ended
			if e, _, xerr := c.Execution(ctx, id); xerr == nil && e.Status.Terminal() {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
	}
}

func printLogLine(w io.Writer, l *sbruntime.LogLine, asJSON bool) error {
	if asJSON {
		b, err := json.Marshal(l)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %-5s [%s] %s", l.Time.Local().Format("15:04:05.000"), l.Level, l.Position, l.Msg)
	keys := make([]string, 0, len(l.Attrs))
	for k := range l.Attrs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%s", k, l.Attrs[k])
	}
	_, err := fmt.Fprintln(w, b.String())
	return err
}
