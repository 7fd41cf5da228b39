package cluster

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/logutil"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// EmbeddedConfig configures a single-member etcd inside the node.
type EmbeddedConfig struct {
	Dir string // data directory; created if missing
	// ClientURL is where the member also listens for outside clients (etcdctl);
	// "" picks a free loopback port.
	ClientURL string
	// Fast shortens raft ticks (tests and single nodes start quicker).
	Fast bool
	// NoFsync disables fsync: unit tests only, never benchmarks or crash tests.
	NoFsync bool
	// TLS, when set, makes the member serve clients over TLS only, requiring
	// a client certificate signed by TLS.CAFile; the node's own client
	// presents TLS.CertFile.
	TLS *EtcdTLS
	// Defrag configures the member's periodic defragmentation.
	Defrag Defrag
	// Compaction configures the member's compaction of old revisions.
	Compaction Compaction
	// Quota is the member's --quota-backend-bytes; 0 keeps etcd's default
	// (2 GiB). See package quota.
	Quota int64
	// CommitEachWrite commits the member's backend after every write, not
	// every 100 ms: its size (what the quota is checked against, and Status
	// reports) is then current when a write returns. Tests only.
	CommitEachWrite bool
	// Member, when set, makes this one member of a cluster of embedded
	// members (serve --initial-cluster) instead of a cluster of its own.
	// Fast does not apply then: raft's timing is the Member's.
	Member *MemberConfig

	logTo zapcore.Core // where etcd's log goes instead of stderr: tests read it
}

// The embedded member's layout in a node's data dir: etcd's own data dir is
// EmbeddedEtcdDir(dir), and the one member is named EmbeddedMemberName, with
// the peer URL EmbeddedPeerURL (it has no peers: the port is never dialled)
// and etcd's default cluster token. A member of a cluster of embedded
// members (MemberConfig) is named and addressed by its MemberConfig but
// bootstraps with the same token (restored members: with one made from the
// snapshot's hash, see snapshot.RestoreMember). A restore (package snapshot) writes a
// member that StartEmbedded restarts on, so both take these from here.
const (
	EmbeddedMemberName   = "starbook"
	EmbeddedPeerURL      = "http://127.0.0.1:0"
	EmbeddedClusterToken = "etcd-cluster"
)

// EmbeddedEtcdDir returns where the embedded member keeps its data inside
// the node's data dir.
func EmbeddedEtcdDir(dataDir string) string { return filepath.Join(dataDir, "etcd") }

// EmbeddedMaxTxnOps is the --max-txn-ops of the embedded etcd: large batches
// of checkpoints fit one txn.
const EmbeddedMaxTxnOps = 1024

// Embedded is a running embedded etcd member and an in-process client to it.
type Embedded struct {
	Etcd       *embed.Etcd
	Client     *clientv3.Client
	scheme     string // of the client URL: http or https
	defrag     Defrag
	compaction Compaction

	stop        context.CancelFunc // stops maintainLoop and compactLoop
	maintenance sync.WaitGroup
	closing     *atomic.Bool // set by Close: see quietOnClose
	closeOnce   sync.Once
}

