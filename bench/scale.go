package bench

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/starbook/starbook/cluster"
	"go.uber.org/zap"

	"github.com/starbook/starbook/triggers"
)

// The scale bench (issue 25): how the reads a person makes (a page of the
// executions list, the SLO and usage pages, the dead letters), a node's
// memory, its start-up and the store's size grow with the number of ended
// executions it keeps. Each size gets a fresh node process of the starbook
// binary on a fresh embedded etcd (fsync on), loaded through the
// Alertmanager hook with N alerts that each start a one-step run (every
// tenth fails), then measured through the HTTP API as the CLI and the UI
// read it: client round trips on loopback. The nodes of every size stay up
// together while their pages are read, the sizes taking turns, so that a
// ratio between sizes compares the same moments of a machine whose load
// drifts.

// ScaleConfig sizes a scale run.
type ScaleConfig struct {
	Sizes   []int  // ended executions to load, one fresh node each
	Binary  string // the starbook binary the nodes run
	Repeats int    // repeats of each latency figure (default 7); restarts take min(Repeats, 3)
	Dir     string // scratch directory (a temp dir when empty); the nodes' data dirs are removed at the end
	Keep    bool   // keep each size's data dir, runbooks and node log under Dir (stopped nodes) for a look afterwards
	// Rest is how long the nodes are left alone before rss_mb is read
	// (default restTime); a smoke run shortens it.
	Rest time.Duration
	Out  io.Writer
	JSON bool      // write one JSON document instead of the tables and the JSON line
	Log  io.Writer // progress (default os.Stderr)
}

// scaleRunbook is the runbook each alert starts: one HTTP step to the
// bench's server, which answers 500 to a run whose alert is marked fail="1"
// (retries=0, and call() does not retry): that run fails, with a failed
// step in its history and a dead letter. It declares an slo() so that
// GET /api/v1/slo has a runbook to compute.
const scaleRunbook = `
trigger.alert(alertname = "ScaleAlert")

slo(success = 0.9, latency = {"p95": "10m"}, window = "28d")

def main(event):
    return call(http.get, "%s/" + event.labels.fail, retries = 0)
`

// restTime is how long the bench leaves its nodes alone before it reads
// their memory at rest: a quiet member trims every 30 s.
const restTime = 35 * time.Second

// scaleRunbookName is scaleRunbook's name (its file's base name).
const scaleRunbookName = "scale"

// ScaleFigure is one figure of a scale run, in the order the table shows them.
type ScaleFigure struct {
	Name string
	What string
}

// ScaleFigures are the figures of a scale run.
var ScaleFigures = []ScaleFigure{
	{"load_s", "posting N alerts until all N runs have ended"},
	{"ingest_alerts_per_s", "alerts accepted per second (posts answered)"},
	{"settle_s", "from the last run ended until the node's member compacted the burst (the reads below wait for it)"},
	{"list_page_25_after_load_ms", "GET /api/v1/executions?limit=25 right after load, before the member compacts the burst"},
	{"slo_after_load_ms", "GET /api/v1/slo right after load"},
	{"usage_after_load_ms", "GET /api/v1/usage right after load"},
	{"list_page_25_ms", "GET /api/v1/executions?limit=25"},
	{"list_page_100_ms", "GET /api/v1/executions?limit=100"},
	{"list_failed_ms", "?status=failed&limit=25"},
	{"list_runbook_failed_ms", "?runbook=scale&status=failed&limit=25"},
	{"list_all_s_per_10k", "every page, limit=1000 and the after cursor, per 10,000 listed"},
	{"slo_ms", "GET /api/v1/slo"},
	{"usage_ms", "GET /api/v1/usage"},
	{"dlq_ms", "GET /api/v1/dead-letters (N/10 of them)"},
	{"waits_ms", "GET /api/v1/waits"},
	{"db_inuse_bytes_per_execution", "etcd DbSizeInUse / N after a compaction"},
	{"db_file_bytes_per_execution", "etcd DbSize (the file) / N after a compaction"},
	{"db_defrag_bytes_per_execution", "etcd DbSize / N after a compaction and a defragmentation (the node's maintenance)"},
	{"keys_per_execution", "keys under the prefix / N"},
	{"kv_bytes_per_execution", "bytes of keys and values under the prefix / N"},
	{"rss_after_load_mb", "node VmRSS right after load (the burst's history not yet compacted)"},
	{"rss_peak_mb", "node VmHWM after load and the reads"},
	{"rss_after_reads_mb", "node VmRSS right after the reads (a walk of every page maps the whole db file)"},
	{"rss_mb", "node VmRSS at rest: restTime after the reads"},
	{"rss_anon_mb", "of which anonymous (the Go heap and stacks)"},
	{"rss_file_mb", "of which file pages (etcd's mapped db file, the binary)"},
	{"stop_s", "SIGTERM to exit"},
	{"restart_ready_s", "restart on the same data dir to /readyz 200"},
	{"rss_restart_mb", "node VmRSS 2 s after a restart is ready"},
}

