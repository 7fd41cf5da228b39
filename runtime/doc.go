// Package runtime is starbook's durable replay interpreter: it runs a runbook's
// Starlark script against the execution's recorded history.
//
// # The durable model
//
// An execution's history is a set of events keyed by position. The n-th durable
// built-in called by the main thread has position "n" (1-based); the k-th durable
// call inside item i (0-based) of the fan_out at position n has position "n/i/k".
// Every run of an execution — the first, a resume after a wait, a fail-over —
// executes the script from the top in a fresh thread. Each durable built-in goes
// through [Step]: if its position is recorded, the recorded result is returned (or
// the recorded error raised) with no side effect; otherwise the step runs, its
// outcome is appended to the history through the [Journal], and only then
// returned to the script.
//
// # Determinism rules
//
//   - No wall clock and no randomness reach a script except through durable
//     built-ins (now(), uuid()); the time module's now() is disabled.
//   - Positions are hierarchical and assigned in call order per thread, so the
//     same script with the same history reaches the same positions.
//   - A replayed call whose kind, name or argument hash differs from the
//     recorded event is a nondeterminism error ([CodeMismatch]): the execution
//     becomes stuck and nothing is executed.
//   - Effects (http.*, slack.*) are legal only inside a step (call, compensate);
//     elsewhere they would repeat on every replay and raise an error instead.
//   - Only JSON values cross a checkpoint: step results are encoded once and the
//     decoded copy is handed back, so a first run and a replay see equal values.
//   - A run's [Gate] (the host's budgets) is asked only before a new step or
//     wait, never a replayed one; a refusal ([BudgetError]) is recorded as
//     that step's error event, so a replay raises it again without asking.
//
// # Waits
//
// sleep, wait_for_signal and wait_for_approval register a [Wait] at their
// position and suspend the execution ([ErrSuspended]); no goroutine is held.
// Whoever resolves the wait (the timer leader, an API call) writes the event at
// that position and makes the execution runnable again; the next replay finds
// the event and returns it.
//
// # Attempts (redrive)
//
// History is append-only, so an execution that failed runs again from its
// failed step as a new attempt of the same execution: redrive appends an
// attempt boundary ([Redrive]) to the execution's record, which then runs
// attempt len(Redrives)+1 ([Execution.Attempt]). Events and waits of an
// attempt after the first carry its number ([Event.Attempt], stored beside,
// never over, the earlier attempts' events). The history an attempt
// replays is [Effective]: at each position the latest attempt's event, but
// an event that an earlier attempt recorded as failed is void, so its
// position (a failed call, the fan_out around a failed item, a wait that
// timed out with an error) executes again; every successful step of an
// earlier attempt is replayed, never repeated. Idempotency keys stay
// <execution>/<position>: a step run again after a failure that may have
// had its effect (a timeout) is still deduplicated downstream. Undos are
// not voided: an execution whose compensations ran can only be redriven
// from the start, as a new execution.
//
// # Gates and policies
//
// A [Gate] (budgets) is asked before each new step, a [Policy] before each
// effect (an HTTP request, a Slack message) inside a new step's work, with
// the history so far. Neither is asked for a replayed step: its work does
// not run. A refusal is recorded as the step's error (a [BudgetError], a
// [PolicyError], which call() does not retry), so a replay raises the same
// refusal from history and never decides again; an allowed effect's
// outcome is the step's recorded result.
//
// # Logs and observation
//
// log() and print() take no position: they are not durable calls. They are
// silent while a thread replays (its next position is recorded or waited on),
// and a [Journal] that implements [LogWriter] keeps each line under its
// identity (the position it follows and its number after it), so a line that
// a replay after a crash logs again is stored once. An [Observer] on the
// [Engine] sees each run and each executed step (never a replayed one), for
// metrics and traces; every run of an execution shares the trace id
// [Execution.TraceID], which its log lines carry.
//
// The package imports neither etcd nor Slack, nor Prometheus nor
// OpenTelemetry: storage is the [Journal] interface, observation [Observer].
package runtime