// StartEmbedded starts a single-member etcd in cfg.Dir and waits until it
// serves. Restarting on the same directory keeps all data. With cfg.Member,
// the member is one of a cluster: it waits for a quorum (at most
// cfg.Member.ReadyTimeout), and a member restarting on its data rejoins
// with it, ignoring the initial cluster.
func StartEmbedded(ctx context.Context, cfg EmbeddedConfig) (*Embedded, error) {
	if cfg.Member != nil {
		if err := cfg.Member.Validate(); err != nil {
			return nil, err
		}
	}
	marked, err := readMemberMark(cfg.Dir)
	if err != nil {
		return nil, err
	}
	if err := checkMemberMark(cfg.Dir, marked, cfg.Member); err != nil {
		return nil, err
	}
	ec := embed.NewConfig()
	ec.Name = EmbeddedMemberName
	ec.Dir = EmbeddedEtcdDir(cfg.Dir)
	ec.InitialClusterToken = EmbeddedClusterToken
	ec.LogLevel = "error"
	ec.Logger = "zap"
	closing := &atomic.Bool{}
	lg, err := quietOnClose(closing, cfg.logTo)
	if err != nil {
		return nil, fmt.Errorf("embedded etcd logger: %w", err)
	}
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(lg)
	compaction := cfg.Compaction.withDefaults()
	if compaction.Interval < 0 {
		ec.AutoCompactionMode = embed.CompactorModePeriodic
		ec.AutoCompactionRetention = "1h"
	}
	ec.MaxTxnOps = EmbeddedMaxTxnOps
	// etcd's compaction walks every revision it keeps, 1,000 a batch with a
	// 10 ms pause between batches by default: 4.3 keys an execution at a
	// million stored made that 43 s of pauses a compaction, more than the
	// time between two compactions in a burst. 10,000 a batch holds the
	// member's write lock about 10 ms at a time.
	ec.CompactionBatchLimit = 10_000
	ec.QuotaBackendBytes = cfg.Quota
	if cfg.CommitEachWrite {
		ec.BackendBatchLimit = 1
	}
	// No HTTP/JSON gateway: runbooks' http.* calls run on this host, and
	// must not reach the store behind the node's back (gRPC needs a client
	// the built-ins do not have).
	ec.EnableGRPCGateway = false
	// Keep the in-memory raft log short: an entry is a whole group-commit
	// txn (up to a MiB; about 150 KB while alerts start runs in bursts).
	// etcd 3.7 snapshots its raft log in memory every 100 entries and then
	// keeps SnapshotCatchUpEntries more on the heap, for followers to catch
	// up from. A lone member has no follower, so it keeps 20 (with 100, a
	// 100,000-run burst left 30 MB of them on the heap); members keep enough
	// for a follower that fell behind by a few seconds. SnapshotCount is how
	// often it also snapshots to disk: a restart replays the log since, and
	// holds it on the heap (every 2,000 entries: a node with 100,000 runs
	// restarted in 2.5 s to 500 MB, against 1.7 s and 370-420 MB every 500
	// or 100); each disk snapshot forces a backend commit.
	ec.SnapshotCount, ec.SnapshotCatchUpEntries = 500, 20
	if cfg.Member != nil {
		ec.SnapshotCount, ec.SnapshotCatchUpEntries = 2000, 500
	}
	ec.UnsafeNoFsync = cfg.NoFsync
	if cfg.Fast {
		ec.TickMs, ec.ElectionMs = 10, 100
	}
	client := cfg.ClientURL
	scheme := "http"
	if cfg.TLS.Enabled() {
		scheme = "https"
		ec.ClientTLSInfo = transport.TLSInfo{CertFile: cfg.TLS.CertFile, KeyFile: cfg.TLS.KeyFile,
			TrustedCAFile: cfg.TLS.CAFile, ClientCertAuth: cfg.TLS.CAFile != ""}
	}
	if client == "" {
		client = scheme + "://127.0.0.1:0"
	}
	cu, err := url.Parse(client)
	if err != nil {
		return nil, fmt.Errorf("embedded etcd client url %q: %w", client, err)
	}
	if cfg.Member != nil && cu.Port() == "0" {
		// Members advertise their client URL to each other (cluster
		// status probes it): it must name the real port, not 0.
		if cu.Host, err = freeAddr(cu.Hostname()); err != nil {
			return nil, fmt.Errorf("embedded etcd client url: %w", err)
		}
	}
	ec.ListenClientUrls, ec.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
	readyTimeout := 60 * time.Second
	if m := cfg.Member; m != nil {
		if err := memberConfig(ec, m); err != nil {
			return nil, err
		}
		readyTimeout = m.ReadyTimeout
		if readyTimeout <= 0 {
			readyTimeout = 2 * time.Minute
		}
	} else {
		pu, _ := url.Parse(EmbeddedPeerURL)
		ec.ListenPeerUrls, ec.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
		ec.InitialCluster = ec.InitialClusterFromName(ec.Name)
	}

	e, err := startEtcd(ctx, ec, cfg.Member)
	if err != nil {
		err = fmt.Errorf("start embedded etcd in %s: %w", ec.Dir, err)
		if cfg.Member != nil { // a joining member fails here when no peer answers
			err = cfg.Member.withPeerProblems(err)
		}
		return nil, err
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		closeUnready(e, closing)
		return nil, fmt.Errorf("embedded etcd: %w", err)
	case <-ctx.Done():
		closeUnready(e, closing)
		return nil, fmt.Errorf("embedded etcd not ready: %w", ctx.Err())
	case <-time.After(readyTimeout):
		closeUnready(e, closing)
		if cfg.Member != nil {
			return nil, cfg.Member.withPeerProblems(fmt.Errorf("embedded etcd member %s not ready after %s: no quorum (are the other members of --initial-cluster up and reachable?)", ec.Name, readyTimeout))
		}
		return nil, fmt.Errorf("embedded etcd not ready after %s", readyTimeout)
	}
	if marked == "" {
		// A dir from before member.json, or a single node's: check what it
		// holds (a marked one was checked before etcd started).
		if err := checkStoredMember(e, cfg.Dir, cfg.Member); err != nil {
			closing.Store(true)
			e.Close()
			return nil, err
		}
	}
	if cfg.Member != nil && marked == "" {
		if err := WriteMemberMark(cfg.Dir, cfg.Member.Name); err != nil {
			closing.Store(true)
			e.Close()
			return nil, err
		}
	}
	// A gRPC client over loopback, not v3client's in-process adapter: with
	// many concurrent watches the adapter was seen to stop delivering events
	// (etcd 3.7.3), which would leave executions unclaimed and waiters hung.
	cli, err := DialEtcd([]string{scheme + "://" + e.Clients[0].Addr().String()}, cfg.TLS)
	if err != nil {
		closing.Store(true)
		e.Close()
		return nil, fmt.Errorf("embedded etcd client: %w", err)
	}
	emb := &Embedded{Etcd: e, Client: cli, scheme: scheme, defrag: cfg.Defrag.withDefaults(), compaction: compaction,
		closing: closing}
	mctx, stop := context.WithCancel(context.Background())
	emb.stop = stop
	if emb.defrag.Interval > 0 {
		emb.maintenance.Go(func() { emb.maintainLoop(mctx) })
	}
	if compaction.Interval > 0 {
		emb.maintenance.Go(func() { emb.compactLoop(mctx) })
	}
	// Restoring the member's index decoded every stored revision: most of
	// the heap that took is garbage now, and the runtime would keep it for
	// a while (300 MB of a restarted node's 415 with 100,000 stored). And
	// etcd mapped its db file whole.
	emb.releaseMemory()
	return emb, nil
}

