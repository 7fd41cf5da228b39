// Package builtins holds the Starlark built-ins runbooks are written with.
//
// Durable built-ins (call, fan_out, compensate, sleep, now, uuid,
// wait_for_signal, wait_for_approval) go through runtime.Step or
// runtime.Await and never touch storage themselves. Effects (the http and
// slack modules) refuse to run outside a step. Pure helpers (json, time,
// struct, retry, escalate, log, secret) have no side effects a replay could
// repeat.
//
// wait_for_approval returns an [Approval] built from the recorded result, so
// the first run after the decision and every later replay see the same value.
//
// # Sandbox
//
// These names (pinned by TestSandboxNames) are all a runbook can reach:
// Starlark itself has no file, process or network access, load() reads only
// files of the runbook's own bundle, the time module has no clock, and
// secret() refuses the node's own STARBOOK_* configuration. The host is
// reached only through http.* and slack.*, inside steps. There is no exec of
// local commands, on purpose: a command's effects cannot be made idempotent
// or checkpointed, and a node runs with its own credentials; wrap a command
// in a service and call it with http.*.
package builtins
