package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
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
	exited chan struct{} // closed once the process is gone and all its output is in its log
	out    *processLog
}

var readyLine = regexp.MustCompile(`starbook ready on (https?://\S+)`)

// startDaemon runs `starbook serve` on dataDir with a free port and waits for
// its ready line. Its output goes to dataDir.log, and to the test's log if
// the test fails.
func startDaemon(t testing.TB, dataDir string, extra ...string) *daemon {
	t.Helper()
	return spawnDaemon(t, dataDir, extra...).await(t)
}

// spawning is a `starbook serve` process started and not yet ready.
type spawning struct {
	d    *daemon
	urls chan string
}

// spawnDaemon starts `starbook serve` as startDaemon does, without waiting:
// members of one etcd cluster must all start before any is ready.
func spawnDaemon(t testing.TB, dataDir string, extra ...string) *spawning {
	t.Helper()
	// A restarted node appends to its first run's log: each process shows
	// the part it wrote.
	out, err := openProcessLog(dataDir + ".log")
	if err != nil {
		t.Fatal(err)
	}
	urls := make(chan string, 1)
	args := append([]string{"serve", "--data-dir", dataDir, "--listen", "127.0.0.1:0"}, extra...)
	cmd := exec.Command(binary, args...)
	// A writer, not the file: Wait returns only once every byte the process
	// wrote is in the log, so its last words (why it exited) are never lost.
	cmd.Stdout = out
	cmd.Stderr = &lineWatcher{w: out, line: func(line string) {
		if m := readyLine.FindStringSubmatch(line); m != nil {
			select {
			case urls <- m[1]:
			default:
			}
		}
	}}
	cmd.WaitDelay = 5 * time.Second // a child of serve holding its stderr must not hang Wait
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &daemon{cmd: cmd, exited: make(chan struct{}), out: out}
	go func() { _ = cmd.Wait(); out.Close(); close(d.exited) }()
	t.Cleanup(func() {
		d.kill(t)
		if t.Failed() {
			t.Logf("output of starbook %s:\n%s", strings.Join(args, " "), out.tail(80))
		}
	})
	return &spawning{d: d, urls: urls}
}

// await waits for the ready line of a spawned process.
func (s *spawning) await(t testing.TB) *daemon {
	t.Helper()
	d := s.d
	select {
	case d.URL = <-s.urls:
	case <-d.exited:
		// The cleanup shows its output: the reason is in its last lines.
		t.Fatalf("starbook serve exited before ready (%v): %s", d.cmd.ProcessState, d.out.lastLine())
	case <-time.After(60 * time.Second):
		t.Fatalf("starbook serve not ready after 60s")
	}
	d.Client = &api.Client{BaseURL: d.URL}
	return d
}

// processLog is a child process's log file, from where this process began
// writing it.
type processLog struct {
	mu   sync.Mutex
	f    *os.File
	path string
	from int64
}

func openProcessLog(path string) (*processLog, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &processLog{f: f, path: path, from: st.Size()}, nil
}

func (l *processLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Write(p)
}

func (l *processLog) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Close()
}

// lines returns what this process wrote, a line each, etcd's stack traces
// left out.
func (l *processLog) lines() []string {
	b, err := os.ReadFile(l.path)
	if err != nil {
		return []string{err.Error()}
	}
	b = b[min(int64(len(b)), l.from):]
	var lines []string
	for _, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		if i := strings.Index(line, `,"stacktrace":"`); i >= 0 {
			line = line[:i] + "}"
		}
		lines = append(lines, line)
	}
	return lines
}

// tail returns the last n lines this process wrote.
func (l *processLog) tail(n int) string {
	lines := l.lines()
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("[%d lines before]", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// lastLine returns the last line this process wrote: an exit's error.
func (l *processLog) lastLine() string {
	lines := l.lines()
	return lines[len(lines)-1]
}

// lineWatcher passes everything written to w, and each complete line to
// line.
type lineWatcher struct {
	w       io.Writer
	line    func(string)
	partial []byte
}

func (lw *lineWatcher) Write(p []byte) (int, error) {
	lw.partial = append(lw.partial, p...)
	for {
		i := bytes.IndexByte(lw.partial, '\n')
		if i < 0 {
			break
		}
		lw.line(string(lw.partial[:i]))
		lw.partial = lw.partial[i+1:]
	}
	return lw.w.Write(p)
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
