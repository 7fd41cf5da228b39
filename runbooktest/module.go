package runbooktest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	sltime "go.starlark.net/lib/time"
	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"

	"github.com/starbook/starbook/builtins"
	sbruntime "github.com/starbook/starbook/runtime"
)

const mocksKey = "runbooktest.mocks"

// SetMocks makes the mock module of th's code act on m.
func SetMocks(th *starlark.Thread, m *Mocks) { th.SetLocal(mocksKey, m) }

func mocksOf(th *starlark.Thread, fn string) (*Mocks, error) {
	m, _ := th.Local(mocksKey).(*Mocks)
	if m == nil {
		return nil, fmt.Errorf("%s: only inside a test function (def test_...)", fn)
	}
	return m, nil
}

// MockModule is the mock module of test files and dry-run mock files.
var MockModule = &starlarkstruct.Module{
	Name: "mock",
	Members: starlark.StringDict{
		"step":     starlark.NewBuiltin("mock.step", mockStep),
		"http":     starlark.NewBuiltin("mock.http", mockHTTP),
		"ssh":      starlark.NewBuiltin("mock.ssh", mockSSH),
		"runbook":  starlark.NewBuiltin("mock.runbook", mockRunbook),
		"response": starlark.NewBuiltin("mock.response", mockResponse),
		"error":    starlark.NewBuiltin("mock.error", mockError),
		"approve":  starlark.NewBuiltin("mock.approve", mockDecision(sbruntime.DecisionApprove)),
		"reject":   starlark.NewBuiltin("mock.reject", mockDecision(sbruntime.DecisionReject)),
		"timeout":  starlark.NewBuiltin("mock.timeout", mockDecision(sbruntime.DecisionTimeout)),
		"signal":   starlark.NewBuiltin("mock.signal", mockSignal),
		"secret":   starlark.NewBuiltin("mock.secret", mockSecret),
		"now":      starlark.NewBuiltin("mock.now", mockNow),
		"advance":  starlark.NewBuiltin("mock.advance", mockAdvance),
		"calls":    starlark.NewBuiltin("mock.calls", mockCalls),
	},
}

// errorValue is mock.error(msg): in a sequence, a call that raises msg.
type errorValue struct{ msg string }

func (e *errorValue) String() string        { return fmt.Sprintf("mock.error(%q)", e.msg) }
func (e *errorValue) Type() string          { return "mock.error" }
func (e *errorValue) Freeze()               {}
func (e *errorValue) Truth() starlark.Bool  { return true }
func (e *errorValue) Hash() (uint32, error) { return starlark.String(e.msg).Hash() }

func mockError(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var msg string
	if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 1, &msg); err != nil {
		return nil, err
	}
	return &errorValue{msg: msg}, nil
}

// mockStep implements mock.step(target, returns=, raises=, sequence=, impl=).
func mockStep(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	m, err := mocksOf(th, b.Name())
	if err != nil {
		return nil, err
	}
	var (
		target   starlark.Value
		returns  starlark.Value
		raises   string
		sequence *starlark.List
		impl     starlark.Callable
	)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "target", &target, "returns?", &returns,
		"raises?", &raises, "sequence?", &sequence, "impl?", &impl); err != nil {
		return nil, err
	}
	s := &stepStub{returns: returns, raises: raises, impl: impl}
	switch t := target.(type) {
	case starlark.String:
		s.name = string(t)
	case *starlark.Function:
		s.function = &defSite{Name: t.Name(), File: t.Position().Filename(), Line: int(t.Position().Line)}
	case starlark.Callable:
		s.name = t.Name()
	default:
		return nil, fmt.Errorf("%s: target must be a step name or a function, got %s", b.Name(), target.Type())
	}
	given := 0
	for _, set := range []bool{returns != nil, raises != "", sequence != nil, impl != nil} {
		if set {
			given++
		}
	}
	if given > 1 {
		return nil, fmt.Errorf("%s: give one of returns=, raises=, sequence= or impl=", b.Name())
	}
	if sequence != nil {
		if sequence.Len() == 0 {
			return nil, fmt.Errorf("%s: sequence= is empty", b.Name())
		}
		for i := 0; i < sequence.Len(); i++ {
			s.sequence = append(s.sequence, sequence.Index(i))
		}
	}
	// Items of a fan_out call the stub from several threads at once.
	for _, v := range append([]starlark.Value{returns, impl}, s.sequence...) {
		if v != nil {
			v.Freeze()
		}
	}
	m.stub(s)
	return starlark.None, nil
}

