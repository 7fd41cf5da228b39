package cluster

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Keys builds every etcd key of the layout under one prefix; no other file
// builds a key. The layout (DESIGN.md has the same table):
//
//	runbooks/<name>/versions/<version>  a runbook version's source bundle, immutable
//	runbooks/<name>/current             the version new runs use
//	rollouts/<name>                     the runbook's latest canary rollout (starbook.Rollout);
//	                                    while active, a share of new runs use its canary version
//	executions/<id>                     an execution record
//	history/<id>/<position>             one event, appended by a fenced txn
//	history/<id>/<position>@<attempt>   one event of a redriven execution's later attempt
//	runnable/<id>                       an execution ready to run
//	owners/<id>                         its claim, bound to the owning node's session lease
//	waits/<id>/<position>               a pending approval, signal wait or sleep
//	timers/<unix-ms>/<id>/<position>    a durable timer (sorted by due time)
//	signals/<id>/<name>/<rev>-<ulid>    one signal sent before its wait, kept until a wait takes
//	                                    it (oldest key first); <rev> is the sender's read revision
//	signals/<id>/<name>                 legacy: the kept signals as one JSON list (earlier
//	                                    releases); consumed before the keys above, never written
//	approvals/<id>/<pos>/<user>         one approving user's decision, until the approval resolves
//	notices/<id>/<pos>/<round>          where an approval request was posted, until the post
//	                                    is updated with the outcome (survives a leader crash)
//	logs/<id>/<position>#<index>        one log() line, create-if-absent (a replay never doubles
//	                                    one); its create revision is its Seq
//	cancel/<id>                         a cancel request
//	active/<runbook>/<id>               an execution that has not ended, while an active limit is
//	                                    set: counts a runbook's active runs without reading them
//	audit/<ulid>                        one mutating action (starbook.AuditRecord), time-sorted
//	dedup/<scope>/<key>                 a trigger start seen, value = execution id, lease TTL
//	alerts/<fingerprint>/<id>           executions an alert started (for "resolved"), lease TTL
//	groups/<runbook>/<hash>             a coalescing alert group's live run, value = its execution
//	                                    id: created with the run (if absent), deleted with its end
//	cron/<runbook>/<tick unix>          a fired cron tick, lease TTL
//	cron/<runbook>/last                 the latest tick fired or skipped
//	gates/<runbook>                     a bounded runbook's policy and recent starts (admission CAS)
//	slots/<runbook>/<id>                a bounded runbook's triggered runs that have not ended
//	queued/<runbook>/<id>               runs waiting for a slot, oldest first (ids sort by time)
//	budgets/<day>/<runbook>/<budget>    units of a day budget nodes have taken, in chunks (CAS)
//	usage/<day>/<runbook>/<id>          what one execution did that UTC day, written with its run's outcome;
//	                                    the leader folds it into usagedays/ (rollups.go)
//	usagedays/<day>/<runbook>           a runbook's usage that day: the sum of its folded usage keys
//	usagefolded/<day>/<runbook>/<id>    a live execution's usage key as last folded: a rewrite folds in
//	                                    the difference; dropped once it ended (rollups.go)
//	slo/d/<runbook>/<minute>/<id>@<n>   attempt n of an execution ended in that minute (status, end,
//	                                    duration), written with its end; ...@<n>- retracts it (redrive)
//	slo/m/<runbook>/<minute>            the ends of a minute folded (tally.Bucket), for 7 hours
//	slo/h/<runbook>/<hour>              the ends of an hour folded: minute rollups of older hours
//	slo/built                           BuildRollups' progress: the last execution id it counted, or done
//	policies                            the policy set (files and version), replaced whole by policy apply
//	secrets/session                     the UI sessions' secret when none is configured: 32 random
//	                                    bytes, created once if absent, read by every node (sessionsecret.go)
//	election/                           leader election (etcd's concurrency.Election)
//	nodes/<node-id>                     a node's registration, bound to its session lease
//	circuits/<host>                     a host's open or half-open circuit breaker
//	                                    (downstream.Circuit), CAS on transitions; absent: closed;
//	                                    the leader reaps it an hour past its until (ReapCircuits)
//	format                              the store's format marker (Format, see format.go)
//	migration/                          the lock of a store migration (etcd's concurrency.Mutex)
//	migrating/<format>                  how far the migration to format got (its last execution id)
//	migrating/4/deadletters             how far it got indexing dead letters (the last key's suffix)
//	ix/s/<class>/<inverted id>          an execution by status class, newest first (index.go);
//	                                    a live one's value is its runbook
//	ix/r/<runbook>/<class>/<inverted id> the same by runbook, once ended (the live ones of a
//	                                    runbook are read from ix/s/live/)
//	ixs/s/..., ixs/r/...                the same keys of one id in 64 (sampled): where a read of
//	                                    the index ends its window, so that etcd counts no more than a page
//	ix/d/<reason>/<inverted cursor>     a dead letter by reason, newest first (deadindex.go)
//	ix/dr/<runbook>/<reason>/<inverted cursor> the same by runbook ("" for none)
//	ixs/d/..., ixs/dr/...               the same keys of one dead letter in 64 (sampled)
//	signalwaits/<id>/                   legacy: deleted with its execution, never written
//	deadletters/executions/<id>         an execution that ended failed, stuck, dropped, ...
//	                                    (starbook.DeadLetter), written with its end, until acked
//	deadletters/events/<ulid>           a trigger event that started nothing, with its payload
//	dedup/deadletter/<fingerprint>/<startsAt>  an unmatched alert kept once, lease TTL
//	children/<parent>/<position>@<attempt> the child run_runbook started at the parent's step,
//	                                    value = its id: written in the child's create txn if absent
//	childends/<child>                   a child's outcome, written in its end txn, until the leader
//	                                    delivers it to the parent as signal child.<id> (children.go)
//	pauses/<runbook>                    a runbook's pause (starbook.PauseState), pauses/* every
//	                                    runbook's: deleted by resume or, once past its until, by
//	                                    the leader (pauses.go)
//	dedup/replay/<dead letter>/<runbook> a replayed event's run, created with it in the txn that
//	                                    deletes the dead letter: a second replay finds it
//
// Probe keys (health, watch, compact) are never written: a count-only read of
// one costs etcd nothing and returns the store's current revision.
type Keys struct{ prefix string }

