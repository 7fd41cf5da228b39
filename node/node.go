package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.starlark.net/starlark"

	"github.com/starbook/starbook/cluster"
	"github.com/starbook/starbook/downstream"
	"github.com/starbook/starbook/policy"
	"github.com/starbook/starbook/quota"
	sbruntime "github.com/starbook/starbook/runtime"
	"github.com/starbook/starbook/triggers"
)

// Config configures a node.
type Config struct {
	ID         string        // unique per node; a restarted node reuses its id
	Workers    int           // executions run at once (default 256)
	SessionTTL time.Duration // lease TTL of claims and membership (default 10s)
	// StopGrace is how long a stopping node lets in-flight steps finish.
	StopGrace time.Duration
	Limits    sbruntime.Limits
	Builtins  starlark.StringDict
	Logger    *slog.Logger
	Now       func() time.Time
	// Clock drives cron schedules and queued-run promotion on the leader;
	// real timers on Now when nil.
	Clock triggers.Clock
	// LeaderTasks run while this node leads, each in its own goroutine, and
	// are stopped (ctx done) and waited for when leadership ends.
	LeaderTasks []func(ctx context.Context)
	// Observer watches the engine's runs and steps (metrics, traces); nil for none.
	Observer sbruntime.Observer
	// Guards are the downstream guards the node's HTTP built-ins use
	// (builtins.HTTPOptions.Guards): the node keeps them up to date with
	// its cluster's membership, declared http limits and circuits. Nil for none.
	Guards *downstream.Guards
	// RolloutTick is how often the leader looks at active canary rollouts
	// besides when a run ends here or a rollout changes (default 5s): runs
	// that end on other nodes are counted at the next tick.
	RolloutTick time.Duration
	// Storage, when set, refuses cron's new runs while the store is nearly
	// full (they become dead letters, reason storage), and is told at once
	// of a write etcd refused for its quota. See storage.go.
	Storage *quota.Guard
}

// Node claims runnable executions and runs them; the elected leader also fires
// durable timers. Every node of a cluster runs the same code against one etcd.
type Node struct {
	store  *cluster.Store
	cfg    Config
	engine *sbruntime.Engine
	log    *slog.Logger

	sessionMu sync.Mutex
	session   *concurrency.Session // replaced when etcd expired the last one

	policies atomic.Pointer[policy.Set] // the stored policy set (policy.go)

	programsMu sync.Mutex
	programs   map[string]*sbruntime.Program // by name@version

	mu       sync.Mutex
	runnable map[string]bool                    // runnable/<id> keys, from the watch
	owned    map[string]bool                    // owners/<id> keys, from the watch
	running  map[string]context.CancelCauseFunc // executions this node runs
	// claimedAt is the revision of each running execution's claim, and
	// runnableAgain the running ones made runnable after it (a redrive or
	// a signal as their run ends): queued again when the run lets go.
	claimedAt     map[string]int64
	runnableAgain map[string]bool
	live          *concurrency.Session // while the node claims executions; nil when stopped or stopping
	queue         []string             // candidates in arrival order
	queued        map[string]bool
	kick          chan struct{}
	drain         chan struct{}
	drainOnce     sync.Once
	wg            sync.WaitGroup
	runs          *runPool     // the goroutines that run executions
	noSpaceLogged atomic.Int64 // when NOSPACE was last logged, unix ns (storage.go)
}