// responseValue is mock.response(...): one answer of an HTTP mock's sequence.
type responseValue struct{ r *response }

func (r *responseValue) String() string        { return fmt.Sprintf("mock.response(status=%d)", r.r.status) }
func (r *responseValue) Type() string          { return "mock.response" }
func (r *responseValue) Freeze()               {}
func (r *responseValue) Truth() starlark.Bool  { return true }
func (r *responseValue) Hash() (uint32, error) { return 0, fmt.Errorf("unhashable: mock.response") }

// responseArgs are the arguments that describe an HTTP answer.
type responseArgs struct {
	status  int
	json    starlark.Value
	body    starlark.Value
	headers *starlark.Dict
	raises  string
}

func (a *responseArgs) pairs() []any {
	return []any{"status?", &a.status, "json?", &a.json, "body?", &a.body, "headers?", &a.headers, "raises?", &a.raises}
}

func (a *responseArgs) response(fn string) (*response, error) {
	r := &response{status: a.status, header: http.Header{}, raises: a.raises}
	if r.status == 0 {
		r.status = http.StatusOK
	}
	if r.status < 100 || r.status > 599 {
		return nil, fmt.Errorf("%s: status %d is not an HTTP status", fn, r.status)
	}
	if a.headers != nil {
		for _, kv := range a.headers.Items() {
			k, ok1 := starlark.AsString(kv[0])
			v, ok2 := starlark.AsString(kv[1])
			if !ok1 || !ok2 {
				return nil, fmt.Errorf("%s: headers= wants strings, got %s: %s", fn, kv[0].Type(), kv[1].Type())
			}
			r.header.Set(k, v)
		}
	}
	switch {
	case a.json != nil && a.body != nil:
		return nil, fmt.Errorf("%s: give json= or body=, not both", fn)
	case a.json != nil:
		data, err := sbruntime.Encode(a.json)
		if err != nil {
			return nil, fmt.Errorf("%s: json=: %w", fn, err)
		}
		r.body = data
		if r.header.Get("Content-Type") == "" {
			r.header.Set("Content-Type", "application/json")
		}
	case a.body != nil:
		s, ok := starlark.AsString(a.body)
		if !ok {
			if bs, isBytes := a.body.(starlark.Bytes); isBytes {
				s = string(bs)
			} else {
				return nil, fmt.Errorf("%s: body= wants a string, got %s", fn, a.body.Type())
			}
		}
		r.body = []byte(s)
	}
	return r, nil
}

func mockResponse(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var a responseArgs
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, a.pairs()...); err != nil {
		return nil, err
	}
	r, err := a.response(b.Name())
	if err != nil {
		return nil, err
	}
	return &responseValue{r: r}, nil
}

// sequenceItem reads one item of mock.http(sequence=[...]): a mock.response,
// a mock.error or a dict of mock.response's arguments.
func sequenceItem(fn string, i int, v starlark.Value) (*response, error) {
	switch x := v.(type) {
	case *responseValue:
		return x.r, nil
	case *errorValue:
		return &response{raises: x.msg}, nil
	case starlark.IterableMapping:
		var a responseArgs
		var kw []starlark.Tuple
		for _, kv := range x.Items() {
			kw = append(kw, starlark.Tuple{kv[0], kv[1]})
		}
		if err := starlark.UnpackArgs(fmt.Sprintf("%s: sequence[%d]", fn, i), nil, kw, a.pairs()...); err != nil {
			return nil, err
		}
		return a.response(fn)
	}
	return nil, fmt.Errorf("%s: sequence[%d] must be mock.response(...), mock.error(...) or a dict, got %s", fn, i, v.Type())
}

// mockHTTP implements mock.http(method, url, status=200, json=, body=,
// headers=, raises=, sequence=).
func mockHTTP(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	m, err := mocksOf(th, b.Name())
	if err != nil {
		return nil, err
	}
	var method, url string
	var a responseArgs
	var sequence *starlark.List
	pairs := append([]any{"method", &method, "url", &url}, a.pairs()...)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, append(pairs, "sequence?", &sequence)...); err != nil {
		return nil, err
	}
	if method == "" || url == "" {
		return nil, fmt.Errorf("%s: method and url must not be empty (\"*\" matches any method)", b.Name())
	}
	var responses []*response
	if sequence != nil {
		if sequence.Len() == 0 {
			return nil, fmt.Errorf("%s: sequence= is empty", b.Name())
		}
		for i := 0; i < sequence.Len(); i++ {
			r, err := sequenceItem(b.Name(), i, sequence.Index(i))
			if err != nil {
				return nil, err
			}
			responses = append(responses, r)
		}
	} else {
		r, err := a.response(b.Name())
		if err != nil {
			return nil, err
		}
		responses = []*response{r}
	}
	m.addHTTP(newHTTPStub(method, url, responses))
	return starlark.None, nil
}