// KeyFamily is what one top-level family of keys under the store's prefix
// holds at one size.
type KeyFamily struct {
	Keys  int64 `json:"keys"`
	Bytes int64 `json:"bytes"` // of keys and values
}

// ScaleResult is what one size measured.
type ScaleResult struct {
	N        int                  `json:"n"`
	Figures  map[string]float64   `json:"figures"`
	Families map[string]KeyFamily `json:"key_families"`
}

// ScaleReport is a scale run's results, smallest size first.
type ScaleReport struct {
	Results []*ScaleResult `json:"results"`
}

// RunScale measures each of cfg.Sizes on a fresh node and writes the report
// to cfg.Out.
func RunScale(ctx context.Context, cfg ScaleConfig) (*ScaleReport, error) {
	if cfg.Binary == "" {
		return nil, errors.New("bench --scale: no starbook binary to start nodes of")
	}
	if len(cfg.Sizes) == 0 {
		return nil, errors.New("bench --scale: no sizes")
	}
	for _, n := range cfg.Sizes {
		if n < 10 {
			return nil, fmt.Errorf("bench --scale: size %d: want at least 10", n)
		}
	}
	if cfg.Repeats <= 0 {
		cfg.Repeats = 7
	}
	if cfg.Out == nil {
		cfg.Out = os.Stdout
	}
	if cfg.Log == nil {
		cfg.Log = os.Stderr
	}
	dir := cfg.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "starbook-scale-")
		if err != nil {
			return nil, err
		}
		if !cfg.Keep {
			defer os.RemoveAll(d)
		}
		dir = d
	}
	sizes := append([]int(nil), cfg.Sizes...)
	sort.Ints(sizes)
	rep, err := runScale(ctx, cfg, dir, sizes)
	if err != nil {
		return rep, err
	}
	if cfg.JSON {
		enc := json.NewEncoder(cfg.Out)
		enc.SetIndent("", "  ")
		return rep, enc.Encode(rep)
	}
	rep.write(cfg.Out)
	return rep, nil
}

// scaleRun is one size's node and what it measured.
type scaleRun struct {
	n        int
	dir      string // removed at the end: the data dir, the runbooks, the node's log
	data     string // the node's data dir
	runbooks string // the runbooks it applies at start
	log      *os.File
	node     *scaleNode
	c        *scaleClient
	res      *ScaleResult
	binary   string // the starbook binary it runs
	logf     func(format string, args ...any)
}

func (r *scaleRun) fig(name string, v float64) { r.res.Figures[name] = v }

// failed wraps err with the size and the end of the node's log.
func (r *scaleRun) failed(err error) error {
	return fmt.Errorf("scale %d: %w (node log: %s)", r.n, err, lastLines(r.log.Name(), 5))
}

