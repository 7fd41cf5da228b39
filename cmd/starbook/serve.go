package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/starbook/starbook"
	"github.com/starbook/starbook/api"
	"github.com/starbook/starbook/builtins"
	"github.com/starbook/starbook/cluster"
	"github.com/starbook/starbook/downstream"
	"github.com/starbook/starbook/node"
	"github.com/starbook/starbook/observe"
	sbruntime "github.com/starbook/starbook/runtime"
	"github.com/starbook/starbook/service"
	"github.com/starbook/starbook/snapshot"
	"github.com/starbook/starbook/stdlib"
)

type serveFlags struct {
	dataDir       string
	listen        string
	etcdEndpoints string
	runbooks      string
	policies      string // a directory of policies applied at start (policy apply)
	nodeID        string
	prefix        string
	workers       int
	sessionTTL    time.Duration
	stopGrace     time.Duration
	logLevel      string
	limits        sbruntime.Limits
	retention     time.Duration
	security      securityFlags
	snapshots     snapshot.Periodic
	members       memberFlags
	httpLimits    []string // node-wide downstream limits, host=rate,concurrency
	quota         quotaFlags
	debug         debugFlags
	sso           ssoFlags
}

var serveCmd = func() *cobra.Command {
	var f serveFlags
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run a starbook node (embedded etcd unless --etcd-endpoints is set)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return serve(ctx, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.dataDir, "data-dir", ".starbook", "directory for the embedded etcd and the node id")
	fl.StringVar(&f.listen, "listen", "127.0.0.1:7070", "address of the HTTP API, hooks and UI")
	fl.StringVar(&f.etcdEndpoints, "etcd-endpoints", "", "comma-separated etcd endpoints; empty starts an embedded etcd in --data-dir")
	fl.StringVar(&f.runbooks, "runbooks", "", "directory of runbooks to apply at start")
	fl.StringVar(&f.policies, "policies", "", "directory of policies to apply at start, replacing the cluster's (as policy apply does)")
	fl.StringVar(&f.nodeID, "node-id", "", "unique node id (default: kept in --data-dir)")
	fl.StringVar(&f.prefix, "prefix", "/starbook/", "etcd key prefix")
	fl.IntVar(&f.workers, "workers", 256, "executions this node runs at once")
	fl.DurationVar(&f.sessionTTL, "session-ttl", 10*time.Second, "lease TTL of this node's claims")
	fl.DurationVar(&f.stopGrace, "stop-grace", 10*time.Second, "on SIGTERM, how long in-flight steps may finish")
	fl.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fl.DurationVar(&f.retention, "retention", cluster.DefaultRetention, "delete executions that ended longer ago than this (the leader does, and compacts etcd)")
	fl.Uint64Var(&f.limits.MaxSteps, "max-starlark-steps", sbruntime.DefaultLimits.MaxSteps, "Starlark steps per run of an execution")
	fl.IntVar(&f.limits.MaxResultBytes, "max-result-bytes", sbruntime.DefaultLimits.MaxResultBytes, "size cap of one step result")
	fl.IntVar(&f.limits.MaxHistory, "max-history", sbruntime.DefaultLimits.MaxHistory, "events per execution")
	fl.IntVar(&f.limits.MaxFanOutItems, "max-fan-out-items", sbruntime.DefaultLimits.MaxFanOutItems, "items of one fan_out")
	fl.IntVar(&f.limits.MaxFanOutConcurrency, "max-fan-out-concurrency", sbruntime.DefaultLimits.MaxFanOutConcurrency, "parallel items of one fan_out")
	fl.StringVar(&f.snapshots.Dir, "snapshot-dir", "", "directory the leader saves periodic snapshots in (empty: none)")
	fl.DurationVar(&f.snapshots.Every, "snapshot-every", time.Hour, "interval between periodic snapshots (with --snapshot-dir)")
	fl.IntVar(&f.snapshots.Keep, "snapshot-keep", 24, "periodic snapshots kept in --snapshot-dir; older ones are deleted")
	fl.StringArrayVar(&f.httpLimits, "http-limit", nil, "node-wide limit of a downstream host, host=rate,concurrency (e.g. api.example.com=10/s,5; either may be empty), repeatable; combined with the runbooks' http_limit() declarations, the strictest winning")
	f.security.register(fl)
	f.members.register(fl)
	f.quota.register(fl)
	f.debug.register(fl)
	f.sso.register(fl)
	return cmd
}()

