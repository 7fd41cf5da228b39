package runbooktest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"

	"github.com/starbook/starbook/builtins"
	sbruntime "github.com/starbook/starbook/runtime"
)

// trace keeps what the wrapped durable built-ins were called with, by
// position: history records only a hash of the arguments.
type trace struct {
	mu    sync.Mutex
	steps map[string]*traced
}

type traced struct {
	kind, name string
	args       json.RawMessage // a JSON list
	kwargs     json.RawMessage // a JSON object
	summary    string
}

func (t *trace) note(pos string, tr *traced) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.steps[pos]; !ok {
		t.steps[pos] = tr
	}
}

func (t *trace) get(pos string) *traced {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.steps[pos]
}

func (t *trace) visited() map[string]bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]bool, len(t.steps))
	for p := range t.steps {
		out[p] = true
	}
	return out
}

// predeclared returns the names a runbook sees offline: the real built-ins
// over a mocked world. http.* is the real module on a transport that asks
// the mocks (so arguments, raise_for_status and retries behave as on a
// node, with no backoff); slack.* and the targets of steps are stubbed; every
// durable built-in notes its arguments in tr.
func (m *Mocks) predeclared(tr *trace) starlark.StringDict {
	pre := builtins.New(builtins.Options{
		Secrets:  m.secret,
		Runbooks: m,
		HTTP: builtins.HTTPOptions{
			Client:        &http.Client{Transport: &transport{m: m}},
			RetryWait:     time.Nanosecond,
			MaxRetryAfter: time.Nanosecond,
		},
	})
	pre["slack"] = m.slackModule()
	pre["ssh"] = m.sshModule()
	pre["uuid"] = starlark.NewBuiltin("uuid", m.uuid)
	for _, name := range []string{"call", "compensate", "fan_out", "sleep", "wait_for_signal", "wait_for_approval", "now", "uuid"} {
		pre[name] = m.wrap(pre[name].(*starlark.Builtin), tr)
	}
	return pre
}

// wrap returns the durable built-in orig, with its step target stubbed if a
// mock says so and its arguments noted by position. It calls orig without a
// frame of its own, so positions and call sites are those of orig.
func (m *Mocks) wrap(orig *starlark.Builtin, tr *trace) *starlark.Builtin {
	name := orig.Name()
	return starlark.NewBuiltin(name, func(th *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		args = m.stubTarget(name, args, kwargs)
		before := sbruntime.LastPosition(th)
		v, err := orig.CallInternal(th, args, kwargs)
		if pos := sbruntime.LastPosition(th); pos != before && pos != "" {
			tr.note(pos, describeCall(name, args, kwargs))
		}
		return v, err
	})
}

// stubTarget replaces the function a call(), compensate() or fan_out() runs
// with its stub, keeping its name so the step is recorded as it would be.
func (m *Mocks) stubTarget(builtin string, args starlark.Tuple, kwargs []starlark.Tuple) starlark.Tuple {
	switch builtin {
	case "call", "compensate", "fan_out":
	default:
		return args
	}
	if len(args) == 0 {
		return args
	}
	fn, ok := args[0].(starlark.Callable)
	if !ok {
		return args
	}
	step := fn.Name()
	for _, kv := range kwargs {
		if s, ok := starlark.AsString(kv[1]); ok && string(kv[0].(starlark.String)) == "name" && builtin != "fan_out" {
			step = s
		}
	}
	stub := m.stubFor(fn, step)
	if m.replay && builtin != "fan_out" {
		stub = &stepStub{raises: "a replay runs no step"}
	}
	if stub == nil {
		return args
	}
	out := append(starlark.Tuple{m.stubBuiltin(fn.Name(), stub)}, args[1:]...)
	return out
}

func (m *Mocks) stubBuiltin(name string, stub *stepStub) *starlark.Builtin {
	return starlark.NewBuiltin(name, func(th *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		m.mu.Lock()
		v, impl, err := stub.next()
		m.mu.Unlock()
		if impl != nil {
			return starlark.Call(th, impl, args, kwargs)
		}
		if err != nil {
			return nil, err
		}
		if v == nil {
			return starlark.None, nil
		}
		return v, nil
	})
}

// describeCall notes a durable call's arguments as JSON and as one line.
func describeCall(builtin string, args starlark.Tuple, kwargs []starlark.Tuple) *traced {
	t := &traced{kind: builtin}
	var shown []string
	var rest starlark.Tuple
	var restKw []starlark.Tuple
	switch builtin {
	case "call", "compensate":
		if len(args) > 0 {
			if fn, ok := args[0].(starlark.Callable); ok {
				t.name = fn.Name()
			}
			rest = args[1:]
		}
		for _, kv := range kwargs {
			switch k := string(kv[0].(starlark.String)); k {
			case "name":
				if s, ok := starlark.AsString(kv[1]); ok {
					t.name = s
				}
			case "retry", "timeout":
			default:
				restKw = append(restKw, kv)
			}
		}
	case "fan_out":
		if len(args) > 0 {
			if fn, ok := args[0].(starlark.Callable); ok {
				t.name = fn.Name()
			}
		}
		if len(args) > 1 {
			if s, ok := args[1].(starlark.Sequence); ok {
				shown = append(shown, fmt.Sprintf("%d items", s.Len()))
			}
			rest = args[1:2]
		}
	default:
		rest, restKw = args, kwargs
	}
	list := make([]json.RawMessage, 0, len(rest))
	for _, a := range rest {
		list = append(list, jsonOf(a))
		if builtin != "fan_out" {
			shown = append(shown, short(a))
		}
	}
	obj := map[string]json.RawMessage{}
	for _, kv := range restKw {
		k := string(kv[0].(starlark.String))
		obj[k] = jsonOf(kv[1])
		shown = append(shown, k+"="+short(kv[1]))
	}
	t.args, _ = json.Marshal(list)
	t.kwargs, _ = json.Marshal(obj)
	t.summary = strings.Join(shown, ", ")
	return t
}

