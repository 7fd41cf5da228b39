package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/starbook/starbook/api"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "starbook-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "starbook")
	build := exec.Command("go", "build", "-o", binary, "../cmd/starbook")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build starbook:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// daemon is a running `starbook serve` process.
type daemon struct {
	cmd    *exec.Cmd
	URL    string
	Client *api.Client
	exited chan struct{}
	log    *os.File
}

var readyLine = regexp.MustCompile(`starbook ready on (https?://\S+)`)

// startDaemon runs `starbook serve` on dataDir with a free port and waits for
// its ready line. Its logs go to dataDir/daemon.log.
func startDaemon(t testing.TB, dataDir string, extra ...string) *daemon {
	t.Helper()
	return spawnDaemon(t, dataDir, extra...).await(t)
}

// spawning is a `starbook serve` process started and not yet ready.
type spawning struct {
	d       *daemon
	dataDir string
	urls    chan string
}

// spawnDaemon starts `starbook serve` as startDaemon does, without waiting:
// members of one etcd cluster must all start before any is ready.
func spawnDaemon(t testing.TB, dataDir string, extra ...string) *spawning {
	t.Helper()
	logFile, err := os.OpenFile(filepath.Join(dataDir+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"serve", "--data-dir", dataDir, "--listen", "127.0.0.1:0"}, extra...)
	cmd := exec.Command(binary, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &daemon{cmd: cmd, exited: make(chan struct{}), log: logFile}
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(logFile, line)
			if m := readyLine.FindStringSubmatch(line); m != nil {
				urls <- m[1]
			}
		}
		_, _ = io.Copy(logFile, stderr)
	}()
	go func() { _ = cmd.Wait(); close(d.exited) }()
	t.Cleanup(func() { d.kill(t) }) // await may never be called
	return &spawning{d: d, dataDir: dataDir, urls: urls}
}

// await waits for the ready line of a spawned process.
func (s *spawning) await(t testing.TB) *daemon {
	t.Helper()
	d, urls, dataDir, cmd := s.d, s.urls, s.dataDir, s.d.cmd
	select {
	case d.URL = <-urls:
	case <-d.exited:
		t.Fatalf("starbook serve exited before ready; see %s.log", dataDir)
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("starbook serve not ready after 60s; see %s.log", dataDir)
	}
	d.Client = &api.Client{BaseURL: d.URL}
	t.Cleanup(func() {
		d.kill(t)
		if t.Failed() {
			showLog(t, dataDir+".log")
		}
	})
	return d
}

// showLog prints the last of a failed test's node log: the node's own lines
// (slog), not the embedded etcd's (zap, with a "caller"), since the log goes
// with the test's temp dir.
func showLog(t testing.TB, path string) {
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	var lines []string
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, `"msg"`) && !strings.Contains(line, `"caller"`) {
			lines = append(lines, line)
		}
	}
	lines = lines[max(0, len(lines)-60):]
	t.Logf("last %d lines of %s:\n%s", len(lines), path, strings.Join(lines, "\n"))
}

// kill sends SIGKILL and waits for the process to be gone.
func (d *daemon) kill(t testing.TB) {
	select {
	case <-d.exited:
		return
	default:
	}
	_ = d.cmd.Process.Signal(syscall.SIGKILL)
	<-d.exited
	d.log.Close()
}

// stop sends SIGTERM and waits for a graceful exit.
func (d *daemon) stop(t testing.TB) {
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(30 * time.Second):
		t.Errorf("starbook did not stop within 30s of SIGTERM")
		d.kill(t)
	}
}

// run runs the CLI against server and returns its combined output and error.
func run(ctx context.Context, server string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, binary, append([]string{"--server", server}, args...)...)
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func readFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	return string(b), err
}