// runScale loads every size's node first and keeps them all up, then
// measures the pages alternately, one size after the other within each
// repeat, so that every size sees the machine as it is at that moment (its
// load drifts, and the ratio between sizes is the figure to read); the
// walks, the store and the restarts last, size by size.
func runScale(ctx context.Context, cfg ScaleConfig, parent string, sizes []int) (*ScaleReport, error) {
	// What the runs call: 500 for a marked alert's run, else an empty 200.
	var calls atomic.Int64
	downstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if r.URL.Path == "/1" {
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	defer downstream.Close()

	rep := &ScaleReport{}
	var runs []*scaleRun
	defer func() {
		for _, r := range runs {
			if r.node != nil {
				r.node.kill()
			}
			if r.log != nil {
				r.log.Close()
			}
			if cfg.Keep {
				fmt.Fprintf(cfg.Log, "bench: scale %d: kept %s\n", r.n, r.dir)
				continue
			}
			os.RemoveAll(r.dir)
		}
	}()
	for _, n := range sizes {
		r := &scaleRun{n: n, binary: cfg.Binary, res: &ScaleResult{N: n, Figures: map[string]float64{}, Families: map[string]KeyFamily{}}}
		r.logf = func(format string, args ...any) {
			fmt.Fprintf(cfg.Log, "bench: scale %d: %s\n", n, fmt.Sprintf(format, args...))
		}
		dir, err := os.MkdirTemp(parent, fmt.Sprintf("n%d-", n))
		if err != nil {
			return rep, err
		}
		r.dir = dir
		runs = append(runs, r)
		r.runbooks, r.data = filepath.Join(dir, "runbooks"), filepath.Join(dir, "data")
		if err := os.MkdirAll(r.runbooks, 0o700); err != nil {
			return rep, err
		}
		if err := os.WriteFile(filepath.Join(r.runbooks, scaleRunbookName+".star"),
			[]byte(fmt.Sprintf(scaleRunbook, downstream.URL)), 0o600); err != nil {
			return rep, err
		}
		if r.log, err = os.Create(filepath.Join(dir, "node.log")); err != nil {
			return rep, err
		}
		rep.Results = append(rep.Results, r.res)
		if err := r.load(ctx); err != nil {
			return rep, r.failed(err)
		}
	}

	// The pages a person reads, each warmed once, then the median of
	// repeats, the sizes taking turns.
	for _, q := range []struct{ name, path string }{
		{"list_page_25_ms", "/api/v1/executions?limit=25"},
		{"list_page_100_ms", "/api/v1/executions?limit=100"},
		{"list_failed_ms", "/api/v1/executions?status=failed&limit=25"},
		{"list_runbook_failed_ms", "/api/v1/executions?runbook=" + scaleRunbookName + "&status=failed&limit=25"},
		{"slo_ms", "/api/v1/slo"},
		{"usage_ms", "/api/v1/usage"},
		{"dlq_ms", "/api/v1/dead-letters"},
		{"waits_ms", "/api/v1/waits"},
	} {
		ds := make([][]float64, len(runs))
		for i := -1; i < cfg.Repeats; i++ {
			for j, r := range runs {
				_, d, err := r.c.get(ctx, q.path)
				if err != nil {
					return rep, r.failed(err)
				}
				if i >= 0 {
					ds[j] = append(ds[j], ms(d))
				}
			}
		}
		for j, r := range runs {
			r.fig(q.name, median(ds[j]))
			r.logf("%s %s ms", q.name, num(r.res.Figures[q.name]))
		}
	}
	for _, r := range runs {
		if err := r.c.checkPages(ctx, r.n); err != nil {
			return rep, r.failed(err)
		}
	}
	// A walk of every page is O(N) pages: a size repeats it only while it
	// is short.
	walks := make([][]float64, len(runs))
	for round := range min(cfg.Repeats, 3) {
		for j, r := range runs {
			if round > 0 && walks[j][len(walks[j])-1]*float64(r.n)/10_000 > 20 {
				continue
			}
			d, listed, err := r.c.walk(ctx)
			if err != nil {
				return rep, r.failed(err)
			}
			if listed != r.n {
				return rep, r.failed(fmt.Errorf("walking every page listed %d executions, want %d", listed, r.n))
			}
			walks[j] = append(walks[j], d.Seconds()/float64(r.n)*10_000)
			r.logf("walked every page in %.1f s", d.Seconds())
		}
	}
	for j, r := range runs {
		r.fig("list_all_s_per_10k", median(walks[j]))
		rss, peak := procMemMB(r.node.cmd.Process.Pid)
		r.fig("rss_peak_mb", peak)
		r.fig("rss_after_reads_mb", rss)
	}
	// A node at rest: nothing written or read for restTime, long enough for
	// its member to trim what the reads left (cluster.Compaction.Trim).
	select {
	case <-ctx.Done():
		return rep, ctx.Err()
	case <-time.After(cmp.Or(cfg.Rest, restTime)):
	}
	for _, r := range runs {
		mem := procStatusMB(r.node.cmd.Process.Pid, "VmRSS:", "RssAnon:", "RssFile:")
		r.fig("rss_mb", mem[0])
		r.fig("rss_anon_mb", mem[1])
		r.fig("rss_file_mb", mem[2])
		r.logf("at rest: RSS %.0f MB (%.0f anonymous, %.0f file); right after the reads %.0f MB", mem[0], mem[1], mem[2],
			r.res.Figures["rss_after_reads_mb"])
	}

	for _, r := range runs {
		r.logf("counting keys and sizing the store")
		if err := measureStore(ctx, r.node.etcd, r.n, r.res); err != nil {
			return rep, r.failed(err)
		}
		r.logf("restarting")
		if err := r.restarts(ctx, min(cfg.Repeats, 3)); err != nil {
			return rep, r.failed(err)
		}
	}
	total := 0
	for _, n := range sizes {
		total += n
	}
	if got := calls.Load(); got < int64(total) {
		return rep, fmt.Errorf("the runs made %d HTTP calls, want at least %d", got, total)
	}
	return rep, nil
}

// load starts the size's node, posts its alerts and waits until every run
// has ended.
func (r *scaleRun) load(ctx context.Context) error {
	node, err := startScaleNode(ctx, r.data, r.runbooks, r.log, r.binary)
	if err != nil {
		return err
	}
	r.node = node
	if _, err := node.awaitReady(ctx, time.Minute); err != nil {
		return err
	}
	r.c = &scaleClient{base: node.url, http: &http.Client{Timeout: 10 * time.Minute,
		Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
	r.logf("loading %d alerts (one run each, every tenth fails)", r.n)
	start := time.Now()
	ingest, err := r.c.loadAlerts(ctx, r.n)
	if err != nil {
		return err
	}
	r.fig("ingest_alerts_per_s", float64(r.n)/ingest.Seconds())
	ended, failed, err := r.c.awaitEnded(ctx, r.n, r.logf, func(ctx context.Context) (int64, int64, error) {
		return storeEnded(ctx, node.etcd)
	})
	if err != nil {
		return err
	}
	r.fig("load_s", time.Since(start).Seconds())
	if want := int64((r.n + 9) / 10); ended != int64(r.n) || failed != want {
		return fmt.Errorf("%d runs ended, %d of them failed: want %d and %d", ended, failed, r.n, want)
	}
	rss, _ := procMemMB(node.cmd.Process.Pid)
	r.fig("rss_after_load_mb", rss)
	r.logf("loaded in %.1f s (%.0f alerts/s accepted)", r.res.Figures["load_s"], r.res.Figures["ingest_alerts_per_s"])
	// What a person reading in the burst's wake sees: the deleted keys of
	// its last revisions are in etcd's index until the member compacts
	// them, and the leader is still folding its last ends.
	for name, path := range map[string]string{"list_page_25_after_load_ms": "/api/v1/executions?limit=25",
		"slo_after_load_ms": "/api/v1/slo", "usage_after_load_ms": "/api/v1/usage"} {
		var ds []float64
		for range 3 {
			_, d, err := r.c.get(ctx, path)
			if err != nil {
				return err
			}
			ds = append(ds, ms(d))
		}
		r.fig(name, median(ds))
	}
	settled := time.Now()
	if err := awaitSettled(ctx, node.etcd, 2*time.Minute); err != nil {
		return err
	}
	r.fig("settle_s", time.Since(settled).Seconds())
	r.logf("settled %.1f s after load", r.res.Figures["settle_s"])
	return nil
}

// awaitSettled waits until the node's embedded member has compacted its
// history up to the revision the load ended at, bar the few revisions a
// quiet member may leave (cluster.DefaultCompactionQuietMin), and its db's
// size and bytes in use (which fall as a compaction deletes and a
// defragmentation shrinks) held still for two seconds: the node's state at
// rest, which is what the stored-cost figures are about.
func awaitSettled(ctx context.Context, endpoint string, limit time.Duration) error {
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second,
		Logger: zap.NewNop()})
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	st, err := cli.Status(ctx, endpoint)
	if err != nil {
		return fmt.Errorf("await the node settled: %w", err)
	}
	want := st.Header.Revision - cluster.DefaultCompactionQuietMin
	var last [2]int64
	still := 0
	for {
		if st, err = cli.Status(ctx, endpoint); err != nil {
			return fmt.Errorf("await the node settled: %w", err)
		}
		compacted, err := compactRevision(ctx, cli)
		if err != nil {
			return fmt.Errorf("await the node settled: %w", err)
		}
		now := [2]int64{st.DbSize, st.DbSizeInUse}
		if compacted >= want && now == last {
			still++
		} else {
			still = 0
		}
		last = now
		if still >= 4 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("await the node settled: revision %d not compacted within %s (compacted to %d)", want, limit, compacted)
		case <-time.After(500 * time.Millisecond): // polling the member's state
		}
	}
}

