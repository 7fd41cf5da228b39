package builtins_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	gliderssh "github.com/gliderlabs/ssh"
	"go.starlark.net/starlark"
	gossh "golang.org/x/crypto/ssh"

	"github.com/starbook/starbook/builtins"
	"github.com/starbook/starbook/downstream"
	"github.com/starbook/starbook/enginetest"
	sbruntime "github.com/starbook/starbook/runtime"
)

// sshServer is an in-process SSH server on a loopback port that runs each
// command with sh, as sshd runs it with the user's shell, for the user
// "ops" presenting authorized.
type sshServer struct {
	addr     string
	hostKey  gossh.Signer
	commands atomic.Int32 // commands started
	signals  atomic.Int32 // signals received
}

func newKey(t *testing.T) (gossh.Signer, string) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := gossh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := gossh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return signer, string(pem.EncodeToMemory(block))
}

func startSSHServer(t *testing.T, authorized gossh.PublicKey, jump bool) *sshServer {
	t.Helper()
	hostKey, _ := newKey(t)
	s := &sshServer{hostKey: hostKey}
	srv := &gliderssh.Server{
		Handler: func(sess gliderssh.Session) {
			s.commands.Add(1)
			cmd := exec.Command("sh", "-c", sess.RawCommand())
			cmd.Stdout, cmd.Stderr = sess, sess.Stderr()
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			if err := cmd.Start(); err != nil {
				_ = sess.Exit(127)
				return
			}
			signals := make(chan gliderssh.Signal, 1)
			sess.Signals(signals)
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				code := 0
				if ee, ok := err.(*exec.ExitError); ok {
					code = ee.ExitCode()
				}
				_ = sess.Exit(code)
			case <-signals:
				s.signals.Add(1)
				_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
				<-done
				_ = sess.Exit(143)
			case <-sess.Context().Done():
				_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				<-done
			}
		},
		PublicKeyHandler: func(ctx gliderssh.Context, key gliderssh.PublicKey) bool {
			return ctx.User() == "ops" && gliderssh.KeysEqual(key, authorized)
		},
	}
	srv.AddHostKey(hostKey)
	if jump {
		srv.LocalPortForwardingCallback = func(gliderssh.Context, string, uint32) bool { return true }
		srv.ChannelHandlers = map[string]gliderssh.ChannelHandler{"session": gliderssh.DefaultSessionHandler,
			"direct-tcpip": gliderssh.DirectTCPIPHandler}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { srv.Close() })
	s.addr = l.Addr().String()
	return s
}

// port is the server's port, as a Starlark literal.
func (s *sshServer) port() string { _, p, _ := net.SplitHostPort(s.addr); return p }

// knownHostsLine is the server's line as ssh-keyscan prints it for a
// server off port 22.
func (s *sshServer) knownHostsLine() string {
	return fmt.Sprintf("[127.0.0.1]:%s %s", s.port(), strings.TrimSpace(string(gossh.MarshalAuthorizedKey(s.hostKey.PublicKey()))))
}

// sshFixture runs runbooks whose secrets are the client's key and the
// known_hosts text.
func sshFixture(t *testing.T, secrets map[string]string) *enginetest.Fixture {
	return enginetest.NewFixture(t, enginetest.NewMemBackend(t), enginetest.Options{Secrets: secrets})
}

