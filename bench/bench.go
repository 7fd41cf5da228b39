package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/starbook/starbook/builtins"
	"github.com/starbook/starbook/cluster"
	"github.com/starbook/starbook/downstream"
	"github.com/starbook/starbook/node"
	sbruntime "github.com/starbook/starbook/runtime"
	"github.com/starbook/starbook/service"
)

// Config sizes a bench run.
type Config struct {
	Quick   bool   // small sizes: a smoke run in seconds
	Dir     string // scratch directory (a temp dir when empty)
	Binary  string // the starbook binary, for ready_s and parked RSS; see Run
	Repeats int    // repeats of each latency figure (default 3)
	Out     io.Writer
	// ParkedOnly measures parked_100k_rss_mb alone, in this process: what
	// Run starts a fresh process of Binary for.
	ParkedOnly bool
	// Budget declares a generous budget() and an slo() on the bench runbook
	// (BenchBudget), so that every run, step and fan_out item is counted
	// against it, as on a runbook that declares both.
	Budget bool
	// Policy loads one run-time policy (BenchPolicy, an on_effect that
	// reads the history) on the bench node: every run then keeps its
	// history for the policy, and every effect would be judged.
	Policy bool
	// Only, when set, runs only the named workloads (Workloads), so that
	// an A/B of two builds takes seconds: e.g. step and throughput.
	Only []string
}

// Workloads are the names Config.Only takes, in the order they run.
var Workloads = []string{"step", "http", "throughput", "fanout", "flat", "resume", "alerts", "ready", "parked"}

// runs reports whether the run measures the workload named name.
func (c Config) runs(name string) bool { return len(c.Only) == 0 || slices.Contains(c.Only, name) }

// checkOnly refuses names in Only that are not workloads.
func (c Config) checkOnly() error {
	for _, name := range c.Only {
		if !slices.Contains(Workloads, name) {
			return fmt.Errorf("bench: no workload %q (want %s)", name, strings.Join(Workloads, ", "))
		}
	}
	return nil
}

// BenchPolicy is what --policy loads: the example "a DELETE to a prod host
// needs an approval granted earlier in the run".
const BenchPolicy = `
def on_effect(effect, history):
    if effect.kind != "http" or effect.method != "DELETE" or not effect.host.endswith(".prod"):
        return None
    for step in history:
        if step.kind == "approval" and step.approved:
            return None
    return deny("DELETE to a prod host needs an approval granted earlier in this run")
`

// BenchBudget is what --budget declares: a budget far above what a bench
// run does, so it measures the counting, never a refusal, and an objective
// (an slo() costs a run nothing: it is read by starbook slo and rules).
const BenchBudget = "slo(success = 0.99, latency = {\"p95\": \"10m\"}, window = \"28d\")\n" +
	"budget(runs_per_day = 100000000, steps_per_run = 10000000, steps_per_day = 1000000000, " +
	"http_calls_per_day = 1000000000, fan_out_items_per_day = 1000000000)\n"

// sizes are the workload sizes of a run.
type sizes struct {
	floorTxns, seqSteps, runs, runSteps, inFlight, fanout, fanoutConc, flatSteps, resumeSteps, parked, alertsPayloads int
}

func (c Config) sizes() sizes {
	if c.Quick {
		return sizes{floorTxns: 200, seqSteps: 200, runs: 40, runSteps: 5, inFlight: 50, fanout: 200, fanoutConc: 100,
			flatSteps: 400, resumeSteps: 1000, parked: 2000, alertsPayloads: 50}
	}
	return sizes{floorTxns: 2000, seqSteps: 2000, runs: 1000, runSteps: 5, inFlight: 50, fanout: 1000, fanoutConc: 100,
		flatSteps: 2000, resumeSteps: 10000, parked: 100000, alertsPayloads: 500}
}

// Figure is one measured value with its spread over repeats.
type Figure struct {
	Name   string
	Unit   string
	Median float64
	Min    float64
	Max    float64
	Floor  string // the figure it is judged against
	Goal   string
}

// Report is a bench run's figures and the JSON keys of its last line.
type Report struct {
	Figures []Figure
	JSON    map[string]float64
}