// compactRevision is the revision the member's history is compacted to:
// what a watch from the first revision is cancelled with, 0 when nothing is
// compacted.
func compactRevision(ctx context.Context, cli *clientv3.Client) (int64, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for wr := range cli.Watch(ctx, "/starbook/format", clientv3.WithRev(1)) {
		if wr.CompactRevision > 0 {
			return wr.CompactRevision, nil
		}
		if err := wr.Err(); err != nil {
			return 0, err
		}
		return 0, nil // events from the first revision: nothing compacted
	}
	return 0, ctx.Err()
}

// restarts stops the node and starts it again on its data dir, times
// times, and leaves it stopped.
func (r *scaleRun) restarts(ctx context.Context, times int) error {
	stop, err := r.node.stop(30 * time.Second)
	if err != nil {
		return err
	}
	r.fig("stop_s", stop.Seconds())
	var readies []float64
	for i := range times {
		if r.node, err = startScaleNode(ctx, r.data, r.runbooks, r.log, r.binary); err != nil {
			return err
		}
		d, err := r.node.awaitReady(ctx, 5*time.Minute)
		if err != nil {
			return err
		}
		readies = append(readies, d.Seconds())
		if i == times-1 {
			time.Sleep(2 * time.Second)
			rss, _ := procMemMB(r.node.cmd.Process.Pid)
			r.fig("rss_restart_mb", rss)
		}
		if _, err := r.node.stop(30 * time.Second); err != nil {
			return err
		}
	}
	r.fig("restart_ready_s", median(readies))
	return nil
}

// scaleNode is a `starbook serve` process of the scale bench.
type scaleNode struct {
	cmd    *exec.Cmd
	url    string // of its HTTP API
	etcd   string // its embedded etcd's client URL
	exited chan struct{}
	err    error // its exit, once exited is closed
}

