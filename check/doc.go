// Package check finds what is wrong with runbook files before they run: the
// checks `starbook check` prints and `apply` refuses on, in one place.
//
// Files parses and resolves every file (unknown names and built-ins are
// resolve errors), finds the runbooks and their loads as apply does, checks
// main(event), runs the top level of runbooks that declare triggers or a
// budget() to validate the declarations, and scans the syntax trees for calls
// that fail at run time. A runbook that does not compile cannot run: its trees
// are still scanned, and its top level trigger.* and budget() calls with
// constant arguments validated, so that one pass reports every finding that needs no run.
// A runbook's input schema (NAME.schema.json, or input_schema = {...} at
// the top level of its main file) is compiled and stored in the bundle; one
// that does not compile is an error at its file:line. The constant inputs
// that *_test.star files give run() are validated against it, and reads of
// event fields a closed schema does not declare are warnings.
//
// The scan reports:
//
//   - an effect (http.*, slack.*) or idempotency_key() called where no step
//     runs: at top level, in main, in a fan_out item function, or in a
//     function those call directly (not through call() or compensate());
//   - a durable built-in (call, fan_out, sleep, wait_for_*, now, ...) inside
//     a step function: steps do not nest;
//   - an unknown member of a built-in module (http.gett);
//   - secret("NAME") with a literal NAME that is not set in the environment
//     (a warning: the nodes' environment is not the checker's), reserved
//     (STARBOOK_*: an error), or called at top level (a warning: it is read
//     at apply time too).
//
// The scan follows calls by name through nested functions and load()ed
// files; a function reached through a variable is not followed, so the scan
// reports no false alarms for code it cannot see, at the price of missing
// some. Findings are errors unless marked warnings; an error makes apply
// refuse the whole request.
//
// The scan also collects Facts per runbook, for policies (package policy):
// the effects its code can reach (http method and host, Slack channel;
// "*" where an argument is not a literal, or a literal prefix that ends
// before the host) and the secrets it reads by a literal name.
package check