// mockDecision implements mock.approve/reject(by=, comment=, name=) and
// mock.timeout(name=): the answer to the next approval (whose message
// contains name, if given).
func mockDecision(kind string) func(*starlark.Thread, *starlark.Builtin, starlark.Tuple, []starlark.Tuple) (starlark.Value, error) {
	return func(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		m, err := mocksOf(th, b.Name())
		if err != nil {
			return nil, err
		}
		d := &decision{kind: kind}
		if kind == sbruntime.DecisionTimeout {
			if err := starlark.UnpackArgs(b.Name(), args, kwargs, "name?", &d.name); err != nil {
				return nil, err
			}
			m.decide(d)
			return starlark.None, nil
		}
		var by starlark.Value = starlark.None
		if err := starlark.UnpackArgs(b.Name(), args, kwargs, "by?", &by, "comment?", &d.comment, "name?", &d.name); err != nil {
			return nil, err
		}
		switch x := by.(type) {
		case starlark.NoneType:
		case starlark.String:
			d.by = []string{string(x)}
		case *starlark.List:
			for i := 0; i < x.Len(); i++ {
				s, ok := starlark.AsString(x.Index(i))
				if !ok {
					return nil, fmt.Errorf("%s: by[%d] must be a string", b.Name(), i)
				}
				d.by = append(d.by, s)
			}
		default:
			return nil, fmt.Errorf("%s: by= must be a name or a list of names, got %s", b.Name(), by.Type())
		}
		m.decide(d)
		return starlark.None, nil
	}
}

// mockSignal implements mock.signal(name, data=None): delivered to the next
// wait_for_signal(name), even one the script reaches later.
func mockSignal(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	m, err := mocksOf(th, b.Name())
	if err != nil {
		return nil, err
	}
	var name string
	var data starlark.Value = starlark.None
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "name", &name, "data?", &data); err != nil {
		return nil, err
	}
	raw, err := sbruntime.Encode(data)
	if err != nil {
		return nil, fmt.Errorf("%s: data: %w", b.Name(), err)
	}
	m.Signal(name, raw)
	return starlark.None, nil
}

func mockSecret(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	m, err := mocksOf(th, b.Name())
	if err != nil {
		return nil, err
	}
	var name, value string
	if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 2, &name, &value); err != nil {
		return nil, err
	}
	m.SetSecret(name, value)
	return starlark.None, nil
}

func mockNow(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	m, err := mocksOf(th, b.Name())
	if err != nil {
		return nil, err
	}
	if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 0); err != nil {
		return nil, err
	}
	return sltime.Time(m.Clock.Now()), nil
}

func mockAdvance(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	m, err := mocksOf(th, b.Name())
	if err != nil {
		return nil, err
	}
	var v starlark.Value
	if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 1, &v); err != nil {
		return nil, err
	}
	d, err := builtins.ParseDuration(v)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	if d < 0 {
		return nil, fmt.Errorf("%s: time only moves forward, got %s", b.Name(), d)
	}
	m.Clock.Advance(d)
	return starlark.None, nil
}

// mockCalls implements mock.calls(target): "http" or "http.get" (or "GET")
// for HTTP requests, "slack" or "slack.post" for Slack calls, else the
// steps with that name (or run by that function), oldest first.
func mockCalls(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	m, err := mocksOf(th, b.Name())
	if err != nil {
		return nil, err
	}
	var target starlark.Value
	if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 1, &target); err != nil {
		return nil, err
	}
	name := ""
	switch t := target.(type) {
	case starlark.String:
		name = string(t)
	case starlark.Callable:
		name = t.Name()
	default:
		return nil, fmt.Errorf("%s: want a name or a function, got %s", b.Name(), target.Type())
	}
	var out []starlark.Value
	method := strings.ToUpper(strings.TrimPrefix(name, "http."))
	switch {
	case name == "http" || strings.HasPrefix(name, "http.") || isMethod(name):
		for _, c := range m.Calls() {
			if c.Kind == "http" && (name == "http" || c.Method == method) {
				out = append(out, callValue(c))
			}
		}
	case name == "run_runbook":
		for _, c := range m.Calls() {
			if c.Kind == "run_runbook" {
				out = append(out, callValue(c))
			}
		}
	case name == "ssh" || name == "ssh.run":
		for _, c := range m.Calls() {
			if c.Kind == "ssh.run" {
				out = append(out, callValue(c))
			}
		}
	case name == "slack" || strings.HasPrefix(name, "slack."):
		for _, c := range m.Calls() {
			if c.Kind == name || (name == "slack" && strings.HasPrefix(c.Kind, "slack.")) {
				out = append(out, callValue(c))
			}
		}
	default:
		m.mu.Lock()
		steps := append([]*Step(nil), m.steps...)
		m.mu.Unlock()
		for _, s := range steps {
			if s.Name == name && (s.Kind == sbruntime.KindCall || s.Kind == sbruntime.KindUndo || s.Kind == sbruntime.KindFanOut) {
				out = append(out, stepValue(s))
			}
		}
	}
	return starlark.NewList(out), nil
}