func (r *Report) add(name, unit string, values []float64, floor, goal string) float64 {
	sort.Float64s(values)
	f := Figure{Name: name, Unit: unit, Median: values[len(values)/2], Min: values[0], Max: values[len(values)-1], Floor: floor, Goal: goal}
	r.Figures = append(r.Figures, f)
	return f.Median
}

// Run runs every measurement and writes the table and the JSON line to cfg.Out.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if cfg.Repeats <= 0 {
		cfg.Repeats = 3
	}
	if cfg.Out == nil {
		cfg.Out = os.Stdout
	}
	if err := cfg.checkOnly(); err != nil {
		return nil, err
	}
	dir := cfg.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "starbook-bench-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	sz := cfg.sizes()
	emb, err := cluster.StartEmbedded(ctx, cluster.EmbeddedConfig{Dir: dir, Fast: true})
	if err != nil {
		return nil, err
	}
	defer emb.Close()
	e := &env{cli: emb.Client, emb: emb, sz: sz}
	e.budget, e.policy = cfg.Budget, cfg.Policy
	if err := e.startNode(ctx, "/bench/"); err != nil {
		return nil, err
	}
	defer e.stop()
	if cfg.ParkedOnly {
		rep := &Report{JSON: map[string]float64{"parked_100k_rss_mb": e.parked(ctx, sz.parked)}}
		if e.err != nil {
			return rep, e.err
		}
		rep.write(cfg.Out)
		return rep, nil
	}

	rep := &Report{JSON: map[string]float64{}}
	noisy := 3 * cfg.Repeats // the noisiest figures take more repeats: see below
	progress := func(what string) { fmt.Fprintf(os.Stderr, "bench: %s...\n", what) }

	// Each figure alternates with its floor, so that both see the machine as
	// it is at that moment (its disk's fsync latency drifts).
	if cfg.runs("step") {
		progress("sequential fenced txns and no-op call steps, alternately")
		floor, step := alternate(cfg.Repeats, func() float64 { return e.floorSequential(ctx, sz.floorTxns) },
			func() float64 { return e.sequentialSteps(ctx, sz.seqSteps) })
		floorMs := rep.add("floor_txn_ms", "ms", floor, "", "")
		rep.JSON["floor_txn_ms"] = floorMs
		stepMs := rep.add("step_ms", "ms", step, fmt.Sprintf("%.3f ms floor", floorMs), "<= 1.2x floor")
		rep.JSON["step_ms"] = stepMs
		rep.JSON["step_ratio"] = stepMs / floorMs
	}

	if cfg.runs("http") {
		// Steps that are effects: what a run-time policy (--policy) judges.
		progress("sequential fenced txns and HTTP GET steps to a local server, alternately")
		floorH, httpStep := alternate(cfg.Repeats, func() float64 { return e.floorSequential(ctx, sz.floorTxns) },
			func() float64 { return e.httpSteps(ctx, sz.seqSteps/4) })
		floorHMs := median(floorH)
		httpMs := rep.add("http_step_ms", "ms", httpStep, fmt.Sprintf("%.3f ms floor", floorHMs), "")
		rep.JSON["http_step_ms"] = httpMs
		rep.JSON["http_step_ratio"] = httpMs / floorHMs
	}

	if cfg.runs("throughput") {
		progress(fmt.Sprintf("fenced txns and %d runs x %d steps, %d in flight, alternately", sz.runs, sz.runSteps, sz.inFlight))
		// One run of 1,000 executions lasts about 0.5 s (200 did, in 0.1 s,
		// swing by 20% either way and set two builds 6% apart that a longer A/B
		// found equal); one 100-step window of the flat run swings as much:
		// these two take three times the repeats.
		floor50, thr := alternate(noisy, func() float64 { return e.floorParallel(ctx, sz.floorTxns*2, sz.inFlight) },
			func() float64 { return e.throughput(ctx, sz.runs, sz.runSteps) })
		floor50v := rep.add("floor_txn_per_s_50", "txn/s", floor50, "", "")
		rep.JSON["floor_txn_per_s_50"] = floor50v
		thrV := rep.add("steps_per_s_50", "steps/s", thr, fmt.Sprintf("%.0f txn/s floor", floor50v), ">= 1.0x floor")
		rep.JSON["steps_per_s_50"] = thrV
		rep.JSON["throughput_ratio"] = thrV / floor50v
	}

	if cfg.runs("fanout") {
		progress(fmt.Sprintf("fan_out of %d", sz.fanout))
		fo := repeat(cfg.Repeats, func() float64 { return e.fanout(ctx, sz.fanout, sz.fanoutConc) })
		rep.JSON["fanout_1000_s"] = rep.add("fanout_1000_s", "s", fo, "", "<= 0.15 s")
	}

	if cfg.runs("flat") {
		progress(fmt.Sprintf("flat: %d-step execution", sz.flatSteps))
		flat := repeat(noisy, func() float64 { return e.flat(ctx, sz.flatSteps) })
		rep.JSON["flat_ratio"] = rep.add("flat_ratio", "x", flat, "", "<= 1.1")
	}

	if cfg.runs("resume") {
		progress(fmt.Sprintf("resume of %d recorded steps", sz.resumeSteps))
		res := repeat(cfg.Repeats, func() float64 { return e.resume(ctx, sz.resumeSteps) })
		rep.JSON["resume_10k_ms"] = rep.add("resume_10k_ms", "ms", res, "", "<= 250 ms")
	}

	if cfg.runs("alerts") {
		progress(fmt.Sprintf("Alertmanager ingest, %d payloads of 10 alerts", sz.alertsPayloads))
		al := repeat(cfg.Repeats, func() float64 { return e.alerts(ctx, sz.alertsPayloads) })
		rep.JSON["alerts_per_s"] = rep.add("alerts_per_s", "alerts/s", al, "node runs them too", ">= 2000")
		progress(fmt.Sprintf("Alertmanager ingest, coalesced into %d groups", coalescedGroups))
		alc := repeat(cfg.Repeats, func() float64 { return e.alertsCoalesced(ctx, sz.alertsPayloads) })
		rep.JSON["alerts_coalesced_per_s"] = rep.add("alerts_coalesced_per_s", "alerts/s", alc, "group_by + coalesce: signals to parked runs", ">= 2000")
		ali := repeat(cfg.Repeats, func() float64 { return e.alertsIngestOnly(ctx, sz.alertsPayloads) })
		rep.JSON["alerts_ingest_per_s"] = rep.add("alerts_ingest_per_s", "alerts/s", ali, "ingest only", "")
	}

	if cfg.Binary != "" && cfg.runs("ready") {
		progress("node ready after launch")
		ready := repeat(cfg.Repeats, func() float64 { return readyAfterLaunch(ctx, cfg.Binary) })
		rep.JSON["ready_s"] = rep.add("ready_s", "s", ready, "", "<= 0.25 s")
	}

	if cfg.runs("parked") {
		// A process's RSS is its whole history: measured here, it would also
		// count the keys and heap the workloads above left behind. A node with
		// parked executions is measured as a fresh process, as ready_s is.
		progress(fmt.Sprintf("RSS with %d parked executions", sz.parked))
		var rss float64
		where := "fresh node process"
		if cfg.Binary != "" {
			rss = parkedInFreshProcess(ctx, cfg)
		} else {
			rss, where = e.parked(ctx, sz.parked), "this process"
		}
		rep.JSON["parked_100k_rss_mb"] = rep.add("parked_100k_rss_mb", "MB", []float64{rss},
			fmt.Sprintf("%d parked, %s", sz.parked, where), "<= 200 MB")
	}

	if e.err != nil {
		return rep, e.err
	}
	rep.write(cfg.Out)
	return rep, nil
}