// New joins the cluster: it opens the store's format (cluster.OpenFormat:
// a store of a newer format is refused with a *cluster.FormatError and left
// untouched; an older one is migrated), revokes the lease a previous run of
// the same node id left behind (so its claims are released at once, not
// after the TTL), opens a session and registers the node.
func New(ctx context.Context, store *cluster.Store, cfg Config) (*Node, error) {
	if cfg.ID == "" {
		return nil, errors.New("node: an id is required")
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 256
	}
	if cfg.RolloutTick <= 0 {
		cfg.RolloutTick = 5 * time.Second
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = 10 * time.Second
	}
	if cfg.StopGrace <= 0 {
		cfg.StopGrace = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	n := &Node{
		store: store, cfg: cfg, log: cfg.Logger.With("node", cfg.ID),
		engine: &sbruntime.Engine{Builtins: cfg.Builtins, Limits: cfg.Limits, Now: cfg.Now,
			Logger: cfg.Logger.With("node", cfg.ID), Observer: cfg.Observer},
		programs: map[string]*sbruntime.Program{},
		runnable: map[string]bool{}, owned: map[string]bool{}, running: map[string]context.CancelCauseFunc{}, claimedAt: map[string]int64{}, runnableAgain: map[string]bool{},
		queued: map[string]bool{}, kick: make(chan struct{}, 1), drain: make(chan struct{}), runs: newRunPool(),
	}
	// Before any write: a store of a newer format is left untouched.
	f, err := store.OpenFormat(ctx)
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", cfg.ID, err)
	}
	n.log.Info("store format", "format", f.Format, "written_by", f.WrittenBy)
	if err := n.revokePrevious(ctx); err != nil {
		return nil, err
	}
	if err := n.loadPolicies(ctx); err != nil { // before any run: none starts unguarded
		return nil, err
	}
	if err := n.openSession(ctx); err != nil {
		return nil, err
	}
	if cfg.Guards != nil { // registered: counted among the nodes; before any run
		if _, err := n.syncGuards(ctx); err != nil {
			n.sess().Close()
			return nil, fmt.Errorf("node %s: downstream guards: %w", cfg.ID, err)
		}
	}
	return n, nil
}

// openSession opens a session (the lease every claim of this node is bound
// to) and registers the node under it.
func (n *Node) openSession(ctx context.Context) error {
	ttl := max(int(n.cfg.SessionTTL/time.Second), 1)
	s, err := concurrency.NewSession(n.store.Client(), concurrency.WithTTL(ttl), concurrency.WithContext(context.WithoutCancel(ctx)))
	if err != nil {
		return fmt.Errorf("node %s: open session: %w", n.cfg.ID, err)
	}
	rec := cluster.NodeRecord{ID: n.cfg.ID, Lease: int64(s.Lease()), Started: n.cfg.Now().UTC(), Workers: n.cfg.Workers, TTL: ttl}
	if err := n.store.RegisterNode(ctx, rec); err != nil {
		s.Close()
		return err
	}
	n.sessionMu.Lock()
	n.session = s
	n.sessionMu.Unlock()
	return nil
}

// sess returns the node's current session.
func (n *Node) sess() *concurrency.Session {
	n.sessionMu.Lock()
	defer n.sessionMu.Unlock()
	return n.session
}

func (n *Node) revokePrevious(ctx context.Context) error {
	prev, err := n.store.Node(ctx, n.cfg.ID)
	if err != nil {
		return err
	}
	if prev != nil && prev.Lease != 0 {
		if _, err := n.store.Client().Revoke(ctx, clientv3.LeaseID(prev.Lease)); err != nil {
			n.log.Debug("revoke previous lease", "lease", prev.Lease, "err", err)
		} else {
			n.log.Info("released the claims of this node's previous run", "lease", prev.Lease)
		}
	}
	return nil
}

// Ready returns nil while the node holds a live session (it can claim).
func (n *Node) Ready() error {
	select {
	case <-n.sess().Done():
		return errors.New("session expired; rejoining")
	default:
		return nil
	}
}

// Running returns how many executions run on this node now.
func (n *Node) Running() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.running)
}

// Engine returns the node's replay engine.
func (n *Node) Engine() *sbruntime.Engine { return n.engine }

// Run claims and runs executions until ctx is done, then stops gracefully:
// it claims nothing more, lets in-flight steps finish for StopGrace, releases
// its claims and closes its session so other nodes take over at once. If etcd
// expires the node's session (etcd unreachable for longer than the TTL), the
// node stops its runs — their claims are gone, so they could not write — and
// joins again with a new session once etcd answers.
func (n *Node) Run(ctx context.Context) error {
	for {
		lost := n.runSession(ctx)
		if !lost {
			break
		}
		n.log.Error("session expired: runs stopped; rejoining when etcd answers")
		for backoff := 100 * time.Millisecond; ctx.Err() == nil; backoff = min(2*backoff, 5*time.Second) {
			if err := n.openSession(ctx); err == nil {
				n.log.Info("rejoined with a new session", "lease", int64(n.sess().Lease()))
				break
			} else {
				n.log.Warn("rejoin", "err", err)
			}
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
		}
		if ctx.Err() != nil {
			break
		}
	}
	closeCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = n.store.DeregisterNode(closeCtx, n.cfg.ID)
	return n.sess().Close()
}

