// Package runbooktest runs runbooks offline: no etcd, no network, no real
// clock. It is what `starbook test`, `starbook replay` and `starbook run
// --dry-run` are made of.
//
// An offline execution (Mocks.Execute) is a real one: the runtime engine
// replays the script over an in-memory journal, with the real built-ins,
// except that the world is mocked:
//
//   - http.* is the real module on a transport that answers from mock.http
//     (arguments, raise_for_status, the client's retries behave as on a
//     node, without backoff); a request no mock matches fails the test;
//   - slack.* records the message and answers {"channel", "ts"};
//   - step targets (call, compensate, fan_out) may be stubbed by mock.step,
//     by name or by function, keeping the step's recorded name;
//   - time is a virtual Clock: retry backoff, sleep() and wait deadlines move
//     it instantly; now() reads it; uuid() counts (…0001, …0002);
//   - secret(name) is mock.secret's value, else "mock-secret-NAME".
//
// When the execution parks on a wait, the mocks resolve it as a node would
// (a queued decision or signal first, else the earliest deadline passes) and
// the engine replays the execution from the top, so every test also checks
// that the runbook replays deterministically. An execution that cannot go
// on (an approval nobody decides, a signal without timeout nobody sends)
// ends "waiting" with the reason in its error.
//
// Replay runs a script over a recorded history with a frozen journal: no
// step function runs and no event can be added, so a script that diverges
// is reported with the position, what history and script each have there,
// and both file:line, while one that goes past the end of the history is
// compatible. DryRun runs in an agreeable world (200 {}, approvals approve,
// signals time out).
//
// Runner discovers *_test.star files and runs their test_* functions, each
// with fresh Mocks, reporting like go test. Test files see the runbook
// built-ins plus mock, assert and run(path, event).
package runbooktest