func init() { rootCmd.AddCommand(serveCmd) }

func serve(ctx context.Context, f serveFlags) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	if err := f.limits.Validate(); err != nil {
		return err
	}
	var httpLimits []downstream.Limit
	for _, spec := range f.httpLimits {
		l, err := downstream.ParseFlag(spec)
		if err != nil {
			return err
		}
		httpLimits = append(httpLimits, *l)
	}
	if f.snapshots.Dir != "" {
		if err := f.snapshots.Validate(); err != nil {
			return fmt.Errorf("--snapshot-dir: %w", err)
		}
	}
	if err := f.sso.check(f.security.authFile); err != nil {
		return err
	}
	f.security.sso = f.sso.enabled()
	sec, err := f.security.load(f.listen)
	if err != nil {
		return err
	}
	// Refused before anything is created: a bad --initial-cluster leaves
	// the data dir as it was.
	member, err := f.members.config(f.nodeID, f.etcdEndpoints)
	if err != nil {
		return err
	}
	// Every secret a runbook reads is scrubbed from the node's own log too.
	scrubber := sbruntime.NewScrubber()
	logger := slog.New(observe.LogHandler(scrubber.LogHandler(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))))
	if err := f.debug.start(ctx, logger); err != nil {
		return err
	}
	sec.logStart(logger)
	quotaBytes, err := f.quota.bytes(f.etcdEndpoints == "", logger)
	if err != nil {
		return err
	}
	var policyFiles map[string]string
	if f.policies != "" { // refused before anything starts: nothing is stored
		if policyFiles, err = loadPolicyDir(ctx, f.policies); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(f.dataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	started := time.Now()

	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", f.listen, err)
	}
	scheme := "http"
	if sec.serverTLS != nil {
		ln, scheme = tls.NewListener(ln, sec.serverTLS), "https"
	}
	defer ln.Close()
	handler := &swapHandler{}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}
	defer srv.Close()
	httpErr := make(chan error, 1)
	serveHTTP := func() { go func() { httpErr <- srv.Serve(ln) }() }
	if member != nil {
		// A member waits for a quorum: answer /healthz (alive) and refuse
		// everything else (/readyz too) until the node is ready.
		serveHTTP()
	}

	var cli *clientv3.Client
	var members *cluster.Membership
	where := ""
	maxTxnOps := 128 // etcd's default --max-txn-ops
	if f.etcdEndpoints == "" {
		clientURL := ""
		if f.members.clientListen != "" {
			clientURL = "http://" + f.members.clientListen
			if sec.etcdTLS.Enabled() {
				clientURL = "https://" + f.members.clientListen
			}
		}
		emb, err := cluster.StartEmbedded(ctx, cluster.EmbeddedConfig{Dir: f.dataDir, Fast: true, TLS: sec.etcdTLS,
			ClientURL: clientURL, Defrag: cluster.Defrag{Logger: logger}, Member: member, Quota: quotaBytes})
		if err != nil {
			return err
		}
		defer emb.Close()
		cli = emb.Client
		maxTxnOps = cluster.EmbeddedMaxTxnOps
		where = "embedded etcd in " + f.dataDir + " (" + emb.ClientURL() + ")"
		if member != nil {
			peerTLS, err := member.PeerClientTLS()
			if err != nil {
				return err
			}
			members = cluster.NewMembership(cli, peerTLS)
			where = fmt.Sprintf("embedded etcd member %s of %s in %s (%s)", member.Name,
				cluster.FormatInitialCluster(member.InitialCluster), f.dataDir, emb.ClientURL())
		}
	} else {
		var err error
		cli, err = cluster.DialEtcd(strings.Split(f.etcdEndpoints, ","), sec.etcdTLS)
		if err != nil {
			return err
		}
		defer cli.Close()
		where = "etcd " + f.etcdEndpoints
	}

	metrics := observe.NewMetrics()
	observe.InstrumentEtcd(cli, metrics)
	storage, stopGuard := startGuard(ctx, cli, quotaBytes, f.etcdEndpoints == "", logger)
	defer stopGuard()
	metrics.WatchStorage(storage)
	nodeID, err := resolveNodeID(f)
	if err != nil {
		return err
	}
	tracing, err := observe.TracingFromEnv(ctx, nodeID)
	if err != nil {
		return err
	}
	defer func() {
		flushCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = tracing.Shutdown(flushCtx)
	}()
	slack, err := slackFromEnv(logger, f.sso.publicURL)
	if err != nil {
		return err
	}
	store := cluster.NewStore(cli, f.prefix, cluster.WithMaxTxnOps(maxTxnOps))
	guards := downstream.New(downstream.Config{Node: nodeID, Circuits: store, Hooks: metrics.DownstreamHooks(),
		Logger: logger.With("node", nodeID)})
	guards.SetStatic(httpLimits)
	var starter atomic.Pointer[service.Service] // starts the children of run_runbook, once made below
	bi := builtins.New(builtins.Options{Slack: slackEffects(slack), Scrubber: scrubber, HTTP: builtins.HTTPOptions{Guards: guards},
		SSH: builtins.SSHOptions{Guards: guards},
		Runbooks: builtins.RunbookStarterFunc(func(ctx context.Context, c builtins.ChildRequest) (string, error) {
			return starter.Load().StartChild(ctx, c)
		})})
	store.SetActiveLimit(f.security.maxActive)
	defer metrics.CountRollouts(store)()
	metrics.ReadPauses(store)               // starbook_runbook_paused, on the leader
	var leaderTasks []func(context.Context) // Slack's join them once the service is made
	leaderTasks = append(leaderTasks, metrics.LeaderTask(store),
		store.RetentionTask(cluster.Retention{Age: f.retention, Logger: logger, OnPass: metrics.Retained}),
		store.AuditRetentionTask(f.retention, 0, logger),
		store.CircuitReapTask(cluster.CircuitReaping{Logger: logger}), // the guards share their circuits through store
		store.RollupTask(cluster.RollupFolding{Logger: logger}),       // SLO and usage rollups
		store.ChildEndsTask(0, logger))                                // child runbooks' ends to their parents
	if f.snapshots.Dir != "" {
		p := f.snapshots
		p.Logger, p.OnSaved, p.OnFailed = logger, metrics.SnapshotSaved, metrics.SnapshotFailed
		leaderTasks = append(leaderTasks, p.Task(cli))
	}
	defer store.Close()
	// The store's format before anything writes (node.New checks it too):
	// a newer store refuses to start this node, an older one is migrated.
	if _, err := store.OpenFormat(ctx); err != nil {
		return err
	}
	svc := service.New(store, bi)
	starter.Store(svc)
	svc.Storage = storage
	if svc.Libraries, err = stdlib.Default(os.Getenv); err != nil {
		return err
	}
	slackTasks, err := wireSlack(slack, store, svc, f.security.authFile, logger)
	if err != nil {
		return err
	}
	leaderTasks = append(leaderTasks, slackTasks...)
	if policyFiles != nil { // before the runbooks (they are judged by them) and the node
		set, err := svc.ApplyPolicies(ctx, policyFiles)
		if err != nil {
			return fmt.Errorf("--policies: %w", err)
		}
		_ = svc.RecordAudit(ctx, &starbook.AuditRecord{Actor: "serve --policies", Action: "policy.apply",
			Detail: "policies@" + set.Version, Outcome: starbook.AuditOK})
		logger.Info("policies applied", "dir", f.policies, "version", set.Version, "files", len(set.Files), "tests", set.Tests)
	}
	if f.runbooks != "" {
		files, err := collectFiles([]string{f.runbooks})
		if err != nil {
			return fmt.Errorf("--runbooks: %w", err)
		}
		applied, err := svc.Apply(ctx, files)
		if err != nil {
			return fmt.Errorf("--runbooks %s: %w", f.runbooks, err)
		}
		for _, rb := range applied {
			logger.Info("runbook applied", "runbook", rb.Name, "version", rb.Version, "unchanged", rb.Unchanged)
			for _, w := range rb.Warnings {
				logger.Warn("runbook check", "runbook", rb.Name, "warning", w)
			}
		}
	}
	worker, err := node.New(ctx, store, node.Config{
		ID: nodeID, Workers: f.workers, SessionTTL: f.sessionTTL, StopGrace: f.stopGrace,
		Limits: f.limits, Builtins: bi, Logger: logger, LeaderTasks: leaderTasks, Guards: guards,
		Observer: &observe.Observer{Metrics: metrics, Tracing: tracing, Node: nodeID}, Storage: storage,
	})
	if err != nil {
		return err
	}
	svc.Node = worker
	signIn, err := f.sso.relyingParty(ctx, f.security.authFile, sec.serverTLS != nil, scheme, ln.Addr(), store, svc, logger)
	if err != nil {
		return err
	}

	apiOpts := []api.Option{hooksOption(store, worker, logger, f.security.defaultPolicy, metrics, storage),
		api.WithAuth(sec.auth), api.WithLimits(f.security.bodies), api.WithScrubber(scrubber)}
	if members != nil {
		apiOpts = append(apiOpts, api.WithMembers(members))
	}
	if signIn != nil {
		apiOpts = append(apiOpts, api.WithSessions(signIn))
	}
	mux := nodeMux(metrics.Handler(), signIn, api.NewHandler(svc, logger, apiOpts...), slack)
	handler.set(tracing.Middleware(mux))
	if member == nil {
		serveHTTP()
	}

	nodeDone := make(chan error, 1)
	go func() { nodeDone <- worker.Run(ctx) }()
	defer startSocketMode(ctx, slack, logger)()
	if host, _, _ := net.SplitHostPort(ln.Addr().String()); host == "127.0.0.1" || host == "::1" {
		logger.Info("listening on loopback only; pass --listen to serve other hosts")
	}
	logger.Info("starbook ready", "url", scheme+"://"+ln.Addr().String(), "node", nodeID, "store", where,
		"startup_ms", time.Since(started).Milliseconds())
	fmt.Fprintf(os.Stderr, "starbook ready on %s://%s (node %s, %s)\n", scheme, ln.Addr(), nodeID, where)

	select {
	case <-ctx.Done():
	case err := <-httpErr:
		return fmt.Errorf("http server: %w", err)
	case err := <-nodeDone:
		return fmt.Errorf("node stopped: %w", err)
	}
	logger.Info("stopping")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdownCtx)
	if err := <-nodeDone; err != nil && !errors.Is(err, context.Canceled) {
		logger.Warn("node stop", "err", err)
	}
	return nil
}

// resolveNodeID returns --node-id, or the id kept in the data dir, creating it
// on first start so that a restarted node is recognised as itself.
func resolveNodeID(f serveFlags) (string, error) {
	if f.nodeID != "" {
		return f.nodeID, nil
	}
	path := filepath.Join(f.dataDir, "node-id")
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return strings.TrimSpace(string(b)), nil
	}
	host, _ := os.Hostname()
	if host == "" {
		host = "node"
	}
	suffix := make([]byte, 3)
	_, _ = rand.Read(suffix)
	id := host + "-" + hex.EncodeToString(suffix)
	if err := os.WriteFile(path, []byte(id+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("node id: %w", err)
	}
	return id, nil
}