// runSession runs the node's loops under the current session until ctx is
// done (a graceful stop: it returns false) or the session is lost (true).
func (n *Node) runSession(ctx context.Context) (lost bool) {
	s := n.sess()
	loopCtx, stopLoops := context.WithCancel(ctx)
	var loops sync.WaitGroup
	loops.Add(4)
	go func() { defer loops.Done(); n.watchLoop(loopCtx) }()
	go func() { defer loops.Done(); n.watchPolicies(loopCtx) }()
	go func() { defer loops.Done(); n.dispatchLoop(loopCtx, s) }()
	go func() { defer loops.Done(); n.leaderLoop(loopCtx) }()
	if n.cfg.Guards != nil {
		loops.Add(1)
		go func() { defer loops.Done(); n.watchGuards(loopCtx) }()
	}
	n.mu.Lock()
	n.live = s
	n.mu.Unlock()

	select {
	case <-ctx.Done():
	case <-s.Done():
		lost = true
	}
	n.mu.Lock()
	n.live = nil // no more runs start here (see Reserve)
	n.mu.Unlock()
	stopLoops()
	loops.Wait()
	if lost {
		n.stopRuns(errSessionLost)
		n.wg.Wait()
		return true
	}
	n.drainOnce.Do(func() { close(n.drain) })
	done := make(chan struct{})
	go func() { n.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(n.cfg.StopGrace):
		n.stopRuns(sbruntime.ErrStopping)
		<-done
	}
	return false
}

// errSessionLost stops runs whose claims expired with the session.
var errSessionLost = errors.New("session expired")

func (n *Node) stopRuns(cause error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, cancel := range n.running {
		cancel(cause)
	}
}

// watchLoop mirrors the runnable and owners keys into memory and queues every
// execution that is runnable and unowned.
func (n *Node) watchLoop(ctx context.Context) {
	for ctx.Err() == nil {
		if err := n.watchOnce(ctx); err != nil && ctx.Err() == nil {
			n.log.Warn("watch runnable executions", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(500 * time.Millisecond):
			}
		}
	}
}

