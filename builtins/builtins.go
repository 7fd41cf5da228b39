package builtins

import (
	"fmt"
	"log/slog"
	"os"
	"strings"

	"go.starlark.net/lib/json"
	sltime "go.starlark.net/lib/time"
	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"

	sbruntime "github.com/starbook/starbook/runtime"
)

// Options configure the built-ins a node gives runbooks.
type Options struct {
	// Secrets looks up secret(name); by default the node's environment.
	Secrets func(name string) (string, bool)
	HTTP    HTTPOptions
	SSH     SSHOptions
	// Slack carries slack.post and slack.update; nil when Slack is off.
	Slack SlackAPI
	// Runbooks starts the child runbooks of run_runbook (the node's
	// service); nil: run_runbook fails its step.
	Runbooks RunbookStarter
	// Scrubber, when set, also learns every secret value secret() reads, so
	// that the node can scrub it from its own logs and from what its API
	// receives (a runbook could send a secret back to it).
	Scrubber *sbruntime.Scrubber
}

// New returns the predeclared names of a runbook.
func New(opts Options) starlark.StringDict {
	if opts.Secrets == nil {
		opts.Secrets = os.LookupEnv
	}
	return starlark.StringDict{
		"call":                      starlark.NewBuiltin("call", callBuiltin),
		"fan_out":                   starlark.NewBuiltin("fan_out", fanOutBuiltin),
		"compensate":                starlark.NewBuiltin("compensate", compensateBuiltin),
		"sleep":                     starlark.NewBuiltin("sleep", sleepBuiltin),
		"wait_for_signal":           starlark.NewBuiltin("wait_for_signal", waitForSignalBuiltin),
		"wait_for_approval":         starlark.NewBuiltin("wait_for_approval", waitForApprovalBuiltin),
		"escalate":                  starlark.NewBuiltin("escalate", escalateBuiltin),
		"now":                       starlark.NewBuiltin("now", nowBuiltin),
		"uuid":                      starlark.NewBuiltin("uuid", uuidBuiltin),
		"retry":                     starlark.NewBuiltin("retry", retryBuiltin),
		"idempotency_key":           starlark.NewBuiltin("idempotency_key", idempotencyKeyBuiltin),
		"log":                       starlark.NewBuiltin("log", logBuiltin),
		"secret":                    starlark.NewBuiltin("secret", secretBuiltin(opts.Secrets, opts.Scrubber)),
		"http":                      NewHTTPModule(opts.HTTP),
		"ssh":                       NewSSHModule(opts.SSH),
		"slack":                     NewSlackModule(opts.Slack),
		"json":                      json.Module,
		"time":                      sltime.Module,
		"struct":                    starlark.NewBuiltin("struct", starlarkstruct.Make),
		"trigger":                   TriggerModule,
		"slo":                       starlark.NewBuiltin("slo", sloBuiltin),
		"budget":                    starlark.NewBuiltin("budget", budgetBuiltin),
		"http_limit":                starlark.NewBuiltin("http_limit", httpLimitBuiltin),
		"run_runbook":               starlark.NewBuiltin("run_runbook", runRunbookBuiltin(opts.Runbooks)),
		"sha256":                    starlark.NewBuiltin("sha256", sha256Builtin),
		"hmac_sha256":               starlark.NewBuiltin("hmac_sha256", hmacSHA256Builtin),
		"base64":                    base64Module,
		"aws_sigv4":                 starlark.NewBuiltin("aws_sigv4", awsSigV4Builtin),
		"oauth2_client_credentials": starlark.NewBuiltin("oauth2_client_credentials", oauth2ClientCredentialsBuiltin),
		"gcp_service_account":       starlark.NewBuiltin("gcp_service_account", gcpServiceAccountBuiltin),
	}
}

// logBuiltin implements log(msg, level="info", **fields). It is silent while
// the execution replays, so each line is written once.
func logBuiltin(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("log: want one message, got %d arguments", len(args))
	}
	msg, ok := starlark.AsString(args[0])
	if !ok {
		msg = args[0].String()
	}
	level := slog.LevelInfo
	var attrs []any
	for _, kv := range kwargs {
		key := string(kv[0].(starlark.String))
		if key == "level" {
			s, _ := starlark.AsString(kv[1])
			if err := level.UnmarshalText([]byte(strings.ToUpper(s))); err != nil {
				return nil, fmt.Errorf("log: level=%s: want debug, info, warn or error", kv[1])
			}
			continue
		}
		val, isString := starlark.AsString(kv[1])
		if !isString {
			val = kv[1].String()
		}
		attrs = append(attrs, key, sbruntime.Scrub(th, val))
	}
	sbruntime.Log(th, level, msg, attrs...)
	return starlark.None, nil
}

// ReservedSecretPrefix starts the names of the node's own configuration
// (STARBOOK_TOKENS, STARBOOK_SLACK_BOT_TOKEN, ...): secret() refuses them, so
// a runbook cannot read the credentials of the node that runs it.
const ReservedSecretPrefix = "STARBOOK_"

// secretBuiltin implements secret(name): a value that is sent by effects but
// never stored, logged or shown.
func secretBuiltin(lookup func(string) (string, bool), node *sbruntime.Scrubber) func(*starlark.Thread, *starlark.Builtin, starlark.Tuple, []starlark.Tuple) (starlark.Value, error) {
	return func(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		var name string
		if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 1, &name); err != nil {
			return nil, err
		}
		if strings.HasPrefix(strings.ToUpper(name), ReservedSecretPrefix) {
			return nil, fmt.Errorf("secret %q: names starting with %s are the node's own configuration, not for runbooks", name, ReservedSecretPrefix)
		}
		value, ok := lookup(name)
		if !ok {
			return nil, fmt.Errorf("secret %q is not set in the node's environment", name)
		}
		s := sbruntime.NewSecret(th, name, value)
		if node != nil {
			node.Add(value, s.String())
		}
		return s, nil
	}
}