// Prefix is the prefix every key starts with.
func (k Keys) Prefix() string { return k.prefix }

// Runbooks.

func (k Keys) runbookCurrent(name string) string { return k.prefix + "runbooks/" + name + "/current" }
func (k Keys) runbookVersion(name, version string) string {
	return k.prefix + "runbooks/" + name + "/versions/" + version
}

func (k Keys) rollout(name string) string { return k.prefix + "rollouts/" + name }

// Rollouts is the prefix of every runbook's rollout key.
func (k Keys) Rollouts() string { return k.prefix + "rollouts/" }

// Runbooks is the prefix of every runbook's versions and current pointer.
func (k Keys) Runbooks() string { return k.prefix + "runbooks/" }

// Executions, their history and their claims.

func (k Keys) execution(id string) string  { return k.prefix + "executions/" + id }
func (k Keys) executions() string          { return k.prefix + "executions/" }
func (k Keys) history(id string) string    { return k.prefix + "history/" + id + "/" }
func (k Keys) event(id, pos string) string { return k.prefix + "history/" + id + "/" + pos }
func (k Keys) runnable(id string) string   { return k.prefix + "runnable/" + id }
func (k Keys) owner(id string) string      { return k.prefix + "owners/" + id }
func (k Keys) cancel(id string) string     { return k.prefix + "cancel/" + id }

// Runnables is the prefix of the runnable executions' keys.
func (k Keys) Runnables() string { return k.prefix + "runnable/" }

// Owners is the prefix of the claims' keys; a claim's value is its node's id.
func (k Keys) Owners() string { return k.prefix + "owners/" }

// Cancels is the prefix of the cancel requests' keys.
func (k Keys) Cancels() string { return k.prefix + "cancel/" }

// IDUnder returns what follows prefix (one of the collections' prefixes,
// such as Owners()) in key: the execution id of owners/<id>.
func (k Keys) IDUnder(key, prefix string) string {
	return strings.TrimPrefix(key, prefix)
}

// Waits, timers, signals, approvals and their notices.

func (k Keys) waits(id string) string     { return k.prefix + "waits/" + id + "/" }
func (k Keys) allWaits() string           { return k.prefix + "waits/" }
func (k Keys) wait(id, pos string) string { return k.prefix + "waits/" + id + "/" + pos }
func (k Keys) signals(id string) string   { return k.prefix + "signals/" + id + "/" }

// signalList is the legacy key of an execution's kept signals of one name,
// as one JSON list.
func (k Keys) signalList(id, name string) string { return k.prefix + "signals/" + id + "/" + name }

