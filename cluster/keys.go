package cluster

import (
	"fmt"
	"strings"
	"time"
)

// keys builds the etcd keys of the layout in DESIGN.md under one prefix.
type keys struct{ prefix string }

func (k keys) runbookCurrent(name string) string { return k.prefix + "runbooks/" + name + "/current" }
func (k keys) runbookVersion(name, version string) string {
	return k.prefix + "runbooks/" + name + "/versions/" + version
}
func (k keys) runbooks() string              { return k.prefix + "runbooks/" }
func (k keys) execution(id string) string    { return k.prefix + "executions/" + id }
func (k keys) executions() string            { return k.prefix + "executions/" }
func (k keys) history(id string) string      { return k.prefix + "history/" + id + "/" }
func (k keys) event(id, pos string) string   { return k.prefix + "history/" + id + "/" + pos }
func (k keys) runnable(id string) string     { return k.prefix + "runnable/" + id }
func (k keys) runnables() string             { return k.prefix + "runnable/" }
func (k keys) owner(id string) string        { return k.prefix + "owners/" + id }
func (k keys) owners() string                { return k.prefix + "owners/" }
func (k keys) waits(id string) string        { return k.prefix + "waits/" + id + "/" }
func (k keys) allWaits() string              { return k.prefix + "waits/" }
func (k keys) wait(id, pos string) string    { return k.prefix + "waits/" + id + "/" + pos }
func (k keys) signals(id string) string      { return k.prefix + "signals/" + id + "/" }
func (k keys) signal(id, name string) string { return k.prefix + "signals/" + id + "/" + name }
func (k keys) cancel(id string) string       { return k.prefix + "cancel/" + id }
func (k keys) cancels() string               { return k.prefix + "cancel/" }
func (k keys) timers() string                { return k.prefix + "timers/" }
func (k keys) node(id string) string         { return k.prefix + "nodes/" + id }
func (k keys) nodes() string                 { return k.prefix + "nodes/" }
func (k keys) election() string              { return k.prefix + "election/" }

// legacySignalWaits is the signal-wait index earlier versions wrote next to
// each signal wait. Nothing writes or reads it now; an execution's end and
// retention still delete what an upgraded cluster left under it.
func (k keys) legacySignalWaits(id string) string { return k.prefix + "signalwaits/" + id + "/" }

func (k keys) idFrom(key, collection string) string {
	return strings.TrimPrefix(key, k.prefix+collection)
}

// timer is the key of a durable timer: sorted by due time, then execution.
func (k keys) timer(due time.Time, id, pos string) string {
	return fmt.Sprintf("%stimers/%013d/%s/%s", k.prefix, due.UnixMilli(), id, pos)
}

// parseTimer splits a timer key into its due time, execution and position.
func (k keys) parseTimer(key string) (due time.Time, id, pos string, err error) {
	rest := strings.TrimPrefix(key, k.timers())
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
