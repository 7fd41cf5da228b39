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
package builtins