// keptSignals is the prefix of an execution's kept signals of one name, one
// key each; keptSignal is one of them (seq sorts in delivery order).
func (k Keys) keptSignals(id, name string) string {
	return k.prefix + "signals/" + id + "/" + name + "/"
}
func (k Keys) keptSignal(id, name, seq string) string { return k.keptSignals(id, name) + seq }

// Timers is the prefix of the durable timers' keys.
func (k Keys) Timers() string { return k.prefix + "timers/" }

// timer is the key of a durable timer: sorted by due time, then execution.
func (k Keys) timer(due time.Time, id, pos string) string {
	return fmt.Sprintf("%stimers/%013d/%s/%s", k.prefix, due.UnixMilli(), id, pos)
}

// ParseTimer splits a timer key into its due time, execution and position.
func (k Keys) ParseTimer(key string) (due time.Time, id, pos string, err error) {
	rest := strings.TrimPrefix(key, k.Timers())
	ms, rest, ok := strings.Cut(rest, "/")
	if !ok {
		return due, "", "", fmt.Errorf("bad timer key %q", key)
	}
	id, pos, ok = strings.Cut(rest, "/")
	if !ok {
		return due, "", "", fmt.Errorf("bad timer key %q", key)
	}
	var n int64
	if _, err := fmt.Sscanf(ms, "%d", &n); err != nil {
		return due, "", "", fmt.Errorf("bad timer key %q: %w", key, err)
	}
	return time.UnixMilli(n), id, pos, nil
}

func (k Keys) executionApprovals(id string) string { return k.prefix + "approvals/" + id + "/" }
func (k Keys) approvals(id, pos string) string     { return k.prefix + "approvals/" + id + "/" + pos + "/" }
func (k Keys) approval(id, pos, user string) string {
	return k.approvals(id, pos) + url.PathEscape(strings.ToLower(user))
}

func (k Keys) allNotices() string                { return k.prefix + "notices/" }
func (k Keys) executionNotices(id string) string { return k.prefix + "notices/" + id + "/" }
func (k Keys) notices(id, pos string) string     { return k.prefix + "notices/" + id + "/" + pos + "/" }
func (k Keys) notice(id, pos string, round int) string {
	return k.notices(id, pos) + strconv.Itoa(round)
}

// legacySignalWaits is the signal-wait index earlier versions wrote next to
// each signal wait. Nothing writes or reads it now; an execution's end and
// retention still delete what an upgraded cluster left under it.
func (k Keys) legacySignalWaits(id string) string { return k.prefix + "signalwaits/" + id + "/" }

// Logs, limits and the audit log.

func (k Keys) logs(id string) string            { return k.prefix + "logs/" + id + "/" }
func (k Keys) logLine(id, key string) string    { return k.prefix + "logs/" + id + "/" + key }
func (k Keys) active(runbook, id string) string { return k.prefix + "active/" + runbook + "/" + id }
func (k Keys) activeOf(runbook string) string   { return k.prefix + "active/" + runbook + "/" }
func (k Keys) audit() string                    { return k.prefix + "audit/" }
func (k Keys) auditRecord(id string) string     { return k.prefix + "audit/" + id }

// Trigger admission.

func (k Keys) allDedup() string                  { return k.prefix + "dedup/" }
func (k Keys) dedup(scope, key string) string    { return k.prefix + "dedup/" + scope + "/" + key }
func (k Keys) alertRun(fp, id string) string     { return k.prefix + "alerts/" + fp + "/" + id }
func (k Keys) alertRuns(fp string) string        { return k.prefix + "alerts/" + fp + "/" }
func (k Keys) group(runbook, hash string) string { return k.prefix + "groups/" + runbook + "/" + hash }
func (k Keys) cronLast(runbook string) string    { return k.prefix + "cron/" + runbook + "/last" }
func (k Keys) gate(runbook string) string        { return k.prefix + "gates/" + runbook }
func (k Keys) slot(runbook, id string) string    { return k.prefix + "slots/" + runbook + "/" + id }
func (k Keys) slotsOf(runbook string) string     { return k.prefix + "slots/" + runbook + "/" }
func (k Keys) queued(runbook, id string) string  { return k.prefix + "queued/" + runbook + "/" + id }
func (k Keys) queuedOf(runbook string) string    { return k.prefix + "queued/" + runbook + "/" }
func (k Keys) cronTick(runbook string, at time.Time) string {
	return k.prefix + "cron/" + runbook + "/" + strconv.FormatInt(at.Unix(), 10)
}

// Slots is the prefix of the bounded runbooks' slot keys (slots/<runbook>/<id>).
func (k Keys) Slots() string { return k.prefix + "slots/" }

