package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// etcdCluster is a three-member etcd cluster hosted in the test process, on
// fixed loopback ports so members can be stopped and started again.
type etcdCluster struct {
	t       testing.TB
	dir     string
	names   []string
	clients []string // client URLs
	peers   []string // peer URLs
	mu      sync.Mutex
	members []*embed.Etcd
	log     *zap.Logger // the members' errors: in the test's log if it fails
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// reservePort holds a free loopback port until release is called: a port
// picked long before its process listens (a member added, then started)
// would be free for any other test's listener meanwhile (CI: "bind:
// address already in use").
func reservePort(t testing.TB) (port int, release func()) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release = func() { once.Do(func() { l.Close() }) }
	t.Cleanup(release)
	return l.Addr().(*net.TCPAddr).Port, release
}

func startEtcdCluster(t testing.TB, size int) *etcdCluster {
	t.Helper()
	c := &etcdCluster{t: t, dir: t.TempDir(), members: make([]*embed.Etcd, size), log: testLogger(t)}
	// Every port held until all are picked: ports picked one after another
	// and freed at once can be the same port twice (CI: "has duplicate url").
	var releases []func()
	reserve := func() int {
		port, release := reservePort(t)
		releases = append(releases, release)
		return port
	}
	for i := range size {
		c.names = append(c.names, fmt.Sprintf("m%d", i))
		c.clients = append(c.clients, fmt.Sprintf("http://127.0.0.1:%d", reserve()))
		c.peers = append(c.peers, fmt.Sprintf("http://127.0.0.1:%d", reserve()))
	}
	for _, release := range releases {
		release()
	}
	var wg sync.WaitGroup
	errs := make([]error, size)
	for i := range size {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = c.start(i, "new") }()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for i := range c.members {
			c.stop(i)
		}
	})
	return c
}

func (c *etcdCluster) start(i int, state string) error {
	cfg := embed.NewConfig()
	cfg.Name = c.names[i]
	cfg.Dir = filepath.Join(c.dir, c.names[i])
	cfg.LogLevel = "error"
	// Not stderr: every member the test stops logs its listeners' closing
	// as errors, stack traces and all.
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(c.log.With(zap.String("member", c.names[i])))
	cfg.TickMs, cfg.ElectionMs = 50, 500
	cfg.UnsafeNoFsync = true // the starbook processes are what this test kills
	cu, _ := url.Parse(c.clients[i])
	pu, _ := url.Parse(c.peers[i])
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
	var initial []string
	for j := range c.names {
		initial = append(initial, c.names[j]+"="+c.peers[j])
	}
	cfg.InitialCluster = strings.Join(initial, ",")
	cfg.ClusterState = state
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return fmt.Errorf("start etcd %s: %w", c.names[i], err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(60 * time.Second):
		e.Close()
		return fmt.Errorf("etcd %s not ready after 60s", c.names[i])
	}
	c.mu.Lock()
	c.members[i] = e
	c.mu.Unlock()
	return nil
}

// stop closes member i (a no-op if it is not running).
func (c *etcdCluster) stop(i int) {
	c.mu.Lock()
	e := c.members[i]
	c.members[i] = nil
	c.mu.Unlock()
	if e != nil {
		e.Close()
	}
}

// stopAll stops every member at once (closing a member waits for its client
// streams to drain, so one at a time would leave a quorum serving for seconds).
func (c *etcdCluster) stopAll() {
	var wg sync.WaitGroup
	for i := range c.members {
		wg.Add(1)
		go func() { defer wg.Done(); c.stop(i) }()
	}
	wg.Wait()
}

// restartAll starts every stopped member again, concurrently (they need a
// quorum to become ready).
func (c *etcdCluster) restartAll() {
	var wg sync.WaitGroup
	for i := range c.members {
		c.mu.Lock()
		running := c.members[i] != nil
		c.mu.Unlock()
		if running {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.start(i, "existing"); err != nil {
				c.t.Error(err)
			}
		}()
	}
	wg.Wait()
}

func (c *etcdCluster) endpoints() string { return strings.Join(c.clients, ",") }

// client returns a client to the cluster, closed at cleanup.
func (c *etcdCluster) client() *clientv3.Client {
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.clients, DialTimeout: 5 * time.Second})
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { cli.Close() })
	return cli
}

// waitUntil polls cond every 20 ms until it holds or the timeout passes.
func waitUntil(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// startReady starts cmd, one of Prometheus' daemons (Prometheus,
// Alertmanager), with its output in logPath, and waits until it answers 200
// on addr's /-/ready. It is killed at cleanup; its log is shown when t failed.
func startReady(t *testing.T, name string, cmd *exec.Cmd, logPath, addr string) {
	t.Helper()
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		logFile.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("%s log:\n%s", name, b)
		}
	})
	// Each probe waits for a connection, for at most a second.
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if resp, err := client.Get("http://" + addr + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-exited:
			b, _ := os.ReadFile(logPath)
			t.Fatalf("%s exited:\n%s", name, b)
		case <-time.After(50 * time.Millisecond): // probe interval, not synchronisation
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready after 30s", name)
		}
	}
}

// testLogger returns a logger of errors to a buffer that the test's log
// shows only if the test fails: etcd's members, in the test process, log
// there instead of to stderr, so that a passing run prints none of their
// shutdown errors.
func testLogger(t testing.TB) *zap.Logger {
	b := &lockedBuffer{}
	t.Cleanup(func() {
		if t.Failed() && b.Len() > 0 {
			t.Logf("etcd's log:\n%s", b)
		}
	})
	enc := zap.NewProductionEncoderConfig()
	enc.StacktraceKey = ""
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	return zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.AddSync(b), zapcore.ErrorLevel))
}

// lockedBuffer is a bytes.Buffer written from many goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Len()
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