func isMethod(s string) bool {
	switch s {
	case "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS":
		return true
	}
	return false
}

// callValue is an effect as tests see it: a struct with kind, position,
// method, url, headers, json, body, status, error (HTTP) or channel, text,
// ts (Slack), and mocked.
func callValue(c *Call) starlark.Value {
	headers := starlark.NewDict(len(c.Headers))
	for k, v := range c.Headers {
		_ = headers.SetKey(starlark.String(k), starlark.String(v))
	}
	body, err := sbruntime.Decode(c.JSON)
	if err != nil {
		body = starlark.None
	}
	var exit starlark.Value = starlark.None
	if c.Exit != nil {
		exit = starlark.MakeInt(*c.Exit)
	}
	return starlarkstruct.FromStringDict(starlark.String("call"), starlark.StringDict{
		"kind": starlark.String(c.Kind), "position": starlark.String(c.Position),
		"method": starlark.String(c.Method), "url": starlark.String(c.URL), "headers": headers,
		"json": plain(body), "body": starlark.String(c.Body), "status": starlark.MakeInt(c.Status),
		"error": starlark.String(c.Error), "channel": starlark.String(c.Channel),
		"text": starlark.String(c.Text), "ts": starlark.String(c.TS), "mocked": starlark.Bool(c.Mocked),
		"host": starlark.String(c.Host), "command": starlark.String(c.Command), "exit_status": exit,
		"runbook": starlark.String(c.Runbook),
	})
}

// stepValue is a step as tests see it: a struct with position, kind, name,
// args, kwargs, result, error, attempts and where.
func stepValue(s *Step) starlark.Value {
	decode := func(raw json.RawMessage) starlark.Value {
		v, err := sbruntime.Decode(raw)
		if err != nil || v == nil {
			return starlark.None
		}
		return plain(v)
	}
	args := decode(s.Args)
	if args == starlark.None {
		args = starlark.NewList(nil)
	}
	kwargs := decode(s.Kwargs)
	if kwargs == starlark.None {
		kwargs = starlark.NewDict(0)
	}
	return starlarkstruct.FromStringDict(starlark.String("step"), starlark.StringDict{
		"position": starlark.String(s.Position),
		"kind":     starlark.String(s.Kind),
		"name":     starlark.String(s.Name),
		"args":     args,
		"kwargs":   kwargs,
		"result":   decode(s.Result),
		"error":    starlark.String(s.Error),
		"attempts": starlark.MakeInt(s.Attempts),
		"where":    starlark.String(s.Where),
	})
}

// plain turns records (JSON objects, readable as r.key) into dicts, deeply,
// so that a test can compare what a run returned with a dict literal.
func plain(v starlark.Value) starlark.Value {
	switch x := v.(type) {
	case *sbruntime.Record:
		d := starlark.NewDict(x.Len())
		for _, kv := range x.Items() {
			_ = d.SetKey(kv[0], plain(kv[1]))
		}
		return d
	case *starlark.Dict:
		d := starlark.NewDict(x.Len())
		for _, kv := range x.Items() {
			_ = d.SetKey(plain(kv[0]), plain(kv[1]))
		}
		return d
	case *starlark.List:
		elems := make([]starlark.Value, x.Len())
		for i := range elems {
			elems[i] = plain(x.Index(i))
		}
		return starlark.NewList(elems)
	case starlark.Tuple:
		elems := make(starlark.Tuple, len(x))
		for i := range x {
			elems[i] = plain(x[i])
		}
		return elems
	}
	return v
}