// AllQueued is the prefix of the queued runs' keys (queued/<runbook>/<id>).
func (k Keys) AllQueued() string { return k.prefix + "queued/" }

// RunbookOf returns the runbook segment of a key prefix<runbook>/<id>, where
// prefix is Slots() or AllQueued().
func RunbookOf(key, prefix string) string {
	rb, _, _ := strings.Cut(strings.TrimPrefix(key, prefix), "/")
	return rb
}

// Budgets and usage, per UTC day (2006-01-02): the day comes first, so
// that retention deletes old days with one range delete each.

func (k Keys) budgets() string             { return k.prefix + "budgets/" }
func (k Keys) budgetsOf(day string) string { return k.prefix + "budgets/" + day + "/" }
func (k Keys) budget(day, runbook, name string) string {
	return k.prefix + "budgets/" + day + "/" + runbook + "/" + name
}
func (k Keys) usage() string             { return k.prefix + "usage/" }
func (k Keys) usageOf(day string) string { return k.prefix + "usage/" + day + "/" }
func (k Keys) usageOfRunbook(day, runbook string) string {
	return k.prefix + "usage/" + day + "/" + runbook + "/"
}
func (k Keys) executionUsage(day, runbook, id string) string {
	return k.prefix + "usage/" + day + "/" + runbook + "/" + id
}

// The cluster: nodes and the leader.

func (k Keys) node(id string) string { return k.prefix + "nodes/" + id }
func (k Keys) nodes() string         { return k.prefix + "nodes/" }

// Election is the prefix of the leader election.
func (k Keys) Election() string { return k.prefix + "election/" }

// The store's format marker and the lock a migration holds.

func (k Keys) format() string        { return k.prefix + "format" }
func (k Keys) migrationLock() string { return k.prefix + "migration/" }

// The execution index (index.go): by status class, and by runbook and
// status class; keys end with the execution's id inverted (newestFirst).
func (k Keys) statusIndex(class string) string { return k.prefix + "ix/s/" + class + "/" }
func (k Keys) runbookIndex(runbook, class string) string {
	return k.prefix + "ix/r/" + runbook + "/" + class + "/"
}

// The dead-letter index (deadindex.go): by reason, and by runbook and
// reason; keys end with the dead letter's cursor inverted (newestFirst).
func (k Keys) deadIndex(reason string) string { return k.prefix + "ix/d/" + reason + "/" }
func (k Keys) deadRunbookIndexes() string     { return k.prefix + "ix/dr/" }
func (k Keys) deadRunbookIndex(runbook, reason string) string {
	return k.prefix + "ix/dr/" + runbook + "/" + reason + "/"
}

// sampleOf is the prefix of the sample of index prefix p (ixs/ for ix/).
func (k Keys) sampleOf(p string) string {
	return k.prefix + "ixs/" + strings.TrimPrefix(p, k.prefix+"ix/")
}

// migrating is how far the migration to format to got: the last execution
// id it did.
func (k Keys) migrating(to int) string { return k.prefix + "migrating/" + strconv.Itoa(to) }

// migratingDeadLetters is how far the migration to format to got indexing
// dead letters: the last key it did, after deadletters/.
func (k Keys) migratingDeadLetters(to int) string { return k.migrating(to) + "/deadletters" }

// probe is a key that is never written (see Keys).
func (k Keys) probe(what string) string { return k.prefix + what }

// Dead letters: executions that ended without completing and trigger events
// that started nothing, until acknowledged (see deadletters.go). An
// execution's is written in the txn of its end, so listing them reads no
// execution record.

func (k Keys) deadLetters() string              { return k.prefix + "deadletters/" }
func (k Keys) deadExecutions() string           { return k.prefix + "deadletters/executions/" }
func (k Keys) deadExecution(id string) string   { return k.prefix + "deadletters/executions/" + id }
func (k Keys) deadEvents() string               { return k.prefix + "deadletters/events/" }
func (k Keys) deadEvent(id string) string       { return k.prefix + "deadletters/events/" + id }
func (k Keys) deadEventDedup(key string) string { return k.dedup("deadletter", key) }

// eventAt is the key of the event at pos recorded by an execution's
// attempt: the first attempt's at event(id, pos), a later one's beside it,
// so history stays append-only (runtime.Effective picks the one to replay).
func (k Keys) eventAt(id, pos string, attempt int) string {
	if attempt <= 1 {
		return k.event(id, pos)
	}
	return k.event(id, pos) + "@" + strconv.Itoa(attempt)
}

