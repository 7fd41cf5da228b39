package builtins

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/starbook/starbook/downstream"
	sbruntime "github.com/starbook/starbook/runtime"
)

// SSHOptions configure ssh.run.
type SSHOptions struct {
	// DialTimeout bounds each TCP connection and handshake (default 30s;
	// the step's timeout= bounds the whole command).
	DialTimeout time.Duration
	// StopGrace is how long a stopped command (timeout, cancel) has between
	// its SIGTERM and the connection's close (default 2s).
	StopGrace time.Duration
	// Guards protect the hosts that have a limit (http_limit, serve
	// --http-limit) from SSH commands too: concurrency, rate and circuit
	// breaker (a command that cannot connect counts as a failure, one that
	// ran as a success whatever its exit status). They also count the
	// commands (Hooks.Command). Nil guards nothing.
	Guards *downstream.Guards
}

func (o SSHOptions) withDefaults() SSHOptions {
	if o.DialTimeout <= 0 {
		o.DialTimeout = 30 * time.Second
	}
	if o.StopGrace <= 0 {
		o.StopGrace = 2 * time.Second
	}
	return o
}

// The defaults and bounds of ssh.run.
const (
	defaultSSHTimeout     = 5 * time.Minute
	defaultSSHOutputBytes = 1 << 20
	maxSSHOutputBytes     = 16 << 20
)

// NewSSHModule returns the ssh module: run(host, command, user=, key=,
// password=, port=22, known_hosts=, jump=None, timeout="5m", env={},
// max_output_bytes=1048576, check=True). It is an effect: it runs only
// inside a durable step, and returns {"exit_status", "stdout", "stderr",
// "truncated"}.
func NewSSHModule(opts SSHOptions) *starlarkstruct.Module {
	c := &sshClient{opts: opts.withDefaults()}
	return &starlarkstruct.Module{Name: "ssh", Members: starlark.StringDict{
		"run": starlark.NewBuiltin("ssh.run", c.run),
	}}
}

type sshClient struct{ opts SSHOptions }

// sshTarget is a host to reach: the command's, or a jump host.
type sshTarget struct {
	host string
	port int
	user string
}

func (t sshTarget) addr() string { return net.JoinHostPort(t.host, strconv.Itoa(t.port)) }

func (t sshTarget) String() string { return t.user + "@" + t.addr() }