// alternate runs f and g in turn, n times each.
func alternate(n int, f, g func() float64) (fs, gs []float64) {
	for range n {
		fs, gs = append(fs, f()), append(gs, g())
	}
	return fs, gs
}

func repeat(n int, f func() float64) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = f()
	}
	return out
}

func (r *Report) write(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "figure\tmedian\tmin\tmax\tunit\tagainst\tgoal\t")
	for _, f := range r.Figures {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", f.Name, num(f.Median), num(f.Min), num(f.Max), f.Unit, f.Floor, f.Goal)
	}
	tw.Flush()
	writeJSONLine(w, r.JSON)
}

// writeJSONLine writes m as one JSON object on one line, keys sorted, values
// rounded to 3 decimals, NaN and infinities left out.
func writeJSONLine(w io.Writer, m map[string]float64) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		v := m[k]
		if math.IsNaN(v) || math.IsInf(v, 0) {
			continue
		}
		b, _ := json.Marshal(math.Round(v*1000) / 1000)
		parts = append(parts, fmt.Sprintf("%q:%s", k, b))
	}
	fmt.Fprintf(w, "{%s}\n", strings.Join(parts, ","))
}

func num(v float64) string {
	switch {
	case v >= 1000:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.3f", v)
	}
}

// env is the node under test and its etcd.
type env struct {
	cli    *clientv3.Client
	emb    *cluster.Embedded // nil on an outside etcd
	sz     sizes
	store  *cluster.Store
	svc    *service.Service
	node   *node.Node
	cancel context.CancelFunc
	done   chan error
	seq    atomic.Int64
	mu     sync.Mutex
	err    error
	budget bool // declare BenchBudget on the bench runbook
	policy bool // load BenchPolicy
}