func (n *Node) watchOnce(ctx context.Context) error {
	k := n.store.Keys()
	resp, err := n.store.Client().Txn(ctx).Then(
		clientv3.OpGet(k.Runnables(), clientv3.WithPrefix(), clientv3.WithKeysOnly()),
		clientv3.OpGet(k.Owners(), clientv3.WithPrefix(), clientv3.WithKeysOnly()),
		// Cancels requested while no watch was in place (between two
		// watches, or while one failed) reach the runs here.
		clientv3.OpGet(k.Cancels(), clientv3.WithPrefix(), clientv3.WithKeysOnly()),
	).Commit()
	if err != nil {
		return err
	}
	n.mu.Lock()
	n.runnable, n.owned = map[string]bool{}, map[string]bool{}
	for _, kv := range resp.Responses[0].GetResponseRange().Kvs {
		n.runnable[k.IDUnder(string(kv.Key), k.Runnables())] = true
	}
	for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
		n.owned[k.IDUnder(string(kv.Key), k.Owners())] = true
	}
	for id := range n.runnable {
		n.enqueueLocked(id)
	}
	for _, kv := range resp.Responses[2].GetResponseRange().Kvs {
		n.cancelRunningLocked(k.IDUnder(string(kv.Key), k.Cancels()))
	}
	n.mu.Unlock()
	n.wake()

	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	rev := resp.Header.Revision + 1
	runnableCh := n.store.Client().Watch(wctx, k.Runnables(), clientv3.WithPrefix(), clientv3.WithRev(rev))
	ownersCh := n.store.Client().Watch(wctx, k.Owners(), clientv3.WithPrefix(), clientv3.WithRev(rev))
	cancelCh := n.store.Client().Watch(wctx, k.Cancels(), clientv3.WithPrefix(), clientv3.WithRev(rev))
	// A periodic sweep lists everything again, in case a watch missed an event.
	sweep := time.NewTimer(sweepInterval)
	defer sweep.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-sweep.C:
			return nil
		case wr, ok := <-runnableCh:
			if !ok || wr.Err() != nil {
				return cluster.WatchErr(wr, ok)
			}
			n.mu.Lock()
			for _, ev := range wr.Events {
				id := k.IDUnder(string(ev.Kv.Key), k.Runnables())
				if ev.Type == clientv3.EventTypePut {
					n.runnable[id] = true
					n.enqueueLocked(id)
					if rev, ok := n.claimedAt[id]; ok && ev.Kv.ModRevision > rev {
						n.runnableAgain[id] = true // its run is ending: see untrack
					}
				} else {
					delete(n.runnable, id)
				}
			}
			n.mu.Unlock()
			n.wake()
		case wr, ok := <-ownersCh:
			if !ok || wr.Err() != nil {
				return cluster.WatchErr(wr, ok)
			}
			n.mu.Lock()
			for _, ev := range wr.Events {
				id := k.IDUnder(string(ev.Kv.Key), k.Owners())
				if ev.Type == clientv3.EventTypePut {
					n.owned[id] = true
				} else {
					delete(n.owned, id)
					if n.runnable[id] {
						n.enqueueLocked(id) // its owner died or released it
					}
				}
			}
			n.mu.Unlock()
			n.wake()
		case wr, ok := <-cancelCh:
			if !ok || wr.Err() != nil {
				return cluster.WatchErr(wr, ok)
			}
			for _, ev := range wr.Events {
				if ev.Type != clientv3.EventTypePut {
					continue
				}
				n.mu.Lock()
				n.cancelRunningLocked(k.IDUnder(string(ev.Kv.Key), k.Cancels()))
				n.mu.Unlock()
			}
		}
	}
}

// cancelRunningLocked stops the run of id, if it runs here, as cancelled:
// its user asked (a cancel/ key).
func (n *Node) cancelRunningLocked(id string) {
	if cancel, ok := n.running[id]; ok {
		cancel(sbruntime.ErrCancelled)
	}
}

// sweepInterval is how often a node lists the runnable executions again.
const sweepInterval = 30 * time.Second

func (n *Node) enqueueLocked(id string) {
	if !n.queued[id] {
		n.queued[id] = true
		n.queue = append(n.queue, id)
	}
}

func (n *Node) wake() {
	select {
	case n.kick <- struct{}{}:
	default:
	}
}

// dispatchLoop starts queued executions while worker slots are free.
func (n *Node) dispatchLoop(ctx context.Context, s *concurrency.Session) {
	for {
		for {
			id, ok := n.nextCandidate()
			if !ok {
				break
			}
			n.wg.Add(1)
			n.runs.run(func() {
				defer n.wg.Done()
				n.claimAndRun(s, id)
				n.wake()
			})
		}
		select {
		case <-ctx.Done():
			return
		case <-n.kick:
		}
	}
}

// nextCandidate pops the first queued execution that is runnable, unowned and
// not running here, if a worker slot is free; it marks it running.
func (n *Node) nextCandidate() (string, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for len(n.running) < n.cfg.Workers && len(n.queue) > 0 {
		id := n.queue[0]
		n.queue = n.queue[1:]
		delete(n.queued, id)
		if n.runnable[id] && !n.owned[id] && n.running[id] == nil {
			n.running[id] = func(error) {}
			return id, true
		}
	}
	return "", false
}

// claimAndRun claims id, replays it and records the outcome.
func (n *Node) claimAndRun(s *concurrency.Session, id string) {
	runCtx, cancel := n.track(id)
	defer n.untrack(id, cancel)
	claim, err := n.store.Claim(runCtx, id, n.cfg.ID, s.Lease())
	if err != nil {
		switch {
		case errors.Is(err, cluster.ErrNotClaimable):
		case n.noticeNoSpace(err, n.log.With("execution", id), "claiming executions"):
			n.claimAgainAfter(id, noSpaceRetry)
		default:
			n.log.Warn("claim", "execution", id, "err", err)
			n.claimAgainLater(id)
		}
		return
	}
	n.run(runCtx, s, claim)
}

