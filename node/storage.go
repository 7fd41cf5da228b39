package node

import (
	"log/slog"
	"time"

	"github.com/starbook/starbook/cluster"
	"github.com/starbook/starbook/quota"
	"github.com/starbook/starbook/triggers"
)

// When etcd refuses a write for its quota (NOSPACE), nothing a run does can
// be recorded until space is freed and the alarm disarmed: a run whose
// checkpoint or outcome met it keeps its claim and retries its outcome (with
// the checkpoint) with backoff (finish), and an execution whose claim met it
// is claimed again after noSpaceRetry, not claimRetry, so that a full store
// is not hammered by every runnable execution ten times a second. No
// execution fails or is lost for it: once writes succeed again, each run
// records where it stopped and whichever node claims it replays it.

// noSpaceRetry is how long a node waits to claim an execution again after
// its claim met NOSPACE.
const noSpaceRetry = 2 * time.Second

// noSpaceLogEvery bounds the node's NOSPACE log lines: one per interval,
// however many runs meet it.
const noSpaceLogEvery = 30 * time.Second

// noticeNoSpace reports whether err is etcd's NOSPACE; if so it tells the
// storage guard (which refuses new starts at once) and logs what to do, at
// most once per noSpaceLogEvery per process.
func (n *Node) noticeNoSpace(err error, log *slog.Logger, what string) bool {
	if !quota.IsNoSpace(err) {
		return false
	}
	n.cfg.Storage.Noticed(err)
	now, last := time.Now().UnixNano(), n.noSpaceLogged.Load()
	if now-last >= int64(noSpaceLogEvery) && n.noSpaceLogged.CompareAndSwap(last, now) {
		log.Error("etcd is out of space (NOSPACE): "+what+" waits until writes succeed again; no run is lost. "+quota.Remedy, "err", err)
	}
	return true
}

// cronStore is what the leader's cron fires ticks through: tr, behind the
// storage guard when there is one.
func (n *Node) cronStore(tr *cluster.Triggers) triggers.CronStore {
	if n.cfg.Storage == nil {
		return tr
	}
	return &quota.CronStore{CronStore: tr, Guard: n.cfg.Storage, DeadLetters: tr}
}