// eventAttempts reads every attempt's event at pos: the first attempt's
// key and the later attempts' beside it (a prefix of event(id, pos) alone
// would also read the positions under pos). latestEvent picks from both.
func (k Keys) eventAttempts(id, pos string) []clientv3.Op {
	return []clientv3.Op{clientv3.OpGet(k.event(id, pos)), clientv3.OpGet(k.event(id, pos)+"@", clientv3.WithPrefix())}
}

// policies is the key of the policy set: one key, so a set is replaced all
// or nothing.
func (k Keys) policies() string { return k.prefix + "policies" }

// sessionSecret is the key of the UI sessions' secret (sessionsecret.go).
func (k Keys) sessionSecret() string { return k.prefix + "secrets/session" }

// Circuits is the prefix of the shared circuit breaker records.
func (k Keys) Circuits() string { return k.prefix + "circuits/" }

func (k Keys) circuit(host string) string { return k.Circuits() + host }

// Nodes is the prefix of the node registrations.
func (k Keys) Nodes() string { return k.nodes() }

// Rollups: counts of ended executions per runbook per minute and hour for
// SLOs, and usage per runbook per day (see rollups.go). Times are UTC,
// stamped so that keys sort by time: <minute> is 2006-01-02T15:04, <hour>
// 2006-01-02T15, <day> 2006-01-02; each family's day prune is a range delete
// per runbook up to the cutoff's day.

func (k Keys) sloEnds() string            { return k.prefix + "slo/d/" }
func (k Keys) sloMinutes() string         { return k.prefix + "slo/m/" }
func (k Keys) sloHours() string           { return k.prefix + "slo/h/" }
func (k Keys) sloEndsOf(rb string) string { return k.sloEnds() + rb + "/" }
func (k Keys) sloMinutesOf(rb string) string {
	return k.sloMinutes() + rb + "/"
}
func (k Keys) sloHoursOf(rb string) string { return k.sloHours() + rb + "/" }
func (k Keys) sloEnd(rb string, ended time.Time, id string, attempt int) string {
	return k.sloEndsOf(rb) + minuteStamp(ended) + "/" + id + "@" + strconv.Itoa(attempt)
}
func (k Keys) sloRetraction(rb string, ended time.Time, id string, attempt int) string {
	return k.sloEnd(rb, ended, id, attempt) + "-"
}
func (k Keys) sloMinute(rb string, t time.Time) string { return k.sloMinutesOf(rb) + minuteStamp(t) }
func (k Keys) sloHour(rb string, t time.Time) string   { return k.sloHoursOf(rb) + hourStamp(t) }
func (k Keys) sloBuilt() string                        { return k.prefix + "slo/built" }

func (k Keys) usageDays() string             { return k.prefix + "usagedays/" }
func (k Keys) usageDaysOf(day string) string { return k.prefix + "usagedays/" + day + "/" }
func (k Keys) usageDay(day, runbook string) string {
	return k.prefix + "usagedays/" + day + "/" + runbook
}
func (k Keys) usageFolded() string             { return k.prefix + "usagefolded/" }
func (k Keys) usageFoldedOf(day string) string { return k.prefix + "usagefolded/" + day + "/" }
func (k Keys) usageFoldedKey(day, runbook, id string) string {
	return k.prefix + "usagefolded/" + day + "/" + runbook + "/" + id
}

const (
	minuteLayout = "2006-01-02T15:04"
	hourLayout   = "2006-01-02T15"
)

func minuteStamp(t time.Time) string { return t.UTC().Format(minuteLayout) }
func hourStamp(t time.Time) string   { return t.UTC().Format(hourLayout) }

// Child runbooks (children.go).

func (k Keys) child(parent, position string, attempt int) string {
	return k.prefix + "children/" + parent + "/" + position + "@" + strconv.Itoa(max(attempt, 1))
}
func (k Keys) children(parent string) string { return k.prefix + "children/" + parent + "/" }
func (k Keys) childEnds() string             { return k.prefix + "childends/" }
func (k Keys) childEnd(id string) string     { return k.prefix + "childends/" + id }

// Pauses (pauses.go).

func (k Keys) pause(runbook string) string { return k.prefix + "pauses/" + runbook }

// Pauses is the prefix of the pauses' keys (pauses/<runbook>, pauses/*).
func (k Keys) Pauses() string { return k.prefix + "pauses/" }

func (k Keys) replayed(deadLetter, runbook string) string {
	return k.dedup("replay", deadLetter+"/"+runbook)
}
func (k Keys) replays(deadLetter string) string { return k.dedup("replay", deadLetter+"/") }
