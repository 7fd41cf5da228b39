package lsp_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	protocol "github.com/tliron/glsp/protocol_3_16"
)

// client is a minimal LSP client: JSON-RPC 2.0 with Content-Length framing
// over the pipes of a real `starbook lsp` process.
type client struct {
	t     *testing.T
	cmd   *exec.Cmd
	in    io.WriteCloser
	wmu   sync.Mutex
	mu    sync.Mutex
	next  int
	calls map[int]chan response
	diags chan protocol.PublishDiagnosticsParams
	done  chan struct{}
}

type response struct {
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

type message struct {
	ID     *json.RawMessage `json:"id"`
	Method string           `json:"method"`
	Params json.RawMessage  `json:"params"`
	response
}

// startServer starts the binary and a goroutine that reads what it sends.
func startServer(t *testing.T, bin string, env ...string) *client {
	t.Helper()
	cmd := exec.Command(bin, "lsp")
	cmd.Env = append(cmd.Environ(), env...)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &client{t: t, cmd: cmd, in: in, calls: map[int]chan response{}, diags: make(chan protocol.PublishDiagnosticsParams, 100), done: make(chan struct{})}
	go c.read(bufio.NewReader(out))
	t.Cleanup(func() {
		_ = in.Close()
		select {
		case <-c.done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
		}
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("server stderr:\n%s", stderr.String())
		}
	})
	return c
}

func (c *client) read(r *bufio.Reader) {
	defer close(c.done)
	for {
		length := -1
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			line = strings.TrimSpace(line)
			if line == "" {
				break
			}
			if v, ok := strings.CutPrefix(line, "Content-Length: "); ok {
				length, _ = strconv.Atoi(v)
			}
		}
		body := make([]byte, length)
		if _, err := io.ReadFull(r, body); err != nil {
			return
		}
		var m message
		if err := json.Unmarshal(body, &m); err != nil {
			c.t.Errorf("server sent bad JSON %q: %v", body, err)
			return
		}
		switch {
		case m.Method == "textDocument/publishDiagnostics":
			var p protocol.PublishDiagnosticsParams
			if err := json.Unmarshal(m.Params, &p); err != nil {
				c.t.Errorf("publishDiagnostics %s: %v", m.Params, err)
			}
			c.diags <- p
		case m.Method != "" && m.ID != nil: // a request of the server's: answer null
			c.send(map[string]any{"jsonrpc": "2.0", "id": m.ID, "result": nil})
		case m.Method == "" && m.ID != nil:
			id, _ := strconv.Atoi(string(*m.ID))
			c.mu.Lock()
			ch := c.calls[id]
			delete(c.calls, id)
			c.mu.Unlock()
			if ch != nil {
				ch <- m.response
			}
		}
	}
}

func (c *client) send(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		c.t.Fatal(err)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if _, err := fmt.Fprintf(c.in, "Content-Length: %d\r\n\r\n%s", len(b), b); err != nil {
		c.t.Errorf("write to server: %v", err)
	}
}

// call sends a request and decodes its result into result (when not nil).
func (c *client) call(method string, params, result any) error {
	c.mu.Lock()
	c.next++
	id := c.next
	ch := make(chan response, 1)
	c.calls[id] = ch
	c.mu.Unlock()
	c.send(map[string]any{"jsonrpc": "2.0", "id": id, "method": method, "params": params})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	select {
	case r := <-ch:
		if r.Error != nil {
			return fmt.Errorf("%s: %d %s", method, r.Error.Code, r.Error.Message)
		}
		if result != nil {
			if err := json.Unmarshal(r.Result, result); err != nil {
				return fmt.Errorf("%s: result %s: %v", method, r.Result, err)
			}
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s: no answer: %v", method, ctx.Err())
	case <-c.done:
		return fmt.Errorf("%s: the server closed its output", method)
	}
}

func (c *client) notify(method string, params any) {
	c.send(map[string]any{"jsonrpc": "2.0", "method": method, "params": params})
}

// diagnostics waits for the diagnostics of uri that ok accepts.
func (c *client) diagnostics(t *testing.T, uri string, ok func([]protocol.Diagnostic) bool) []protocol.Diagnostic {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var last []protocol.Diagnostic
	for {
		select {
		case p := <-c.diags:
			if p.URI != uri {
				continue
			}
			last = p.Diagnostics
			if ok(p.Diagnostics) {
				return p.Diagnostics
			}
		case <-ctx.Done():
			t.Fatalf("%s: no such diagnostics; last %+v", uri, last)
			return nil
		}
	}
}