// claimRetry is how long a node waits to claim an execution again after a
// claim failed on a storage error: a claim sent while etcd's raft leader
// died times out (about 5 s) and no watch event would bring it back before
// the sweep (sweepInterval), though the execution may be claimable since.
const claimRetry = 100 * time.Millisecond

// claimAgainLater queues id again after claimRetry, if it is still runnable
// and unowned then.
func (n *Node) claimAgainLater(id string) { n.claimAgainAfter(id, claimRetry) }

// claimAgainAfter queues id again after d, if it is still runnable and
// unowned then.
func (n *Node) claimAgainAfter(id string, d time.Duration) {
	time.AfterFunc(d, func() {
		n.mu.Lock()
		if n.runnable[id] && !n.owned[id] && n.running[id] == nil {
			n.enqueueLocked(id)
		}
		n.mu.Unlock()
		n.wake()
	})
}

// track makes id's run cancellable by stopRuns and cancel requests.
func (n *Node) track(id string) (context.Context, context.CancelCauseFunc) {
	runCtx, cancel := context.WithCancelCause(context.Background())
	n.mu.Lock()
	n.running[id] = cancel
	n.mu.Unlock()
	return runCtx, cancel
}

func (n *Node) untrack(id string, cancel context.CancelCauseFunc) {
	cancel(nil)
	n.mu.Lock()
	delete(n.running, id)
	// Made runnable again while this run was ending (a redrive right
	// after the end): the dispatcher passed it over as running.
	again := n.runnableAgain[id] && n.runnable[id] && !n.owned[id]
	delete(n.runnableAgain, id)
	delete(n.claimedAt, id)
	if again {
		n.enqueueLocked(id)
	}
	n.mu.Unlock()
	if again {
		n.wake()
	}
}

// slot is a worker reserved for a new execution this node is about to
// create and claim in one txn (cluster.Reservation): the session it is
// claimed under and its run's context. The run is tracked from the moment
// the slot is taken, so a cancel request that arrives between the create and
// the run is not lost.
type slot struct {
	n      *Node
	id     string
	sess   *concurrency.Session
	ctx    context.Context
	cancel context.CancelCauseFunc
}

var _ cluster.Runner = (*Node)(nil)