// TestSSHRun: a command runs on the host with its environment and the
// step's idempotency key, and returns its exit status and output; a failing
// command fails the step unless check = False; a secret the command prints
// is stored as its placeholder, and the key is in nothing stored.
func TestSSHRun(t *testing.T) {
	client, pemKey := newKey(t)
	srv := startSSHServer(t, client.PublicKey(), false)
	f := sshFixture(t, map[string]string{"SSH_KEY": pemKey, "KNOWN_HOSTS": srv.knownHostsLine(), "TOKEN": "remote-token-value-42"})
	p := f.Source("remote", `
def main(event):
    kw = dict(user = "ops", key = secret("SSH_KEY"), port = `+srv.port()+`, known_hosts = secret("KNOWN_HOSTS"))
    ok = call(ssh.run, "127.0.0.1", "echo out; echo err >&2; echo \"$STARBOOK_IDEMPOTENCY_KEY $GREETING $TOKEN\"",
        env = {"GREETING": "it's me", "TOKEN": secret("TOKEN")}, **kw)
    soft = call(ssh.run, "127.0.0.1", "echo boom >&2; exit 3", check = False, **kw)
    big = call(ssh.run, "127.0.0.1", "head -c 5000 /dev/zero | tr '\\0' x", max_output_bytes = 100, **kw)
    call(ssh.run, "127.0.0.1", "echo boom >&2; exit 4", **kw)
    return "unreachable"
`)
	id := f.Start(p, "")
	res := f.RunToEnd(id, p, sbruntime.StatusFailed)
	if !strings.Contains(res.Outcome.Error, "ssh.run ops@127.0.0.1:"+srv.port()+": exit status 4: boom") {
		t.Errorf("error %q: want the failing command's exit status and stderr", res.Outcome.Error)
	}
	steps := map[string]map[string]any{}
	for _, ev := range f.History(id).Events {
		var v map[string]any
		if json.Unmarshal(ev.Result, &v) == nil {
			steps[ev.Position] = v
		}
	}
	if got, want := steps["1"]["stdout"], "out\n"+id+"/1 it's me <secret TOKEN>\n"; got != want {
		t.Errorf("stdout %q, want %q", got, want)
	}
	if steps["1"]["stderr"] != "err\n" || steps["1"]["exit_status"] != 0.0 || steps["1"]["truncated"] != false {
		t.Errorf("step 1: %v", steps["1"])
	}
	if steps["2"]["exit_status"] != 3.0 || steps["2"]["stderr"] != "boom\n" {
		t.Errorf("check = False: %v", steps["2"])
	}
	if out, _ := steps["3"]["stdout"].(string); len(out) != 100 || steps["3"]["truncated"] != true {
		t.Errorf("max_output_bytes = 100: %d bytes, truncated %v", len(out), steps["3"]["truncated"])
	}
	leaks(t, f, id, res, "remote-token-value-42", "OPENSSH PRIVATE KEY", pemKey[60:100])
}

// TestSSHRefusesUnknownHosts: a host whose key known_hosts does not have is
// refused before anything runs, naming the key's fingerprint as ssh-keygen
// -lf prints it; so is a host known with another key.
func TestSSHRefusesUnknownHosts(t *testing.T) {
	client, pemKey := newKey(t)
	srv := startSSHServer(t, client.PublicKey(), false)
	other, _ := newKey(t)
	otherKey := strings.TrimSpace(string(gossh.MarshalAuthorizedKey(other.PublicKey())))
	fingerprint := gossh.FingerprintSHA256(srv.hostKey.PublicKey())
	tests := []struct{ name, knownHosts, want string }{
		{"unknown", "elsewhere.example.com " + otherKey,
			"host 127.0.0.1:" + srv.port() + " is not in known_hosts: its key is ssh-ed25519 " + fingerprint},
		{"mismatch", "[127.0.0.1]:" + srv.port() + " " + otherKey,
			"host key mismatch for 127.0.0.1:" + srv.port() + ": known_hosts has ssh-ed25519 " + gossh.FingerprintSHA256(other.PublicKey())},
		{"not known_hosts", "hello world", "known_hosts: no line parses as a known_hosts line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := sshFixture(t, map[string]string{"SSH_KEY": pemKey})
			p := f.Source("refused", `
def main(event):
    return call(ssh.run, "127.0.0.1", "touch /tmp/should-not-run", user = "ops", key = secret("SSH_KEY"),
        port = `+srv.port()+`, known_hosts = event.known_hosts)
`)
			input, _ := json.Marshal(map[string]string{"known_hosts": tt.knownHosts})
			id := f.Start(p, string(input))
			res := f.RunToEnd(id, p, sbruntime.StatusFailed)
			if !strings.Contains(res.Outcome.Error, tt.want) {
				t.Errorf("error %q, want one saying %q", res.Outcome.Error, tt.want)
			}
		})
	}
	if n := srv.commands.Load(); n != 0 {
		t.Errorf("%d commands ran on a refused host", n)
	}
}