// startEtcd starts etcd with ec. A member added to a running cluster
// (StateExisting) asks a peer for the cluster's members at start and
// refuses to start unless they are those of its --initial-cluster; a
// follower answers from what it has applied, and may not have applied the
// add yet when the new member starts right after add-member returned (the
// leader answers it once it has applied it itself). Such a member tries
// again for up to joinRetryFor.
func startEtcd(ctx context.Context, ec *embed.Config, m *MemberConfig) (*embed.Etcd, error) {
	deadline := time.Now().Add(joinRetryFor)
	for {
		e, err := embed.StartEtcd(ec)
		if err == nil || m == nil || m.State != StateExisting || !strings.Contains(err.Error(), memberCountUnequal) ||
			time.Now().After(deadline) {
			return e, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(joinRetryEvery):
		}
	}
}

// memberCountUnequal is how etcd says that a peer listed other members than
// a joining member's initial cluster.
const memberCountUnequal = "member count is unequal"

// How long and how often a joining member asks again: a follower applies an
// add within a few heartbeats, seconds on a loaded host.
const (
	joinRetryFor   = 10 * time.Second
	joinRetryEvery = 100 * time.Millisecond
)

// closeUnready closes a member that never became ready. etcd's Close waits
// for the client servers, which start only once the server is ready or
// stopping: a member with no quorum would hang in Close, past
// --member-start-timeout and SIGTERM alike, unless its server stops first
// (etcd-io/etcd#9533).
func closeUnready(e *embed.Etcd, closing *atomic.Bool) {
	closing.Store(true) // its listeners' errors are this close's
	e.Server.HardStop()
	e.Close()
}