// jsonOf is v as JSON, or its repr as a JSON string when it is not JSON.
func jsonOf(v starlark.Value) json.RawMessage {
	if b, err := sbruntime.Encode(v); err == nil {
		return b
	}
	b, _ := json.Marshal(v.String())
	return b
}

func short(v starlark.Value) string {
	var s string
	if b, err := sbruntime.Encode(v); err == nil {
		s = string(b)
	} else {
		s = v.String()
	}
	return oneLine(s, 48)
}

// transport answers http.* requests from the mocks.
type transport struct{ m *Mocks }

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	c := &Call{Kind: "http", Method: req.Method, URL: req.URL.String(), Headers: map[string]string{}}
	if key := req.Header.Get("Idempotency-Key"); key != "" {
		if _, pos, ok := strings.Cut(key, "/"); ok {
			c.Position = pos
		}
	}
	for k := range req.Header {
		switch k {
		case "User-Agent", "Traceparent", "Tracestate":
			continue
		}
		c.Headers[strings.ToLower(k)] = req.Header.Get(k)
	}
	if req.Body != nil {
		body, _ := io.ReadAll(req.Body)
		req.Body.Close()
		if json.Valid(body) && strings.Contains(req.Header.Get("Content-Type"), "json") {
			c.JSON = body
		} else {
			c.Body = string(body)
		}
	}
	r := t.m.answer(req)
	if r == nil {
		if !t.m.DryRun {
			what := fmt.Sprintf("http %s %s", req.Method, c.URL)
			t.m.noteUnmatched(what)
			c.Error = "no mock"
			t.m.record(c)
			return nil, fmt.Errorf("no mock.http matches %s %s: add mock.http(%q, %q, ...) to the test",
				req.Method, c.URL, req.Method, c.URL)
		}
		r = &response{status: 200, body: []byte("{}"), header: http.Header{"Content-Type": {"application/json"}}}
	} else {
		c.Mocked = true
	}
	if r.raises != "" {
		c.Error = r.raises
		t.m.record(c)
		return nil, fmt.Errorf("%s", r.raises)
	}
	c.Status = r.status
	t.m.record(c)
	h := r.header.Clone()
	if h == nil {
		h = http.Header{}
	}
	return &http.Response{
		Status: fmt.Sprintf("%d %s", r.status, http.StatusText(r.status)), StatusCode: r.status,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Header: h,
		Body: io.NopCloser(bytes.NewReader(r.body)), ContentLength: int64(len(r.body)), Request: req,
	}, nil
}

// slackModule is slack.post and slack.update over the mocks: they keep the
// effect rule (only inside a step), record the call and answer
// {"channel", "ts"}.
func (m *Mocks) slackModule() *starlarkstruct.Module {
	effect := func(name string, withTS bool) *starlark.Builtin {
		return starlark.NewBuiltin(name, func(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			sc := sbruntime.InStep(th)
			if sc == nil {
				return nil, fmt.Errorf("%s is an effect: run it as a durable step, e.g. call(%s, \"#ops\", text = \"...\")", name, name)
			}
			var channel, ts, text string
			var blocks starlark.Value = starlark.None
			pairs := []any{"channel", &channel}
			if withTS {
				pairs = append(pairs, "ts", &ts)
			}
			pairs = append(pairs, "text?", &text, "blocks?", &blocks)
			if err := starlark.UnpackArgs(name, args, kwargs, pairs...); err != nil {
				return nil, err
			}
			if channel == "" {
				return nil, fmt.Errorf("%s: channel must not be empty", name)
			}
			if text == "" && blocks == starlark.None {
				return nil, fmt.Errorf("%s: give text= or blocks=", name)
			}
			if ts == "" {
				ts = m.nextTS()
			}
			m.record(&Call{Kind: name, Position: sc.Position, Channel: channel, Text: sbruntime.Scrub(th, text), TS: ts, Mocked: true})
			d := starlark.NewDict(2)
			_ = d.SetKey(starlark.String("channel"), starlark.String(channel))
			_ = d.SetKey(starlark.String("ts"), starlark.String(ts))
			return d, nil
		})
	}
	return &starlarkstruct.Module{Name: "slack", Members: starlark.StringDict{
		"post":   effect("slack.post", false),
		"update": effect("slack.update", true),
	}}
}

// uuid is uuid() with predictable values: the n-th uuid() of a test (or dry
// run) is 00000000-0000-4000-8000-00000000000n, so a test can send the
// signal a runbook waits for with the token it generated.
func (m *Mocks) uuid(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 0); err != nil {
		return nil, err
	}
	return sbruntime.Step(th, sbruntime.StepSpec{Kind: sbruntime.KindUUID}, func(*sbruntime.StepContext) (starlark.Value, error) {
		m.mu.Lock()
		m.uuids++
		n := m.uuids
		m.mu.Unlock()
		return starlark.String(fmt.Sprintf("00000000-0000-4000-8000-%012d", n)), nil
	})
}
