package e2e

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	sbruntime "github.com/starbook/starbook/runtime"
)

// sshd is a real OpenSSH server (Debian's openssh-server, which .ci/run
// installs) on a loopback port, with its own host key, letting in the
// current user with one key.
type sshd struct {
	port       int
	hostKey    gossh.PublicKey
	clientPEM  string
	knownHosts string
}

func sshKey(t *testing.T) (ed25519.PrivateKey, gossh.PublicKey, string) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := gossh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	pub, err := gossh.NewPublicKey(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	return priv, pub, string(pem.EncodeToMemory(block))
}

func startSSHD(t *testing.T) *sshd {
	t.Helper()
	bin := "/usr/sbin/sshd"
	if _, err := os.Stat(bin); err != nil {
		t.Skip("no /usr/sbin/sshd: apt-get install openssh-server (.ci/run does)")
	}
	dir := t.TempDir()
	// sshd refuses a key file others can read, and a root's privilege
	// separation directory must exist.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil && os.Geteuid() == 0 {
		t.Fatal(err)
	}
	_, hostPub, hostPEM := sshKey(t)
	_, clientPub, clientPEM := sshKey(t)
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	config := write("sshd_config", fmt.Sprintf(`Port %d
ListenAddress 127.0.0.1
HostKey %s
AuthorizedKeysFile %s
PidFile %s
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
AllowUsers %s
`, port, write("host_key", hostPEM), write("authorized_keys", string(gossh.MarshalAuthorizedKey(clientPub))),
		filepath.Join(dir, "sshd.pid"), me.Username))
	cmd := exec.Command(bin, "-D", "-e", "-f", config)
	log, err := os.Create(filepath.Join(dir, "sshd.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		log.Close()
		if t.Failed() {
			b, _ := os.ReadFile(log.Name())
			t.Logf("sshd log:\n%s", b)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(log.Name())
			t.Fatalf("sshd did not listen on %d: %v\n%s", port, err, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return &sshd{port: port, hostKey: hostPub, clientPEM: clientPEM,
		knownHosts: fmt.Sprintf("[127.0.0.1]:%d %s", port, strings.TrimSpace(string(gossh.MarshalAuthorizedKey(hostPub))))}
}

// sshRunbook appends its steps' idempotency keys to a file on the host:
// the first command quickly, the second slowly (the kill lands in it).
const sshRunbook = `
def main(event):
    first = call(ssh.run, "127.0.0.1", "echo \"first $STARBOOK_IDEMPOTENCY_KEY\" >> " + event.file, user = event.user,
        key = secret("E2E_SSH_KEY"), port = event.port, known_hosts = secret("E2E_KNOWN_HOSTS"))
    second = call(ssh.run, "127.0.0.1", "echo \"start $STARBOOK_IDEMPOTENCY_KEY\" >> " + event.file + "; sleep " + str(event.sleep) +
        "; echo \"end $STARBOOK_IDEMPOTENCY_KEY\" >> " + event.file + "; echo slept", user = event.user,
        key = secret("E2E_SSH_KEY"), port = event.port, known_hosts = secret("E2E_KNOWN_HOSTS"))
    return second["stdout"]
`

// TestSSHAcrossKill: a run SSHes into a real sshd; the node is SIGKILLed in
// the middle of its second command and restarted: the first command, whose
// step was recorded, never runs again, the second runs again (its first
// attempt may have gone on to its end on the host), and each saw its step's
// STARBOOK_IDEMPOTENCY_KEY. A host whose key
// is not the known one is refused, and nothing runs on it.
func TestSSHAcrossKill(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the real binary and sshd")
	}
	srv := startSSHD(t)
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("E2E_SSH_KEY", srv.clientPEM)
	t.Setenv("E2E_KNOWN_HOSTS", srv.knownHosts)
	_, otherHost, _ := sshKey(t)
	t.Setenv("E2E_WRONG_KNOWN_HOSTS", fmt.Sprintf("[127.0.0.1]:%d %s", srv.port, strings.TrimSpace(string(gossh.MarshalAuthorizedKey(otherHost)))))

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dataDir := t.TempDir() + "/node"
	d := startDaemon(t, dataDir)
	if _, err := d.Client.Apply(ctx, map[string]string{"remote.star": sshRunbook, "wrongkey.star": `
def main(event):
    return call(ssh.run, "127.0.0.1", "touch " + event.file, user = event.user, key = secret("E2E_SSH_KEY"),
        port = event.port, known_hosts = secret("E2E_WRONG_KNOWN_HOSTS"))
`}); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "ran")
	input, _ := json.Marshal(map[string]any{"file": file, "user": me.Username, "port": srv.port, "sleep": 4})
	e, err := d.Client.Start(ctx, "remote", input)
	if err != nil {
		t.Fatal(err)
	}
	// Kill once the second command has started on the host.
	for !strings.Contains(readOrEmpty(file), "start ") {
		if ctx.Err() != nil {
			t.Fatalf("the second command never started: %q", readOrEmpty(file))
		}
		time.Sleep(20 * time.Millisecond)
	}
	d.kill(t)
	d = startDaemon(t, dataDir)
	end, _, err := d.Client.Wait(ctx, e.ID, 2*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if end.Status != sbruntime.StatusCompleted || string(end.Result) != `"slept\n"` {
		t.Fatalf("after the restart: %s %s %s", end.Status, end.Result, end.Error)
	}
	lines := strings.Split(strings.TrimSpace(readOrEmpty(file)), "\n")
	count := map[string]int{}
	for _, l := range lines {
		count[l]++
	}
	first, start, done := "first "+e.ID+"/1", "start "+e.ID+"/2", "end "+e.ID+"/2"
	// The step in flight at the kill runs again (at least once): sshd does
	// not stop a command whose client went away, so the first attempt may
	// have run to its end too. The recorded one never runs again.
	if count[first] != 1 || count[start] < 1 || count[start] > 2 || count[done] < 1 || count[done] > 2 || len(count) != 3 {
		t.Errorf("the host ran:\n%s\nwant %q once, %q and %q once or twice (the step the kill cut runs again)",
			strings.Join(lines, "\n"), first, start, done)
	}

	// The wrong host key: refused, nothing touched.
	refusedFile := filepath.Join(t.TempDir(), "must-not-exist")
	input, _ = json.Marshal(map[string]any{"file": refusedFile, "user": me.Username, "port": srv.port})
	w, err := d.Client.Start(ctx, "wrongkey", input)
	if err != nil {
		t.Fatal(err)
	}
	end, _, err = d.Client.Wait(ctx, w.ID, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if end.Status != sbruntime.StatusFailed || !strings.Contains(end.Error, "host key mismatch for 127.0.0.1:") {
		t.Errorf("wrong host key: %s %s", end.Status, end.Error)
	}
	if _, err := os.Stat(refusedFile); err == nil {
		t.Error("a command ran on a host whose key did not match")
	}
}

func readOrEmpty(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}