// sshRequest is one call's arguments.
type sshRequest struct {
	target     sshTarget
	command    textArg
	key        *sbruntime.Secret
	password   *sbruntime.Secret
	knownHosts textArg
	jump       *sshTarget
	timeout    time.Duration
	env        map[string]string
	maxOutput  int
	check      bool
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func (c *sshClient) run(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	sc := sbruntime.InStep(th)
	if sc == nil {
		return nil, fmt.Errorf("%s is an effect: run it as a durable step, e.g. call(%s, host, command, ...)", b.Name(), b.Name())
	}
	r, err := unpackSSH(b.Name(), args, kwargs)
	if err != nil {
		return nil, err
	}
	if err := sc.Effect(sbruntime.Effect{Kind: "ssh", Host: r.target.host, User: r.target.user}); err != nil {
		return nil, err
	}
	fail := func(format string, a ...any) error {
		return errors.New(sbruntime.Scrub(th, fmt.Sprintf("%s %s: ", b.Name(), r.target)+fmt.Sprintf(format, a...)))
	}
	hostKeys, err := hostKeyCallback(r.knownHosts.text)
	if err != nil {
		return nil, fail("known_hosts: %v", err)
	}
	auth := []ssh.AuthMethod{}
	if r.key != nil {
		signer, err := ssh.ParsePrivateKey([]byte(r.key.Reveal()))
		if err != nil {
			return nil, fail("key=%s is not a private key ssh can use (PEM or OpenSSH format, no passphrase)", r.key)
		}
		auth = append(auth, ssh.PublicKeys(signer))
	}
	if r.password != nil {
		auth = append(auth, ssh.Password(r.password.Reveal()))
	}

	ctx, cancel := context.WithTimeout(sbruntime.Context(th), r.timeout)
	defer cancel()
	guard := c.opts.Guards.Host(r.target.host)
	var pass *downstream.Pass
	if guard != nil {
		if pass, err = guard.Acquire(ctx, sc.Attempts > 1); err != nil {
			c.opts.Guards.Commanded(guard, "error")
			return nil, fail("%v", err)
		}
		defer pass.Release()
	}
	client, err := c.dial(ctx, r, auth, hostKeys)
	if err != nil {
		c.opts.Guards.Commanded(guard, "error")
		if pass != nil {
			pass.Done(0, err)
		}
		if ctx.Err() != nil {
			return nil, fail("%s", stopReason(ctx, r.timeout))
		}
		return nil, fail("%v", err)
	}
	defer client.Close()
	if pass != nil {
		pass.Done(200, nil) // the host answered: its health, whatever the command does
	}
	session, err := client.NewSession()
	if err != nil {
		return nil, fail("open a session: %v", err)
	}
	defer session.Close()
	stdout, stderr := &cappedBuffer{max: r.maxOutput}, &cappedBuffer{max: r.maxOutput}
	session.Stdout, session.Stderr = stdout, stderr

	env := map[string]string{"STARBOOK_IDEMPOTENCY_KEY": sc.Key}
	for k, v := range r.env {
		env[k] = v
	}
	if err := session.Start(withEnv(env, r.command.text)); err != nil {
		return nil, fail("start the command: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- session.Wait() }()
	var waitErr error
	select {
	case waitErr = <-done:
	case <-ctx.Done():
		// Stop the remote command: a signal (OpenSSH honours it from 7.9
		// on), then the connection's close, which ends it with its session.
		_ = session.Signal(ssh.SIGTERM)
		select {
		case <-done:
		case <-time.After(c.opts.StopGrace):
		}
		client.Close()
		c.opts.Guards.Commanded(guard, "error")
		return nil, fail("%s; the command was stopped", stopReason(ctx, r.timeout))
	}
	status := 0
	var exitErr *ssh.ExitError
	switch {
	case waitErr == nil:
	case errors.As(waitErr, &exitErr):
		status = exitErr.ExitStatus()
	default:
		c.opts.Guards.Commanded(guard, "error")
		return nil, fail("the command ended without an exit status: %v", waitErr)
	}
	c.opts.Guards.Commanded(guard, strconv.Itoa(status))
	if r.check && status != 0 {
		// Scrubbed before it is trimmed or cut: a cut could split a secret.
		tail := strings.TrimSpace(sbruntime.Scrub(th, stderr.String()))
		if len(tail) > 512 {
			tail = "..." + tail[len(tail)-512:]
		}
		msg := fmt.Sprintf("exit status %d", status)
		if tail != "" {
			msg += ": " + tail
		}
		return nil, fail("%s (check = False returns it instead)", msg)
	}
	result := starlark.NewDict(4)
	_ = result.SetKey(starlark.String("exit_status"), starlark.MakeInt(status))
	_ = result.SetKey(starlark.String("stdout"), starlark.String(stdout.String()))
	_ = result.SetKey(starlark.String("stderr"), starlark.String(stderr.String()))
	_ = result.SetKey(starlark.String("truncated"), starlark.Bool(stdout.truncated || stderr.truncated))
	return result, nil
}

// stopReason says why ctx ended: the step's timeout, or a cancel.
func stopReason(ctx context.Context, timeout time.Duration) string {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Sprintf("timed out after %s (timeout=)", timeout)
	}
	return "cancelled"
}

func unpackSSH(name string, args starlark.Tuple, kwargs []starlark.Tuple) (*sshRequest, error) {
	r := &sshRequest{target: sshTarget{port: 22}, timeout: defaultSSHTimeout, maxOutput: defaultSSHOutputBytes, check: true}
	var key, password, jump starlark.Value = starlark.None, starlark.None, starlark.None
	var timeout durationArg
	var env stringMapArg
	if err := starlark.UnpackArgs(name, args, kwargs, "host", &r.target.host, "command", &r.command,
		"user", &r.target.user, "key?", &key, "password?", &password, "port?", &r.target.port,
		"known_hosts", &r.knownHosts, "jump?", &jump, "timeout?", &timeout, "env?", &env,
		"max_output_bytes?", &r.maxOutput, "check?", &r.check); err != nil {
		return nil, err
	}
	if err := checkTarget(r.target); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	var err error
	if r.key, err = optionalSecret(key); err != nil {
		return nil, fmt.Errorf("%s: key: %w", name, err)
	}
	if r.password, err = optionalSecret(password); err != nil {
		return nil, fmt.Errorf("%s: password: %w", name, err)
	}
	if r.key == nil && r.password == nil {
		return nil, fmt.Errorf("%s: want key=secret(...) or password=secret(...)", name)
	}
	if jump != starlark.None {
		s, ok := starlark.AsString(jump)
		if !ok {
			return nil, fmt.Errorf("%s: jump: got %s, want \"user@host\" or \"user@host:port\"", name, jump.Type())
		}
		j, err := parseJump(s, r.target.user)
		if err != nil {
			return nil, fmt.Errorf("%s: jump: %w", name, err)
		}
		r.jump = &j
	}
	if timeout.set {
		if timeout.d == 0 {
			return nil, fmt.Errorf("%s: timeout must be positive", name)
		}
		r.timeout = timeout.d
	}
	if r.maxOutput <= 0 || r.maxOutput > maxSSHOutputBytes {
		return nil, fmt.Errorf("%s: max_output_bytes must be between 1 and %d, got %d", name, maxSSHOutputBytes, r.maxOutput)
	}
	for k := range env.values {
		if !envName.MatchString(k) {
			return nil, fmt.Errorf("%s: env: %q is not a variable name", name, k)
		}
	}
	r.env = env.values
	if strings.TrimSpace(r.command.text) == "" {
		return nil, fmt.Errorf("%s: command is empty", name)
	}
	return r, nil
}

// checkTarget refuses what no host is.
func checkTarget(t sshTarget) error {
	switch {
	case t.host == "" || strings.ContainsAny(t.host, " \t\n/@"):
		return fmt.Errorf("host %q: want a host name or address", t.host)
	case t.port < 1 || t.port > 65535:
		return fmt.Errorf("port %d: want 1 to 65535", t.port)
	case t.user == "" || strings.ContainsAny(t.user, " \t\n@:"):
		return fmt.Errorf("user %q: want a user name", t.user)
	}
	return nil
}

// parseJump reads "user@host" or "user@host:port" (user defaults to the
// command's).
func parseJump(s, user string) (sshTarget, error) {
	t := sshTarget{user: user, port: 22}
	if u, rest, ok := strings.Cut(s, "@"); ok {
		t.user, s = u, rest
	}
	t.host = s
	if h, p, err := net.SplitHostPort(s); err == nil {
		port, err := strconv.Atoi(p)
		if err != nil {
			return t, fmt.Errorf("%q: port %q is not a number", s, p)
		}
		t.host, t.port = h, port
	}
	return t, checkTarget(t)
}

func optionalSecret(v starlark.Value) (*sbruntime.Secret, error) {
	if v == starlark.None {
		return nil, nil
	}
	s, ok := v.(*sbruntime.Secret)
	if !ok {
		return nil, fmt.Errorf("got %s, want secret(...): a credential in a plain string would be stored and shown", v.Type())
	}
	return s, nil
}

// dial connects to r's host, through its jump host if it has one, each
// host's key checked against known_hosts.
func (c *sshClient) dial(ctx context.Context, r *sshRequest, auth []ssh.AuthMethod, hostKeys ssh.HostKeyCallback) (*ssh.Client, error) {
	config := func(t sshTarget) *ssh.ClientConfig {
		return &ssh.ClientConfig{User: t.user, Auth: auth, HostKeyCallback: hostKeys, Timeout: c.opts.DialTimeout}
	}
	d := net.Dialer{Timeout: c.opts.DialTimeout}
	first := r.target
	if r.jump != nil {
		first = *r.jump
	}
	conn, err := d.DialContext(ctx, "tcp", first.addr())
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Err != nil {
			err = op.Err // "connection refused", not the addresses again
		}
		return nil, fmt.Errorf("connect to %s: %w", first.addr(), err)
	}
	client, err := handshake(ctx, conn, first, config(first))
	if err != nil || r.jump == nil {
		return client, err
	}
	// Through the jump host (ProxyJump): a channel to the host, and a
	// handshake over it, the host's key checked as any.
	tunnel, err := client.DialContext(ctx, "tcp", r.target.addr())
	if err != nil {
		client.Close()
		return nil, fmt.Errorf("reach %s through %s: %w", r.target.addr(), first, err)
	}
	target, err := handshake(ctx, tunnel, r.target, config(r.target))
	if err != nil {
		client.Close()
		return nil, err
	}
	go func() { // the jump connection lives as long as the target's
		_ = target.Wait()
		client.Close()
	}()
	return target, nil
}

// handshake runs the SSH handshake over conn, bounded by ctx.
func handshake(ctx context.Context, conn net.Conn, t sshTarget, config *ssh.ClientConfig) (*ssh.Client, error) {
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	c, chans, reqs, err := ssh.NewClientConn(conn, t.addr(), config)
	if err != nil {
		conn.Close()
		return nil, handshakeError(t, err)
	}
	return ssh.NewClient(c, chans, reqs), nil
}

// handshakeError names what failed: the host's key, or the credentials.
func handshakeError(t sshTarget, err error) error {
	var keyErr *knownhosts.KeyError
	var unknown *unknownHostError
	switch {
	case errors.As(err, &unknown):
		return unknown
	case errors.As(err, &keyErr):
		return fmt.Errorf("host key mismatch for %s: known_hosts has %s for it; refused, nothing ran", t.addr(), describeKeys(keyErr.Want))
	case strings.Contains(err.Error(), "unable to authenticate"):
		return fmt.Errorf("authentication failed for user %s (the key or password was refused)", t.user)
	}
	return fmt.Errorf("handshake with %s: %w", t.addr(), err)
}

// unknownHostError is a host no known_hosts line names.
type unknownHostError struct {
	host string
	key  ssh.PublicKey
}

func (e *unknownHostError) Error() string {
	return fmt.Sprintf("host %s is not in known_hosts: its key is %s %s (as ssh-keyscan and ssh-keygen -lf print it); refused, nothing ran",
		e.host, e.key.Type(), ssh.FingerprintSHA256(e.key))
}

func describeKeys(keys []knownhosts.KnownKey) string {
	var out []string
	for _, k := range keys {
		out = append(out, fmt.Sprintf("%s %s (line %d)", k.Key.Type(), ssh.FingerprintSHA256(k.Key), k.Line))
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

// hostKeyCallback checks host keys against the known_hosts text: a host no
// line names is refused (unknownHostError), a key no line of its host has
// is a mismatch (knownhosts.KeyError). knownhosts reads files only: the
// text goes through a temporary one.
func hostKeyCallback(text string) (ssh.HostKeyCallback, error) {
	lines := 0
	for rest := []byte(text); len(rest) > 0; lines++ {
		var err error
		if _, _, _, _, rest, err = ssh.ParseKnownHosts(rest); err != nil {
			break
		}
	}
	if lines == 0 {
		return nil, errors.New("no line parses as a known_hosts line (host key-type base64-key), e.g. what ssh-keyscan prints")
	}
	f, err := os.CreateTemp("", "starbook-known-hosts-")
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	_, err = f.WriteString(text)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	check, err := knownhosts.New(f.Name())
	if err != nil {
		return nil, err
	}
	return func(host string, remote net.Addr, key ssh.PublicKey) error {
		err := check(host, remote, key)
		var keyErr *knownhosts.KeyError
		if errors.As(err, &keyErr) && len(keyErr.Want) == 0 {
			return &unknownHostError{host: host, key: key}
		}
		return err
	}, nil
}

// withEnv prefixes command with the exports of env, quoted for a POSIX
// shell (the remote user's shell runs the command; sshd's own SetEnv is
// refused by most servers' AcceptEnv).
func withEnv(env map[string]string, command string) string {
	names := make([]string, 0, len(env))
	for k := range env {
		names = append(names, k)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, k := range names {
		b.WriteString("export " + k + "=" + shellQuote(env[k]) + "; ")
	}
	return b.String() + command
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// cappedBuffer keeps the first max bytes written to it, and whether more
// came.
type cappedBuffer struct {
	mu        sync.Mutex
	buf       bytes.Buffer
	max       int
	truncated bool
}

func (c *cappedBuffer) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if room := c.max - c.buf.Len(); room < len(p) {
		c.truncated = true
		c.buf.Write(p[:max(room, 0)])
		return len(p), nil
	}
	c.buf.Write(p)
	return len(p), nil
}

func (c *cappedBuffer) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}