// startScaleNode starts `starbook serve` on data dir data with the
// runbooks of dir runbooks applied: fresh loopback ports, its embedded etcd
// listening for the bench's client, fsync on (as serve always runs), no
// default trigger rate (the load is a storm on purpose), and a retention
// longer than the run.
func startScaleNode(ctx context.Context, data, runbooks string, log io.Writer, binary string) (*scaleNode, error) {
	listen, err := freeLoopback()
	if err != nil {
		return nil, err
	}
	etcd, err := freeLoopback()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, binary, "serve", "--data-dir", data, "--listen", listen,
		"--client-listen", etcd, "--runbooks", runbooks, "--trigger-rate", "", "--retention", "720h",
		"--log-level", "warn")
	// Nothing of the caller's STARBOOK_* settings (tokens, Slack): the API
	// and the hook stay open on loopback, as on a developer's machine.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "STARBOOK_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	n := &scaleNode{cmd: cmd, url: "http://" + listen, etcd: "http://" + etcd, exited: make(chan struct{})}
	go func() { n.err = cmd.Wait(); close(n.exited) }()
	return n, nil
}

func freeLoopback() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// awaitReady returns the time from the process's start until /readyz
// answers 200.
func (n *scaleNode) awaitReady(ctx context.Context, timeout time.Duration) (time.Duration, error) {
	client := &http.Client{Timeout: time.Second}
	started := time.Now() // just after cmd.Start: the few µs before it are noise
	for time.Since(started) < timeout {
		select {
		case <-n.exited:
			return 0, fmt.Errorf("node exited before it was ready: %v", n.err)
		case <-ctx.Done():
			return 0, ctx.Err()
		default:
		}
		resp, err := client.Get(n.url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Since(started), nil
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	return 0, fmt.Errorf("node not ready after %s", timeout)
}

// stop sends SIGTERM and returns how long the node took to exit; past
// grace it is killed and stop fails.
func (n *scaleNode) stop(grace time.Duration) (time.Duration, error) {
	start := time.Now()
	if err := n.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return 0, err
	}
	select {
	case <-n.exited:
		if n.err != nil {
			return 0, fmt.Errorf("node exit: %w", n.err)
		}
		return time.Since(start), nil
	case <-time.After(grace):
		n.kill()
		return 0, fmt.Errorf("node did not stop within %s of SIGTERM", grace)
	}
}

// kill ends the process if it still runs (deferred: a failed run leaves none).
func (n *scaleNode) kill() {
	select {
	case <-n.exited:
	default:
		_ = n.cmd.Process.Kill()
		<-n.exited
	}
}

// procMemMB returns process pid's VmRSS and VmHWM (its peak) in MB.
func procMemMB(pid int) (rss, hwm float64) {
	mem := procStatusMB(pid, "VmRSS:", "VmHWM:")
	return mem[0], mem[1]
}

// procStatusMB returns the named fields of process pid's /proc status (kB
// figures) in MB, NaN for those it has not.
func procStatusMB(pid int, fields ...string) []float64 {
	mb := make([]float64, len(fields))
	for i := range mb {
		mb[i] = math.NaN()
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return mb
	}
	for _, line := range strings.Split(string(b), "\n") {
		for i, prefix := range fields {
			if rest, ok := strings.CutPrefix(line, prefix); ok {
				var kb float64
				fmt.Sscanf(strings.TrimSpace(rest), "%f", &kb)
				mb[i] = kb / 1024
			}
		}
	}
	return mb
}

// lastLines returns the last n lines of file path, joined by " | ".
func lastLines(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	lines = lines[max(0, len(lines)-n):]
	for i, l := range lines {
		if len(l) > 300 {
			lines[i] = l[:300] + "..."
		}
	}
	return strings.Join(lines, " | ")
}

// scaleClient reads a node's HTTP API as the CLI and the UI do.
type scaleClient struct {
	base string
	http *http.Client
}

// Load: alertsPerPost alerts a notification, postsInFlight notifications at
// once. Each POST is answered once its executions are durable; the node
// runs them meanwhile.
const (
	alertsPerPost = 100
	postsInFlight = 8
)

// loadAlerts posts n firing alerts with distinct fingerprints, alert i
// marked fail="1" when i%10 == 0, and returns how long the posts took.
func (c *scaleClient) loadAlerts(ctx context.Context, n int) (time.Duration, error) {
	posts := (n + alertsPerPost - 1) / alertsPerPost
	var next atomic.Int64
	var mu sync.Mutex
	var firstErr error
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if firstErr == nil {
			firstErr = err
		}
	}
	startsAt := time.Now().UTC().Truncate(time.Second)
	var wg sync.WaitGroup
	start := time.Now()
	for range postsInFlight {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := int(next.Add(1)) - 1; p < posts; p = int(next.Add(1)) - 1 {
				from, to := p*alertsPerPost, min((p+1)*alertsPerPost, n)
				if err := c.postAlerts(ctx, from, to, startsAt); err != nil {
					fail(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	return time.Since(start), firstErr
}

func (c *scaleClient) postAlerts(ctx context.Context, from, to int, startsAt time.Time) error {
	note := triggers.Notification{Version: "4", GroupKey: `{}:{alertname="ScaleAlert"}`, Status: "firing",
		Receiver: "starbook", GroupLabels: map[string]string{"alertname": "ScaleAlert"},
		CommonLabels: map[string]string{"alertname": "ScaleAlert"}, CommonAnnotations: map[string]string{},
		ExternalURL: "http://alertmanager"}
	for i := from; i < to; i++ {
		failLabel := "0"
		if i%10 == 0 {
			failLabel = "1"
		}
		note.Alerts = append(note.Alerts, &triggers.Alert{Status: "firing",
			Labels:      map[string]string{"alertname": "ScaleAlert", "instance": fmt.Sprintf("i-%d", i), "fail": failLabel},
			Annotations: map[string]string{}, StartsAt: startsAt, GeneratorURL: "http://prometheus/graph",
			Fingerprint: fmt.Sprintf("%016x", i)})
	}
	body, err := json.Marshal(&note)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/hooks/alertmanager", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST /hooks/alertmanager: %s: %s", resp.Status, bytes.TrimSpace(b))
	}
	var res triggers.Result
	if err := json.Unmarshal(b, &res); err != nil {
		return fmt.Errorf("POST /hooks/alertmanager: %w", err)
	}
	started := 0
	for _, x := range res.Executions {
		if x.Status == triggers.StatusStarted {
			started++
		}
	}
	if started != to-from {
		return fmt.Errorf("POST /hooks/alertmanager: %d of %d alerts started a run: %s", started, to-from, firstBytes(b, 300))
	}
	return nil
}

func firstBytes(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}

// awaitEnded polls the node's starbook_executions_ended_total for the scale
// runbook until n runs have ended, and returns how many ended and failed.
// It gives up after a minute without progress.
//
// The metric is what the leader's watch of the records saw, and a watch
// that broke (a member stalled by a defragmentation) resumes without
// counting what came between: once it has not moved for half a minute,
// stored (the store's own count) decides.
func (c *scaleClient) awaitEnded(ctx context.Context, n int, logf func(string, ...any),
	stored func(context.Context) (ended, failed int64, err error)) (ended, failed int64, err error) {
	last, lastChange, lastLog := int64(-1), time.Now(), time.Now()
	for {
		byStatus, err := c.endedByStatus(ctx)
		if err != nil {
			return 0, 0, err
		}
		ended = 0
		for _, v := range byStatus {
			ended += v
		}
		if ended >= int64(n) {
			return ended, byStatus["failed"], nil
		}
		if ended != last {
			last, lastChange = ended, time.Now()
		}
		if time.Since(lastChange) > 30*time.Second {
			e, f, err := stored(ctx)
			if err != nil {
				return 0, 0, err
			}
			if e >= int64(n) {
				logf("the metric counted %d ends; the store has all %d ended", ended, e)
				return e, f, nil
			}
			if time.Since(lastChange) > time.Minute {
				return 0, 0, fmt.Errorf("%d of %d runs ended (the metric counted %d), none in the last minute", e, n, ended)
			}
		}
		if time.Since(lastLog) > 10*time.Second {
			logf("%d of %d runs ended", ended, n)
			lastLog = time.Now()
		}
		select {
		case <-ctx.Done():
			return 0, 0, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// storeEnded counts the ended executions in the node's store: the keys of
// the execution index's ended classes, and of the failed one.
func storeEnded(ctx context.Context, endpoint string) (ended, failed int64, err error) {
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second,
		Logger: zap.NewNop()})
	if err != nil {
		return 0, 0, err
	}
	defer cli.Close()
	for _, class := range []string{"completed", "failed", "cancelled", "stuck"} {
		resp, err := cli.Get(ctx, "/starbook/ix/s/"+class+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			return 0, 0, fmt.Errorf("count the ended executions: %w", err)
		}
		ended += resp.Count
		if class == "failed" {
			failed = resp.Count
		}
	}
	return ended, failed, nil
}

// endedByStatus reads starbook_executions_ended_total{runbook="scale"} by status.
func (c *scaleClient) endedByStatus(ctx context.Context) (map[string]int64, error) {
	body, _, err := c.get(ctx, "/metrics")
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		labels, ok := strings.CutPrefix(line, "starbook_executions_ended_total{")
		if !ok || !strings.Contains(labels, `runbook="`+scaleRunbookName+`"`) {
			continue
		}
		_, status, _ := strings.Cut(labels, `status="`)
		status, _, _ = strings.Cut(status, `"`)
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("metrics line %q: %w", line, err)
		}
		out[status] += int64(v)
	}
	return out, sc.Err()
}

// get returns the body of GET path and the round trip's duration, the
// body read whole.
func (c *scaleClient) get(ctx context.Context, path string) ([]byte, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return nil, 0, err
	}
	start := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	d := time.Since(start)
	if err != nil {
		return nil, 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, 0, fmt.Errorf("GET %s: %s: %s", path, resp.Status, firstBytes(b, 300))
	}
	return b, d, nil
}