const benchRunbooks = `
def noop():
    return None

def main(event):
    kind = event.kind
    if kind == "steps":
        for i in range(event.n):
            call(noop)
    elif kind == "fanout":
        fan_out(lambda i: call(noop), range(event.n), max_concurrency = event.conc)
    elif kind == "resume":
        for i in range(event.n):
            call(noop)
        wait_for_signal("go")
        call(noop)
    elif kind == "http":
        for i in range(event.n):
            call(http.get, event.url)
    elif kind == "park":
        wait_for_signal("never")
`

func (e *env) startNode(ctx context.Context, prefix string) error {
	e.store = cluster.NewStore(e.cli, prefix, cluster.WithMaxTxnOps(cluster.EmbeddedMaxTxnOps))
	// Guards as serve has them: the bench makes no HTTP call, so they must
	// cost nothing but their watch.
	guards := downstream.New(downstream.Config{Node: "bench", Circuits: e.store})
	bi := builtins.New(builtins.Options{HTTP: builtins.HTTPOptions{Guards: guards}})
	e.svc = service.New(e.store, bi)
	if e.policy { // before the node starts: it loads the set then
		if _, err := e.svc.ApplyPolicies(ctx, map[string]string{"bench_policy.star": BenchPolicy}); err != nil {
			return err
		}
	}
	worker, err := node.New(ctx, e.store, node.Config{ID: "bench", Workers: 256, Builtins: bi, Guards: guards,
		Logger: slog.New(slog.DiscardHandler), Limits: sbruntime.Limits{MaxHistory: 200_000}})
	if err != nil {
		return err
	}
	e.node = worker
	e.svc.Node = worker
	src := benchRunbooks
	if e.budget {
		src = BenchBudget + src
	}
	if _, err := e.svc.Apply(ctx, map[string]string{"bench.star": src}); err != nil {
		return err
	}
	nctx, cancel := context.WithCancel(context.Background())
	e.cancel, e.done = cancel, make(chan error, 1)
	go func() { e.done <- worker.Run(nctx) }()
	return nil
}

func (e *env) stop() {
	e.cancel()
	<-e.done
	e.store.Close()
}

func (e *env) fail(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.err == nil {
		e.err = err
	}
}

// floorTxn is the floor of one step: a put fenced on an owner key's create
// revision and on the position being empty, as a checkpoint is.
func (e *env) floorTxn(ctx context.Context, owner string, rev int64, key string) error {
	resp, err := e.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(owner), "=", rev), clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, `{"position":"1","kind":"call","name":"noop","result":null}`)).Commit()
	if err == nil && !resp.Succeeded {
		err = fmt.Errorf("floor txn %s did not succeed", key)
	}
	return err
}

func (e *env) owner(ctx context.Context) (string, int64) {
	key := fmt.Sprintf("/floor/owners/%d", e.seq.Add(1))
	resp, err := e.cli.Put(ctx, key, "bench")
	if err != nil {
		e.fail(err)
		return key, 0
	}
	return key, resp.Header.Revision
}

// floorSequential returns the mean ms of n sequential fenced txns.
func (e *env) floorSequential(ctx context.Context, n int) float64 {
	owner, rev := e.owner(ctx)
	start := time.Now()
	for i := range n {
		if err := e.floorTxn(ctx, owner, rev, fmt.Sprintf("%s/h/%d", owner, i)); err != nil {
			e.fail(err)
			break
		}
	}
	return ms(time.Since(start)) / float64(n)
}