// memberConfig makes ec one member of the cluster m describes.
func memberConfig(ec *embed.Config, m *MemberConfig) error {
	ec.Name = m.Name
	ec.InitialCluster = FormatInitialCluster(m.InitialCluster)
	ec.ClusterState = m.State
	if ec.ClusterState == "" {
		ec.ClusterState = StateNew
	}
	own, err := url.Parse(m.own().PeerURL)
	if err != nil {
		return fmt.Errorf("peer URL of %s: %w", m.Name, err)
	}
	listen := url.URL{Scheme: own.Scheme, Host: m.PeerListen}
	ec.ListenPeerUrls, ec.AdvertisePeerUrls = []url.URL{listen}, []url.URL{*own}
	if m.PeerTLS.Enabled() {
		ec.PeerTLSInfo = transport.TLSInfo{CertFile: m.PeerTLS.CertFile, KeyFile: m.PeerTLS.KeyFile,
			TrustedCAFile: m.PeerTLS.CAFile, ClientCertAuth: true}
	}
	hb, et := m.timing()
	ec.TickMs, ec.ElectionMs = uint(hb.Milliseconds()), uint(et.Milliseconds())
	// Followers catch up from the log: keep etcd's defaults, not the
	// single member's short log.
	defaults := embed.NewConfig()
	ec.SnapshotCount, ec.SnapshotCatchUpEntries = defaults.SnapshotCount, defaults.SnapshotCatchUpEntries
	return nil
}

// freeAddr returns host:port with a port free on host now.
func freeAddr(host string) (string, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// ClientURL returns the URL outside clients can reach the member at.
func (e *Embedded) ClientURL() string {
	return e.scheme + "://" + e.Etcd.Clients[0].Addr().String()
}

// Close stops the periodic maintenance, waiting for it, then the client and
// the member. Only the first call does anything.
func (e *Embedded) Close() {
	e.closeOnce.Do(func() {
		e.stop()
		e.maintenance.Wait()
		e.Client.Close()
		e.closing.Store(true)
		e.Etcd.Close()
	})
}

// servingFailed is what etcd logs, with a stack trace, for each listener
// that stops serving, including every one that its own Close stops
// (etcd-io/etcd#17424): four error entries at each clean shutdown.
const servingFailed = "setting up serving from embedded etcd failed."

// bootstrapFailed is what etcd logs, with a stack trace, when a member
// cannot start (no peer answers a joining member): StartEtcd returns the
// same error, which StartEmbedded reports with what each peer said.
const bootstrapFailed = "bootstrap failed"

// storageVersionFailed is what etcd's storage version monitor logs, with a
// stack trace, when it runs before a fresh member's backend holds a raft
// term ("missing term information"). It is harmless: the monitor's next
// run, seconds later, stores the version.
const (
	storageVersionFailed = "failed to update storage version"
	missingTerm          = "missing term information"
)

// quietOnClose returns etcd's default logger (errors, as JSON, to stderr,
// or to logTo if set) without the servingFailed entries logged once closing
// is set, the bootstrapFailed ones, nor the storageVersionFailed ones for a
// missing term.
func quietOnClose(closing *atomic.Bool, logTo zapcore.Core) (*zap.Logger, error) {
	cfg := logutil.DefaultZapLoggerConfig
	cfg.Level = zap.NewAtomicLevelAt(zap.ErrorLevel)
	return cfg.Build(zap.WrapCore(func(c zapcore.Core) zapcore.Core {
		if logTo != nil {
			c = logTo
		}
		return closingCore{Core: c, closing: closing}
	}))
}

// closingCore drops servingFailed once closing is set, bootstrapFailed, and
// storageVersionFailed for a missing term.
type closingCore struct {
	zapcore.Core
	closing *atomic.Bool
}

func (c closingCore) With(fields []zapcore.Field) zapcore.Core {
	return closingCore{Core: c.Core.With(fields), closing: c.closing}
}

func (c closingCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if e.Message == servingFailed && c.closing.Load() || e.Message == bootstrapFailed {
		return ce
	}
	if e.Message == storageVersionFailed && c.Enabled(e.Level) {
		return ce.AddCore(e, c) // the error is a field: Write sees it
	}
	return c.Core.Check(e, ce)
}

// Write is reached only for storageVersionFailed entries (see Check).
func (c closingCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	if e.Message == storageVersionFailed {
		for _, f := range fields {
			if err, ok := f.Interface.(error); ok && f.Type == zapcore.ErrorType && strings.Contains(err.Error(), missingTerm) {
				return nil
			}
		}
	}
	return c.Core.Write(e, fields)
}