type executionsPage struct {
	Executions []struct {
		ID      string `json:"id"`
		Runbook string `json:"runbook"`
		Status  string `json:"status"`
	} `json:"executions"`
	Next string `json:"next"`
}

// checkPages checks that the pages measured hold what they should: full
// pages, failed runs where asked for them.
func (c *scaleClient) checkPages(ctx context.Context, n int) error {
	for _, q := range []struct {
		path   string
		want   int
		status string
	}{
		{"/api/v1/executions?limit=25", min(25, n), ""},
		{"/api/v1/executions?limit=100", min(100, n), ""},
		{"/api/v1/executions?status=failed&limit=25", min(25, (n+9)/10), "failed"},
		{"/api/v1/executions?runbook=" + scaleRunbookName + "&status=failed&limit=25", min(25, (n+9)/10), "failed"},
	} {
		b, _, err := c.get(ctx, q.path)
		if err != nil {
			return err
		}
		var page executionsPage
		if err := json.Unmarshal(b, &page); err != nil {
			return fmt.Errorf("GET %s: %w", q.path, err)
		}
		if len(page.Executions) != q.want {
			return fmt.Errorf("GET %s: %d executions, want %d", q.path, len(page.Executions), q.want)
		}
		for _, x := range page.Executions {
			if q.status != "" && x.Status != q.status {
				return fmt.Errorf("GET %s: execution %s is %s", q.path, x.ID, x.Status)
			}
		}
	}
	return nil
}

