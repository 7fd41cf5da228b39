package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"os/user"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/starbook/starbook/api"
	sbruntime "github.com/starbook/starbook/runtime"
	"github.com/starbook/starbook/tlsconfig"
)

// defaultServer is used when neither --server nor STARBOOK_SERVER is set.
const defaultServer = "http://127.0.0.1:7070"

// requestTimeout bounds one API request; it exceeds the longest wait the CLI
// asks for (run --wait polls with 60s).
const requestTimeout = 2 * time.Minute

// rootCmd is the starbook command; subcommands add themselves from init().
var rootCmd = &cobra.Command{
	Use:           "starbook",
	Short:         "Durable runbooks in Starlark, checkpointed in etcd",
	SilenceUsage:  true, // a failed request is not a usage error
	SilenceErrors: true, // execute prints errors itself
}

func init() {
	server := os.Getenv("STARBOOK_SERVER")
	if server == "" {
		server = defaultServer
	}
	rootCmd.PersistentFlags().String("server", server, "URL of a starbook node (env STARBOOK_SERVER)")
	rootCmd.PersistentFlags().String("token", "", "API token (default $STARBOOK_TOKEN); sent as Authorization: Bearer")
	rootCmd.PersistentFlags().String("ca-cert", "", "PEM file of the CA that signed the node's certificate, for https (default $STARBOOK_CA_CERT)")
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := execute(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// execute runs the command line args and returns the process exit code: 0, or
// 1 after printing "starbook: <error>" to stderr.
func execute(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	rootCmd.SetArgs(args)
	rootCmd.SetIn(stdin)
	rootCmd.SetOut(stdout)
	rootCmd.SetErr(stderr)
	if err := rootCmd.ExecuteContext(ctx); err != nil {
		fmt.Fprintf(stderr, "starbook: %v\n", err)
		return 1
	}
	return 0
}

// newClient returns an API client for the --server of cmd, acting as the
// local user (env STARBOOK_USER overrides it).
func newClient(cmd *cobra.Command) (*api.Client, error) {
	server, err := cmd.Flags().GetString("server")
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("invalid --server %q: want a URL like %s", server, defaultServer)
	}
	token, _ := cmd.Flags().GetString("token")
	if token == "" {
		token = os.Getenv("STARBOOK_TOKEN")
	}
	caFile, _ := cmd.Flags().GetString("ca-cert")
	if caFile == "" {
		caFile = os.Getenv("STARBOOK_CA_CERT")
	}
	hc := &http.Client{Timeout: requestTimeout}
	if caFile != "" {
		tlsCfg, err := tlsconfig.Client(caFile, "", "")
		if err != nil {
			return nil, fmt.Errorf("--ca-cert: %w", err)
		}
		hc.Transport = &http.Transport{Proxy: http.ProxyFromEnvironment, TLSClientConfig: tlsCfg}
	}
	if token != "" && u.Scheme == "http" && !isLoopbackHost(u.Hostname()) {
		fmt.Fprintf(cmd.ErrOrStderr(), "starbook: warning: sending the token in clear text to %s; use https\n", u.Host)
	}
	return &api.Client{
		BaseURL: strings.TrimRight(server, "/"),
		HTTP:    hc,
		User:    currentUser(),
		Token:   token,
	}, nil
}

// isLoopbackHost reports whether host (a name or an address) is this machine.
func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func currentUser() string {
	if name := os.Getenv("STARBOOK_USER"); name != "" {
		return name
	}
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return os.Getenv("USER")
}

// triggerString is "type" or "type:source".
func triggerString(t sbruntime.Trigger) string {
	if t.Source == "" {
		return t.Type
	}
	return t.Type + ":" + t.Source
}

// formatTime is RFC 3339 in local time, to the second; "-" for no time.
func formatTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format(time.RFC3339)
}

// printJSON writes v as indented JSON.
func printJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// nonNil makes an empty list print as [] rather than null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
