// Package builtins holds the Starlark built-ins runbooks are written with.
//
// Durable built-ins (call, fan_out, compensate, sleep, now, uuid) go through
// runtime.Step or runtime.Await and never touch storage themselves. Effects
// (the http module) refuse to run outside a step. Pure helpers (json, time,
// struct, retry, log, secret) have no side effects a replay could repeat.
package builtins