// walk lists every execution, 1,000 a page with the after cursor, and
// returns how long it took and how many distinct executions it listed.
func (c *scaleClient) walk(ctx context.Context) (time.Duration, int, error) {
	seen := map[string]bool{}
	after := ""
	start := time.Now()
	for {
		path := "/api/v1/executions?limit=1000"
		if after != "" {
			path += "&after=" + after
		}
		b, _, err := c.get(ctx, path)
		if err != nil {
			return 0, 0, err
		}
		var page executionsPage
		if err := json.Unmarshal(b, &page); err != nil {
			return 0, 0, fmt.Errorf("GET %s: %w", path, err)
		}
		for _, x := range page.Executions {
			seen[x.ID] = true
		}
		if page.Next == "" {
			return time.Since(start), len(seen), nil
		}
		if page.Next == after {
			return 0, 0, fmt.Errorf("GET %s: next is the after it was given", path)
		}
		after = page.Next
	}
}

// measureStore compacts the node's etcd, then counts its keys by family and
// reads its database size.
func measureStore(ctx context.Context, endpoint string, n int, res *ScaleResult) error {
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second,
		MaxCallRecvMsgSize: 64 << 20, Logger: zap.NewNop()})
	if err != nil {
		return err
	}
	defer cli.Close()
	const prefix = "/starbook/"
	var keys, kvBytes int64
	var total *clientv3.GetResponse
	// Every read at one revision: the leader folds and prunes as it goes.
	// The member compacts by itself too: at a million stored, the count
	// takes minutes, and a quiet member compacts its few new revisions
	// meanwhile; the count starts again at the new revision.
	for try := 0; ; try++ {
		var err error
		total, keys, kvBytes, err = countFamilies(ctx, cli, prefix, res)
		if err == nil {
			break
		}
		if !errors.Is(err, rpctypes.ErrCompacted) || try == 4 {
			return err
		}
	}
	res.Figures["keys_per_execution"] = float64(keys) / float64(n)
	res.Figures["kv_bytes_per_execution"] = float64(kvBytes) / float64(n)
	return compactAndSize(ctx, cli, endpoint, prefix, n, total, keys, res)
}

// countFamilies counts the keys and bytes of each top-level family under
// prefix into res.Families, every read at the revision of its first.
func countFamilies(ctx context.Context, cli *clientv3.Client, prefix string, res *ScaleResult) (total *clientv3.GetResponse, keys, kvBytes int64, err error) {
	total, err = cli.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return nil, 0, 0, err
	}
	rev := total.Header.Revision
	from, end := prefix, clientv3.GetPrefixRangeEnd(prefix)
	for {
		first, err := cli.Get(ctx, from, clientv3.WithRange(end), clientv3.WithKeysOnly(), clientv3.WithLimit(1), clientv3.WithRev(rev))
		if err != nil {
			return nil, 0, 0, err
		}
		if len(first.Kvs) == 0 {
			break
		}
		key := string(first.Kvs[0].Key)
		family, _, nested := strings.Cut(strings.TrimPrefix(key, prefix), "/")
		famFrom, famEnd := key, key+"\x00" // a key of its own, such as format
		if nested {
			family += "/"
			famFrom, famEnd = prefix+family, clientv3.GetPrefixRangeEnd(prefix+family)
		}
		f, err := sizeRange(ctx, cli, famFrom, famEnd, rev)
		if err != nil {
			return nil, 0, 0, err
		}
		res.Families[family] = f
		keys += f.Keys
		kvBytes += f.Bytes
		from = famEnd
	}
	return total, keys, kvBytes, nil
}