// TestSSHErrorsNameTheCause: a refused key, a closed port and a timeout
// each fail the step naming host, user and cause; a timed-out command is
// stopped with a signal.
func TestSSHErrorsNameTheCause(t *testing.T) {
	client, pemKey := newKey(t)
	_, strangerKey := newKey(t)
	srv := startSSHServer(t, client.PublicKey(), false)
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, closedPort, _ := net.SplitHostPort(closed.Addr().String())
	closed.Close()
	tests := []struct{ name, key, port, command, timeout, want string }{
		{"auth failed", "STRANGER", srv.port(), "true", "10s", "ssh.run ops@127.0.0.1:" + srv.port() + ": authentication failed for user ops"},
		{"refused", "SSH_KEY", closedPort, "true", "10s", "ssh.run ops@127.0.0.1:" + closedPort + ": connect to 127.0.0.1:" + closedPort + ": connect: connection refused"},
		// call()'s timeout= bounds the step: the command is stopped with it.
		{"timeout", "SSH_KEY", srv.port(), "sleep 30", "1s", "step timed out after 1s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := sshFixture(t, map[string]string{"SSH_KEY": pemKey, "STRANGER": strangerKey,
				"KNOWN_HOSTS": srv.knownHostsLine() + "\n[127.0.0.1]:" + closedPort + " " + strings.TrimSpace(string(gossh.MarshalAuthorizedKey(srv.hostKey.PublicKey())))})
			p := f.Source("errs", fmt.Sprintf(`
def main(event):
    return call(ssh.run, "127.0.0.1", %q, user = "ops", key = secret(%q), port = %s,
        known_hosts = secret("KNOWN_HOSTS"), timeout = %q)
`, tt.command, tt.key, tt.port, tt.timeout))
			start := time.Now()
			id := f.Start(p, "")
			res := f.RunToEnd(id, p, sbruntime.StatusFailed)
			if !strings.Contains(res.Outcome.Error, tt.want) {
				t.Errorf("error %q, want one saying %q", res.Outcome.Error, tt.want)
			}
			if took := time.Since(start); took > 15*time.Second {
				t.Errorf("took %s", took)
			}
		})
	}
	if srv.signals.Load() != 1 {
		t.Errorf("%d signals reached the server, want the timed-out command's SIGTERM", srv.signals.Load())
	}
}

// TestSSHThroughJumpHost: jump= reaches the host through a bastion, each
// host's key checked against known_hosts.
func TestSSHThroughJumpHost(t *testing.T) {
	client, pemKey := newKey(t)
	target := startSSHServer(t, client.PublicKey(), false)
	bastion := startSSHServer(t, client.PublicKey(), true)
	f := sshFixture(t, map[string]string{"SSH_KEY": pemKey, "KNOWN_HOSTS": target.knownHostsLine() + "\n" + bastion.knownHostsLine()})
	p := f.Source("jump", `
def main(event):
    return call(ssh.run, "127.0.0.1", "echo via", user = "ops", key = secret("SSH_KEY"), port = `+target.port()+`,
        known_hosts = secret("KNOWN_HOSTS"), jump = "ops@127.0.0.1:`+bastion.port()+`").stdout
`)
	id := f.Start(p, "")
	if res := f.RunToEnd(id, p, sbruntime.StatusCompleted); string(res.Outcome.Result) != `"via\n"` {
		t.Errorf("result %s", res.Outcome.Result)
	}
	if target.commands.Load() != 1 || bastion.commands.Load() != 0 {
		t.Errorf("target ran %d commands, bastion %d: want 1 and 0", target.commands.Load(), bastion.commands.Load())
	}
}

// TestSSHBadInput: what ssh.run refuses before connecting, each with a clear
// error.
func TestSSHBadInput(t *testing.T) {
	pre := builtins.New(builtins.Options{Secrets: func(name string) (string, bool) { return "value-of-" + name, true }})
	hostKey, _ := newKey(t)
	known := "h " + strings.TrimSpace(string(gossh.MarshalAuthorizedKey(hostKey.PublicKey())))
	base := `user = "ops", key = secret("K"), known_hosts = "` + known + `"`
	tests := []struct{ expr, want string }{
		{`ssh.run("h", "true", ` + base + `)`, "ssh.run is an effect: run it as a durable step"},
	}
	for _, tt := range tests {
		_, err := starlark.Eval(&starlark.Thread{}, "expr", tt.expr, pre)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want one saying %q", tt.expr, err, tt.want)
		}
	}

	steps := []struct{ args, want string }{
		{`"h", "true", user = "ops", known_hosts = "x"`, "want key=secret(...) or password=secret(...)"},
		{`"h", "true", user = "ops", key = "-----BEGIN", known_hosts = "x"`, `key: got string, want secret(...)`},
		{`"h", "true", ` + base + `, port = 70000`, "port 70000: want 1 to 65535"},
		{`"a host", "true", ` + base, `host "a host": want a host name or address`},
		{`"h", "true", ` + base + `, env = {"NOT-A-NAME": "x"}`, `env: "NOT-A-NAME" is not a variable name`},
		{`"h", "", ` + base, "command is empty"},
		{`"h", "true", ` + base + `, max_output_bytes = 0`, "max_output_bytes must be between 1 and"},
		{`"h", "true", ` + base + `, jump = "ops@bad host"`, `jump: host "bad host"`},
		{`"h", "true", ` + base, "is not a private key ssh can use"},
		{`"h", "true", user = "ops", key = secret("K"), known_hosts = "h ssh-ed25519 AAAA"`, "known_hosts: no line parses as a known_hosts line"},
	}
	for _, tt := range steps {
		f := sshFixture(t, map[string]string{"K": "not a key"})
		p := f.Source("bad", "def main(event):\n    return call(ssh.run, "+tt.args+")\n")
		id := f.Start(p, "")
		res := f.RunToEnd(id, p, sbruntime.StatusFailed)
		if !strings.Contains(res.Outcome.Error, tt.want) {
			t.Errorf("ssh.run(%s): error %q, want one saying %q", tt.args, res.Outcome.Error, tt.want)
		}
		if strings.Contains(res.Outcome.Error, "not a key") {
			t.Errorf("the error shows the key: %q", res.Outcome.Error)
		}
	}
}

