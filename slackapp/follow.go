package slackapp

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/slack-go/slack"

	"github.com/starbook/starbook"
	sbruntime "github.com/starbook/starbook/runtime"
)

// defaultRefresh is how often FollowRuns rereads the runs it follows, for
// the steps they record (an execution's record changes with its status
// only).
const defaultRefresh = 5 * time.Second

// recentOnStart is how many of the newest executions FollowRuns rereads
// when it starts, so that a run that ended while no node led still gets
// its final update.
const recentOnStart = 50

// liveStatuses are the statuses of a run whose message may still change.
var liveStatuses = []sbruntime.Status{sbruntime.StatusPending, sbruntime.StatusRunning,
	sbruntime.StatusWaiting, sbruntime.StatusCompensating}

// SetRefresh sets how often FollowRuns rereads the runs it follows (tests).
func (a *App) SetRefresh(every time.Duration) { a.refreshEvery = every }

// FollowRuns keeps the message of every run started from Slack in step
// with the run until ctx is done: its status, its last step, what it waits
// for, its end and its runbook's pause. Run it on the leader only
// (node.Config.LeaderTasks). Where each message is lives in its run's
// trigger (AttrChannel, AttrMessageTS), so a new leader picks up every run
// in flight: it lists the live runs (and the newest ones, for ends it
// missed), then follows the execution records' changes, and rereads the
// live runs every refresh for their steps. An update is sent only when
// what the message shows changed.
func (a *App) FollowRuns(ctx context.Context) {
	if a.svc == nil {
		return
	}
	f := &follower{app: a, shown: map[string]string{}, live: map[string]bool{}, dirty: map[string]bool{},
		wake: make(chan struct{}, 1)}
	wctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	ready := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		a.svc.WatchChanges(wctx, f, func() { close(ready) })
	}()
	defer func() {
		cancel()
		wg.Wait()
	}()
	select {
	case <-ready: // every change from here on is seen: list what is already there
	case <-ctx.Done():
		return
	}
	f.catchUp(ctx)
	tick := time.NewTicker(a.refreshEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-f.wake:
			f.drain(ctx)
		case <-tick.C:
			f.refreshLive(ctx)
		}
	}
}

// follower is FollowRuns' state: what each message shows, which runs are
// live, and which changed since they were last shown.
type follower struct {
	app   *App
	shown map[string]string // execution id -> the blocks last shown
	live  map[string]bool   // runs followed until they end
	ended []string          // ended runs whose shown entry goes at the next refresh

	mu    sync.Mutex
	dirty map[string]bool // changed by the watch, not yet shown
	wake  chan struct{}
}

var _ starbook.ChangeWatcher = (*follower)(nil)

// ExecutionChanged implements starbook.ChangeWatcher: a run started from
// Slack is marked to be shown again.
func (f *follower) ExecutionChanged(_, cur *sbruntime.Execution) {
	if !fromSlack(cur) {
		return
	}
	f.mu.Lock()
	f.dirty[cur.ID] = true
	f.mu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// ApprovalResolved implements starbook.ChangeWatcher (the run's record
// changes as it resumes).
func (f *follower) ApprovalResolved(string, string, time.Duration) {}

// fromSlack reports whether e was started from Slack with a message.
func fromSlack(e *sbruntime.Execution) bool {
	return e != nil && e.Trigger.Type == TriggerSlack && e.Trigger.Attrs[AttrChannel] != "" && e.Trigger.Attrs[AttrMessageTS] != ""
}

func (f *follower) catchUp(ctx context.Context) {
	seen := map[string]bool{}
	follow := func(list []*sbruntime.Execution) {
		for _, e := range list {
			if fromSlack(e) && !seen[e.ID] {
				seen[e.ID] = true
				f.show(ctx, e.ID)
			}
		}
	}
	for _, st := range liveStatuses {
		after := ""
		for ctx.Err() == nil {
			list, err := f.app.svc.Executions(ctx, starbook.Filter{Status: st, Limit: 500, After: after})
			if err != nil {
				f.app.log.Warn("list live runs", "status", st, "err", err)
				break
			}
			follow(list)
			if len(list) < 500 {
				break
			}
			after = list[len(list)-1].ID
		}
	}
	recent, err := f.app.svc.Executions(ctx, starbook.Filter{Limit: recentOnStart})
	if err != nil {
		f.app.log.Warn("list recent runs", "err", err)
	}
	follow(recent)
}

func (f *follower) drain(ctx context.Context) {
	f.mu.Lock()
	ids := make([]string, 0, len(f.dirty))
	for id := range f.dirty {
		ids = append(ids, id)
	}
	clear(f.dirty)
	f.mu.Unlock()
	for _, id := range ids {
		f.show(ctx, id)
	}
}

func (f *follower) refreshLive(ctx context.Context) {
	for _, id := range f.ended {
		delete(f.shown, id)
	}
	f.ended = f.ended[:0]
	for id := range f.live {
		f.show(ctx, id)
	}
}

// show updates the message of run id if what it shows changed.
func (f *follower) show(ctx context.Context, id string) {
	end, err := f.app.refreshMessage(ctx, id, f.shown)
	switch {
	case err != nil:
		f.live[id] = true // retried at the next refresh
	case end:
		delete(f.live, id)
		f.ended = append(f.ended, id)
	default:
		f.live[id] = true
	}
}

// refreshMessage renders run id's message and updates it when it differs
// from shown[id] (shown nil: always). It reports whether the run's message
// is final: the run ended, or the message is gone.
func (a *App) refreshMessage(ctx context.Context, id string, shown map[string]string) (final bool, err error) {
	v, err := a.runView(ctx, id)
	if err != nil {
		if ctx.Err() == nil {
			a.log.Warn("read run for its message", "execution", id, "err", err)
		}
		return false, err
	}
	if !fromSlack(v.e) {
		return true, nil
	}
	text, blocks := v.message(a.cfg.PublicURL)
	key, _ := json.Marshal(blocks)
	if shown != nil && shown[id] == string(key) {
		return v.e.Status.Terminal(), nil
	}
	ch, ts := v.e.Trigger.Attrs[AttrChannel], v.e.Trigger.Attrs[AttrMessageTS]
	if _, _, _, err := a.api.UpdateMessageContext(ctx, ch, ts, slack.MsgOptionText(text, false), slack.MsgOptionBlocks(blocks...)); err != nil {
		if code := errorCode(err); code == "message_not_found" || code == "channel_not_found" || code == "cant_update_message" {
			a.log.Warn("run message cannot be updated", "execution", id, "err", err)
			return true, nil // nothing to retry: the message is gone
		}
		a.log.Warn("update run message", "execution", id, "err", err)
		return false, err
	}
	if shown != nil {
		shown[id] = string(key)
	}
	return v.e.Status.Terminal(), nil
}