// compactAndSize sizes etcd's file as the node's compaction and
// defragmentation would leave it.
func compactAndSize(ctx context.Context, cli *clientv3.Client, endpoint, prefix string, n int, total *clientv3.GetResponse, keys int64, res *ScaleResult) error {
	if total.Count != keys {
		return fmt.Errorf("%d keys under %s, %d counted by family at revision %d", total.Count, prefix, keys, total.Header.Revision)
	}
	// As the node's own compaction would, later: only the current revision
	// of each key is left, and the pages it freed are counted out of
	// DbSizeInUse (the file keeps them until a defragmentation).
	resp, err := cli.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return err
	}
	// The node compacts by itself too: a compaction at or past this
	// revision already did what this one would.
	if _, err := cli.Compact(ctx, resp.Header.Revision, clientv3.WithCompactPhysical()); err != nil &&
		!errors.Is(err, rpctypes.ErrCompacted) {
		return fmt.Errorf("compact: %w", err)
	}
	time.Sleep(time.Second) // a backend commit interval or more, so that the size in use is the compacted one
	st, err := cli.Status(ctx, endpoint)
	if err != nil {
		return err
	}
	res.Figures["db_inuse_bytes_per_execution"] = float64(st.DbSizeInUse) / float64(n)
	res.Figures["db_file_bytes_per_execution"] = float64(st.DbSize) / float64(n)
	// As the node's periodic maintenance would (cluster.Defrag, every 10
	// minutes once the file is a tenth free): the file rewritten without
	// its free pages, compaction's holes in part-used pages closed.
	if _, err := cli.Defragment(ctx, endpoint); err != nil {
		return fmt.Errorf("defragment: %w", err)
	}
	if st, err = cli.Status(ctx, endpoint); err != nil {
		return err
	}
	res.Figures["db_defrag_bytes_per_execution"] = float64(st.DbSize) / float64(n)
	return nil
}

// sizeRange counts the keys in [from, end) and the bytes of their keys and
// values, a page at a time.
func sizeRange(ctx context.Context, cli *clientv3.Client, from, end string, rev int64) (KeyFamily, error) {
	var f KeyFamily
	for {
		resp, err := cli.Get(ctx, from, clientv3.WithRange(end), clientv3.WithLimit(2000), clientv3.WithSerializable(), clientv3.WithRev(rev))
		if err != nil {
			return f, err
		}
		for _, kv := range resp.Kvs {
			f.Keys++
			f.Bytes += int64(len(kv.Key) + len(kv.Value))
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return f, nil
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// write prints the figures at each size with the ratio between consecutive
// sizes, the key families per execution, and last one JSON line
// (figure_N keys).
func (r *ScaleReport) write(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	head := "figure\t"
	for _, res := range r.Results {
		head += fmt.Sprintf("N=%d\t", res.N)
	}
	for i := 1; i < len(r.Results); i++ {
		head += fmt.Sprintf("%d/%d\t", r.Results[i].N, r.Results[i-1].N)
	}
	fmt.Fprintln(tw, head+"what\t")
	for _, f := range ScaleFigures {
		line := f.Name + "\t"
		for _, res := range r.Results {
			line += num(res.Figures[f.Name]) + "\t"
		}
		for i := 1; i < len(r.Results); i++ {
			line += fmt.Sprintf("%.2fx\t", r.Results[i].Figures[f.Name]/r.Results[i-1].Figures[f.Name])
		}
		fmt.Fprintln(tw, line+f.What+"\t")
	}
	tw.Flush()

	fmt.Fprintln(w)
	families := map[string]bool{}
	for _, res := range r.Results {
		for name := range res.Families {
			families[name] = true
		}
	}
	names := make([]string, 0, len(families))
	for name := range families {
		names = append(names, name)
	}
	sort.Strings(names)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	head = "key family\t"
	for _, res := range r.Results {
		head += fmt.Sprintf("keys N=%d\tkeys/exec\tbytes/exec\t", res.N)
	}
	fmt.Fprintln(tw, head)
	for _, name := range names {
		line := name + "\t"
		for _, res := range r.Results {
			f := res.Families[name]
			line += fmt.Sprintf("%d\t%.3f\t%.0f\t", f.Keys, float64(f.Keys)/float64(res.N), float64(f.Bytes)/float64(res.N))
		}
		fmt.Fprintln(tw, line)
	}
	tw.Flush()

	flat := map[string]float64{}
	for _, res := range r.Results {
		for k, v := range res.Figures {
			flat[fmt.Sprintf("%s_%d", k, res.N)] = v
		}
	}
	writeJSONLine(w, flat)
}