// Reserve takes a worker for a new execution id stored through s, if n
// (which may be nil) runs on that store, is claiming and has a worker free;
// nil otherwise. The store runs the execution in it (Start) or gives it back
// (Release).
func (n *Node) Reserve(s *cluster.Store, id string) cluster.Reservation {
	if n == nil || n.store != s {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.live == nil || len(n.running) >= n.cfg.Workers || n.running[id] != nil {
		return nil
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	n.running[id] = cancel
	n.wg.Add(1)
	return &slot{n: n, id: id, sess: n.live, ctx: ctx, cancel: cancel}
}

// Owner is the node and lease the create txn claims the execution for.
func (sl *slot) Owner() (string, clientv3.LeaseID) { return sl.n.cfg.ID, sl.sess.Lease() }

// Release gives the slot back unused.
func (sl *slot) Release() {
	sl.n.untrack(sl.id, sl.cancel)
	sl.n.wg.Done()
}

// Start runs the execution claimed in the slot's create txn on the node's
// run goroutines.
func (sl *slot) Start(claim *cluster.Claim) {
	sl.n.runs.run(func() {
		defer sl.n.wg.Done()
		defer sl.n.untrack(sl.id, sl.cancel)
		sl.n.run(sl.ctx, sl.sess, claim)
		sl.n.wake()
	})
}

// run replays a claimed execution and records the outcome.
func (n *Node) run(runCtx context.Context, s *concurrency.Session, claim *cluster.Claim) {
	id := claim.Execution.ID
	n.mu.Lock()
	n.owned[id] = true // before the watch says so, so the id is not dispatched again
	n.claimedAt[id] = claim.Revision()
	n.mu.Unlock()
	e := claim.Execution
	log := n.log.With("execution", id, "runbook", e.Runbook, "trace_id", e.TraceID())
	var outcome sbruntime.Outcome
	if claim.CancelRequested {
		outcome = sbruntime.Outcome{Status: sbruntime.StatusCancelled, Error: "cancelled"}
	} else {
		prog, err := n.Program(runCtx, e.Runbook, e.Version)
		if err != nil {
			log.Error("load runbook", "version", e.Version, "err", err)
			outcome = sbruntime.Outcome{Status: sbruntime.StatusFailed, Error: err.Error()}
			if !errors.Is(err, sbruntime.ErrNotFound) {
				outcome = sbruntime.Outcome{Err: err}
			}
		} else if gate, err := n.gate(runCtx, e, log); err != nil {
			log.Warn("read the runbook's budget", "version", e.Version, "err", err)
			outcome = sbruntime.Outcome{Err: err} // tried again, as after any storage failure
		} else {
			outcome = n.engine.Execute(runCtx, prog, &sbruntime.Run{
				Execution: e, History: claim.History, Waits: claim.Waits, Journal: claim, Drain: n.drain,
				DeferCheckpoint: true, // Finish records the last step's event with the outcome
				Gate:            gate, Policy: n.runPolicy(log)})
		}
	}
	if !n.finish(runCtx, claim, s, outcome, log) {
		return
	}
	if outcome.Err != nil {
		// Released and still runnable: queued again when this run lets go
		// (untrack), in case the watch saw the release while it still ran
		// here (after finish retried a write etcd refused, it often does).
		n.mu.Lock()
		n.runnableAgain[id] = true
		n.mu.Unlock()
	}
	switch {
	case outcome.Err != nil:
		log.Info("run stopped", "reason", outcome.Err)
	case outcome.Status == sbruntime.StatusFailed || outcome.Status == sbruntime.StatusStuck:
		log.Warn("execution "+string(outcome.Status), "error", outcome.Error)
	default:
		log.Debug("run ended", "status", outcome.Status)
	}
}

// finish records the outcome, retrying while etcd is unreachable or out of
// space: a claim that is neither finished nor released would hold its
// execution for as long as this node's session lives. It gives up when the
// node stops for good (runCtx's cause ErrStopping, after StopGrace): the
// session's close then releases the claim and the outcome is replayed. It
// reports whether the outcome was recorded.
func (n *Node) finish(runCtx context.Context, claim *cluster.Claim, s *concurrency.Session, o sbruntime.Outcome, log *slog.Logger) bool {
	stopping := runCtx.Done()
	for backoff := 100 * time.Millisecond; ; backoff = min(2*backoff, 5*time.Second) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := claim.Finish(ctx, o)
		cancel()
		switch {
		case err == nil:
			return true
		case errors.Is(err, sbruntime.ErrNotOwner):
			log.Info("claim lost before the outcome was recorded; its new owner replays it")
			return false
		}
		if !n.noticeNoSpace(err, log, "recording the outcomes of runs") {
			log.Warn("finish; retrying", "err", err, "in", backoff)
		}
		select {
		case <-s.Done():
			return false // the claim expired with the session
		case <-stopping:
			if errors.Is(context.Cause(runCtx), sbruntime.ErrStopping) {
				log.Warn("node stopping: outcome not recorded; the run is replayed where its history ends", "err", err)
				return false
			}
			stopping = nil // cancelled by its user: the outcome says so, record it
		case <-time.After(backoff):
		}
	}
}

// Program returns the compiled runbook version, compiling it once per node.
func (n *Node) Program(ctx context.Context, name, version string) (*sbruntime.Program, error) {
	key := name + "@" + version
	n.programsMu.Lock()
	p, ok := n.programs[key]
	n.programsMu.Unlock()
	if ok {
		return p, nil
	}
	b, _, err := n.store.Bundle(ctx, name, version)
	if err != nil {
		return nil, err
	}
	p, err = sbruntime.Compile(b, n.cfg.Builtins)
	if err != nil {
		return nil, fmt.Errorf("compile %s: %w", key, err)
	}
	n.programsMu.Lock()
	n.programs[key] = p
	n.programsMu.Unlock()
	return p, nil
}