// TestSSHCountedAndProtected: the node's guards count each command by host
// and exit status ("other" for a host without a limit), and a limit on the
// host protects it from SSH too: a command that cannot connect opens its
// circuit, and the next fails fast without connecting.
func TestSSHCountedAndProtected(t *testing.T) {
	client, pemKey := newKey(t)
	srv := startSSHServer(t, client.PublicKey(), false)
	var mu sync.Mutex
	counted := map[string]int{}
	guards := downstream.New(downstream.Config{Hooks: downstream.Hooks{Command: func(host, exit string) {
		mu.Lock()
		counted[host+" "+exit]++
		mu.Unlock()
	}}})
	limit, err := downstream.NewLimit("localhost", "", 0, 1, time.Minute, 0.2)
	if err != nil {
		t.Fatal(err)
	}
	guards.SetStatic([]downstream.Limit{*limit})
	bi := builtins.New(builtins.Options{SSH: builtins.SSHOptions{Guards: guards},
		Secrets: func(name string) (string, bool) {
			return map[string]string{"SSH_KEY": pemKey, "KNOWN_HOSTS": srv.knownHostsLine() + "\n" +
				strings.Replace(srv.knownHostsLine(), "127.0.0.1", "localhost", 1)}[name], true
		}})
	f := sshFixture(t, nil)
	f.Engine.Builtins = bi
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, closedPort, _ := net.SplitHostPort(closed.Addr().String())
	closed.Close()
	p, err := sbruntime.Compile(&sbruntime.Bundle{Name: "guarded", Main: "guarded.star", Files: map[string]string{"guarded.star": `
def main(event):
    kw = dict(user = "ops", key = secret("SSH_KEY"), known_hosts = secret("KNOWN_HOSTS"))
    call(ssh.run, "127.0.0.1", "true", port = ` + srv.port() + `, **kw)
    call(ssh.run, "127.0.0.1", "exit 3", port = ` + srv.port() + `, check = False, **kw)
    return "ok"
`}}, bi)
	if err != nil {
		t.Fatal(err)
	}
	id := f.Start(p, "")
	f.RunToEnd(id, p, sbruntime.StatusCompleted)
	// localhost is limited (one failure opens it): the first command fails
	// to connect, the second is refused by the open circuit.
	q, err := sbruntime.Compile(&sbruntime.Bundle{Name: "down", Main: "down.star", Files: map[string]string{"down.star": `
def main(event):
    kw = dict(user = "ops", key = secret("SSH_KEY"), known_hosts = secret("KNOWN_HOSTS"), port = ` + closedPort + `)
    call(ssh.run, "localhost", "true", **kw)
`}}, bi)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"connection refused", "circuit"} {
		id := f.Start(q, "")
		res := f.RunToEnd(id, q, sbruntime.StatusFailed)
		if !strings.Contains(res.Outcome.Error, want) {
			t.Errorf("run %d: error %q, want one saying %q", i, res.Outcome.Error, want)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if counted["other 0"] != 1 || counted["other 3"] != 1 || counted["localhost error"] != 2 {
		t.Errorf("counted %v, want other 0 and other 3 once, localhost error twice", counted)
	}
}