// floorParallel returns fenced txns per second with inFlight writers.
func (e *env) floorParallel(ctx context.Context, n, inFlight int) float64 {
	var next atomic.Int64
	var wg sync.WaitGroup
	owners, revs := make([]string, inFlight), make([]int64, inFlight)
	for i := range owners {
		owners[i], revs[i] = e.owner(ctx) // set up before the clock starts
	}
	start := time.Now()
	for i := range inFlight {
		owner, rev := owners[i], revs[i]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1); i <= int64(n); i = next.Add(1) {
				if err := e.floorTxn(ctx, owner, rev, fmt.Sprintf("%s/h/%d", owner, i)); err != nil {
					e.fail(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	return float64(n) / time.Since(start).Seconds()
}

func (e *env) start(ctx context.Context, input string) string {
	x, err := e.svc.Start(ctx, "bench", json.RawMessage(input), sbruntime.Trigger{Type: "bench"})
	if err != nil {
		e.fail(err)
		return ""
	}
	return x.ID
}

func (e *env) await(ctx context.Context, id string) *sbruntime.Execution {
	x, err := e.svc.AwaitEnd(ctx, id)
	if err != nil {
		e.fail(err)
		return nil
	}
	if x.Status != sbruntime.StatusCompleted {
		e.fail(fmt.Errorf("execution %s ended %s: %s", id, x.Status, x.Error))
	}
	return x
}

func (e *env) history(ctx context.Context, id string) []*sbruntime.Event {
	_, h, err := e.svc.Execution(ctx, id)
	if err != nil {
		e.fail(err)
	}
	return h
}

// sequentialSteps returns the mean ms per step of one execution of n no-op
// call()s, from its first step's start to its last step's end.
func (e *env) sequentialSteps(ctx context.Context, n int) float64 {
	id := e.start(ctx, fmt.Sprintf(`{"kind": "steps", "n": %d}`, n))
	e.await(ctx, id)
	h := e.history(ctx, id)
	if len(h) < 2 {
		return math.NaN()
	}
	return ms(h[len(h)-1].EndedAt.Sub(h[0].EndedAt)) / float64(len(h)-1)
}

// httpSteps returns the mean ms per step of one execution of n sequential
// call(http.get, url) steps to a local server (keep-alive, an empty 200),
// from its first step's end to its last's: an effect's step, as a policy's
// on_effect sees it.
func (e *env) httpSteps(ctx context.Context, n int) float64 {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	id := e.start(ctx, fmt.Sprintf(`{"kind": "http", "n": %d, "url": %q}`, n, srv.URL))
	e.await(ctx, id)
	h := e.history(ctx, id)
	if len(h) < 2 {
		return math.NaN()
	}
	return ms(h[len(h)-1].EndedAt.Sub(h[0].EndedAt)) / float64(len(h)-1)
}

// median returns the median of values (sorted in place).
func median(values []float64) float64 {
	sort.Float64s(values)
	return values[len(values)/2]
}

// throughput returns steps per second of runs executions of steps no-op
// steps each, inFlight at a time: each of inFlight clients starts one and
// waits for its end, then starts the next. A client hears of an end as an
// in-process caller of the node does (Store.OnEnd, as AwaitEnd does): once
// the end is committed.
func (e *env) throughput(ctx context.Context, runs, steps int) float64 {
	ends := e.watchEnds()
	defer ends.stop()
	inFlight := e.sz.inFlight
	if inFlight == 0 {
		inFlight = 50
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range inFlight {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(runs) {
				id := e.start(ctx, fmt.Sprintf(`{"kind": "steps", "n": %d}`, steps))
				if id == "" || !ends.wait(ctx, id) {
					return
				}
			}
		}()
	}
	wg.Wait()
	return float64(runs*steps) / time.Since(start).Seconds()
}

// endWatcher reports the executions that end on the bench's node, and fails
// the bench for one that did not complete.
type endWatcher struct {
	mu      sync.Mutex
	ended   map[string]bool
	waiting map[string]chan struct{}
	stop    func()
}

func (e *env) watchEnds() *endWatcher {
	w := &endWatcher{ended: map[string]bool{}, waiting: map[string]chan struct{}{}}
	w.stop = e.store.OnEnd(func(x *sbruntime.Execution) {
		if x.Status != sbruntime.StatusCompleted {
			e.fail(fmt.Errorf("execution %s ended %s: %s", x.ID, x.Status, x.Error))
		}
		w.end(x.ID)
	})
	return w
}

// end records that id has ended and wakes its waiter.
func (w *endWatcher) end(id string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.ended[id] = true
	if c, ok := w.waiting[id]; ok {
		close(c)
		delete(w.waiting, id)
	}
}

// wait blocks until id has ended or ctx is done.
func (w *endWatcher) wait(ctx context.Context, id string) bool {
	w.mu.Lock()
	if w.ended[id] {
		w.mu.Unlock()
		return true
	}
	c := make(chan struct{})
	w.waiting[id] = c
	w.mu.Unlock()
	select {
	case <-c:
		return true
	case <-ctx.Done():
		return false
	}
}

// fanout returns the seconds from start to end of one fan_out of n no-op steps.
func (e *env) fanout(ctx context.Context, n, conc int) float64 {
	start := time.Now()
	id := e.start(ctx, fmt.Sprintf(`{"kind": "fanout", "n": %d, "conc": %d}`, n, conc))
	e.await(ctx, id)
	return time.Since(start).Seconds()
}

// flat returns the mean step latency of the last 100 steps of an n-step
// execution over that of its first 100.
func (e *env) flat(ctx context.Context, n int) float64 {
	id := e.start(ctx, fmt.Sprintf(`{"kind": "steps", "n": %d}`, n))
	e.await(ctx, id)
	h := e.history(ctx, id)
	if len(h) < 201 {
		return math.NaN()
	}
	span := func(from, to int) float64 { return ms(h[to].EndedAt.Sub(h[from].EndedAt)) / float64(to-from) }
	return span(len(h)-101, len(h)-1) / span(0, 100)
}

// resume returns the ms from the signal that wakes an execution with n
// recorded steps to the end of its next new step: claim, history load, replay.
func (e *env) resume(ctx context.Context, n int) float64 {
	id := e.start(ctx, fmt.Sprintf(`{"kind": "resume", "n": %d}`, n))
	for {
		x, _, err := e.svc.Execution(ctx, id)
		if err != nil {
			e.fail(err)
			return math.NaN()
		}
		if x.Status == sbruntime.StatusWaiting {
			break
		}
		if x.Status.Terminal() {
			e.fail(fmt.Errorf("resume execution ended %s: %s", x.Status, x.Error))
			return math.NaN()
		}
		time.Sleep(20 * time.Millisecond)
	}
	sent := time.Now()
	if err := e.store.Signal(ctx, id, "go", nil, "bench"); err != nil {
		e.fail(err)
		return math.NaN()
	}
	e.await(ctx, id)
	h := e.history(ctx, id)
	return ms(h[len(h)-1].EndedAt.Sub(sent))
}

// parked returns the process RSS in MB after n executions parked in waits.
func (e *env) parked(ctx context.Context, n int) float64 {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				e.start(ctx, `{"kind": "park"}`)
			}
		}()
	}
	wg.Wait()
	// Wait until the node has parked them all (nothing runnable is left).
	for {
		resp, err := e.cli.Get(ctx, "/bench/runnable/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			e.fail(err)
			return math.NaN()
		}
		if resp.Count == 0 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Steady state, as the node reaches it by itself, brought forward: the
	// burst's history compacted (the embedded member does it once it is
	// Compaction.Window, 5 minutes, old), then the member's periodic
	// maintenance (every 10 minutes): the file defragmented if compaction
	// left a tenth of it free or more, and the memory that freed given back
	// to the OS.
	if resp, err := e.cli.Get(ctx, "/bench/", clientv3.WithCountOnly()); err == nil {
		if _, err := e.cli.Compact(ctx, resp.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
			e.fail(err)
		}
	}
	if e.emb != nil {
		if _, err := e.emb.Maintain(ctx); err != nil {
			e.fail(err)
		}
	}
	return rssMB()
}

func rssMB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return math.NaN()
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kb float64
			fmt.Sscanf(strings.TrimSpace(rest), "%f", &kb)
			return kb / 1024
		}
	}
	return math.NaN()
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
