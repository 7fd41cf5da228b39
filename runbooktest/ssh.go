package runbooktest

import (
	"fmt"
	"strings"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"

	sbruntime "github.com/starbook/starbook/runtime"
)

// sshStub is one mock.ssh: the answer to the commands on a host.
type sshStub struct {
	host, command  string // "*" matches any; command matches as a substring
	exit           int
	stdout, stderr string
}

func (s *sshStub) matches(host, command string) bool {
	return (s.host == "*" || s.host == host) && (s.command == "*" || strings.Contains(command, s.command))
}

// mockSSH implements mock.ssh(host, command = "*", exit_status = 0,
// stdout = "", stderr = ""): what ssh.run answers for host ("*": any) and
// a command containing command. The latest matching mock answers.
func mockSSH(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	m, err := mocksOf(th, b.Name())
	if err != nil {
		return nil, err
	}
	s := &sshStub{command: "*"}
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "host", &s.host, "command?", &s.command,
		"exit_status?", &s.exit, "stdout?", &s.stdout, "stderr?", &s.stderr); err != nil {
		return nil, err
	}
	if s.host == "" || s.command == "" {
		return nil, fmt.Errorf("%s: host and command must not be empty (\"*\" matches any)", b.Name())
	}
	m.mu.Lock()
	m.sshs = append(m.sshs, s)
	m.mu.Unlock()
	return starlark.None, nil
}

// sshModule is ssh.run offline: it checks what the node's would refuse
// first (outside a step, no host, no credentials, no known_hosts), notes
// the call, and answers from mock.ssh; unmocked, a test fails the call and
// a dry run answers exit status 0 with no output.
func (m *Mocks) sshModule() *starlarkstruct.Module {
	run := func(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		sc := sbruntime.InStep(th)
		if sc == nil {
			return nil, fmt.Errorf("%s is an effect: run it as a durable step, e.g. call(%s, host, command, ...)", b.Name(), b.Name())
		}
		var host, user string
		var command, knownHosts starlark.Value
		var key, password, port, jump, timeout, env, maxOutput starlark.Value
		check := true
		if err := starlark.UnpackArgs(b.Name(), args, kwargs, "host", &host, "command", &command, "user", &user,
			"key?", &key, "password?", &password, "port?", &port, "known_hosts", &knownHosts, "jump?", &jump,
			"timeout?", &timeout, "env?", &env, "max_output_bytes?", &maxOutput, "check?", &check); err != nil {
			return nil, err
		}
		if (key == nil || key == starlark.None) && (password == nil || password == starlark.None) {
			return nil, fmt.Errorf("%s: want key=secret(...) or password=secret(...)", b.Name())
		}
		text, err := sbruntime.RevealString(command)
		if err != nil {
			return nil, fmt.Errorf("%s: command: %w", b.Name(), err)
		}
		c := &Call{Kind: "ssh.run", Position: sc.Position, Host: user + "@" + host, Command: sbruntime.Scrub(th, text)}
		var stub *sshStub
		m.mu.Lock()
		for i := len(m.sshs) - 1; i >= 0; i-- {
			if m.sshs[i].matches(host, text) {
				stub = m.sshs[i]
				break
			}
		}
		m.mu.Unlock()
		if stub == nil {
			if !m.DryRun {
				m.noteUnmatched(fmt.Sprintf("ssh %s@%s: %s", user, host, c.Command))
				c.Error = "no mock"
				m.record(c)
				return nil, fmt.Errorf("no mock.ssh matches %s@%s %q: add mock.ssh(%q, %q, ...) to the test", user, host, c.Command, host, c.Command)
			}
			stub = &sshStub{}
		} else {
			c.Mocked = true
		}
		exit := stub.exit
		c.Exit = &exit
		m.record(c)
		if check && stub.exit != 0 {
			return nil, fmt.Errorf("%s %s@%s:22: exit status %d: %s (check = False returns it instead)", b.Name(), user, host, stub.exit, strings.TrimSpace(stub.stderr))
		}
		result := starlark.NewDict(4)
		_ = result.SetKey(starlark.String("exit_status"), starlark.MakeInt(stub.exit))
		_ = result.SetKey(starlark.String("stdout"), starlark.String(stub.stdout))
		_ = result.SetKey(starlark.String("stderr"), starlark.String(stub.stderr))
		_ = result.SetKey(starlark.String("truncated"), starlark.False)
		return result, nil
	}
	return &starlarkstruct.Module{Name: "ssh", Members: starlark.StringDict{"run": starlark.NewBuiltin("ssh.run", run)}}
}
