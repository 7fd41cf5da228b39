package runbooktest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"

	"go.starlark.net/starlark"

	sbruntime "github.com/starbook/starbook/runtime"
)

// Mocks stand in for the world during offline runs: step stubs, HTTP
// responses, approval decisions, signals, secrets and the virtual clock, and
// the record of every effect and step. One test (or dry run) has one Mocks;
// it is safe for the parallel items of a fan_out.
type Mocks struct {
	Clock *Clock
	// DryRun makes the world agreeable instead of strict: an HTTP request no
	// mock matches gets 200 {}, an approval without a decision is approved,
	// a signal that was not sent times out at once.
	DryRun bool
	// replay runs no step function at all: a replay only reads history.
	replay bool

	mu        sync.Mutex
	stubs     []*stepStub
	https     []*httpStub
	sshs      []*sshStub
	runbooks  []*runbookStub
	children  int
	decisions []*decision
	signals   map[string][]json.RawMessage
	secrets   map[string]string
	calls     []*Call
	steps     []*Step // the steps of finished runs, in run and position order
	unmatched []string
	slackTS   int
	uuids     int
	runs      int
}

// NewMocks returns mocks with nothing stubbed and the clock at Epoch.
func NewMocks() *Mocks {
	return &Mocks{Clock: NewClock(), signals: map[string][]json.RawMessage{}, secrets: map[string]string{}}
}

// Call is one effect an offline run made: an HTTP request or a Slack call.
type Call struct {
	Kind     string            `json:"kind"`               // http, slack.post, slack.update, ssh.run
	Position string            `json:"position,omitempty"` // the step it ran in
	Method   string            `json:"method,omitempty"`
	URL      string            `json:"url,omitempty"`
	Headers  map[string]string `json:"headers,omitempty"`
	JSON     json.RawMessage   `json:"json,omitempty"` // a JSON request body
	Body     string            `json:"body,omitempty"` // another request body
	Status   int               `json:"status,omitempty"`
	Error    string            `json:"error,omitempty"`
	Channel  string            `json:"channel,omitempty"`
	Text     string            `json:"text,omitempty"`
	TS       string            `json:"ts,omitempty"`
	Host     string            `json:"host,omitempty"`    // ssh.run's host, user@host
	Command  string            `json:"command,omitempty"` // ssh.run's command
	Exit     *int              `json:"exit_status,omitempty"`
	Runbook  string            `json:"runbook,omitempty"` // run_runbook's child runbook (its input in JSON)
	Mocked   bool              `json:"mocked"`            // false: a dry run's default answer
}

// Summary is the call on one line: "GET https://..." or "slack.post #ops".
func (c *Call) Summary() string {
	switch c.Kind {
	case "http":
		s := c.Method + " " + c.URL
		switch {
		case c.Error != "":
			s += " -> " + c.Error
		case c.Status != 0:
			s += fmt.Sprintf(" -> %d", c.Status)
		}
		return s
	case "run_runbook":
		s := "run_runbook " + c.Runbook
		if c.Error != "" {
			s += " -> " + c.Error
		}
		return s
	case "ssh.run":
		s := "ssh " + c.Host + ": " + oneLine(c.Command, 60)
		switch {
		case c.Error != "":
			s += " -> " + c.Error
		case c.Exit != nil:
			s += fmt.Sprintf(" -> exit %d", *c.Exit)
		}
		return s
	}
	return c.Kind + " " + c.Channel + " " + oneLine(c.Text, 60)
}

// stepStub replaces the target of call(), compensate() or fan_out().
type stepStub struct {
	name     string   // the step name it matches, or
	function *defSite // the def it matches (a function passed to mock.step)
	returns  starlark.Value
	raises   string
	sequence []starlark.Value
	impl     starlark.Callable
	n        int
}

func (s *stepStub) matches(fn starlark.Callable, name string) bool {
	if s.function != nil {
		f, ok := fn.(*starlark.Function)
		return ok && f.Name() == s.function.Name && f.Position().Filename() == s.function.File &&
			int(f.Position().Line) == s.function.Line
	}
	return s.name == name || s.name == fn.Name()
}

// next returns what the stub's n-th call answers: a value, or an error.
func (s *stepStub) next() (starlark.Value, starlark.Callable, error) {
	s.n++
	if s.impl != nil {
		return nil, s.impl, nil
	}
	if len(s.sequence) > 0 {
		v := s.sequence[min(s.n, len(s.sequence))-1]
		if e, ok := v.(*errorValue); ok {
			return nil, nil, fmt.Errorf("%s", e.msg)
		}
		return v, nil, nil
	}
	if s.raises != "" {
		return nil, nil, fmt.Errorf("%s", s.raises)
	}
	return s.returns, nil, nil
}

// defSite identifies a def across loads of its file: a test's load() and a
// run's are different function values of one definition.
type defSite struct {
	Name, File string
	Line       int
}

// httpStub answers the requests whose method and URL match.
type httpStub struct {
	method    string // upper case, "*" for any
	pattern   string
	re        *regexp.Regexp
	withQuery bool
	responses []*response
	n         int
}

func newHTTPStub(method, pattern string, responses []*response) *httpStub {
	re := "^" + strings.ReplaceAll(regexp.QuoteMeta(pattern), `\*`, ".*") + "$"
	return &httpStub{method: strings.ToUpper(method), pattern: pattern, re: regexp.MustCompile(re),
		withQuery: strings.Contains(pattern, "?"), responses: responses}
}

func (s *httpStub) matches(req *http.Request) bool {
	if s.method != "*" && s.method != req.Method {
		return false
	}
	u := *req.URL
	if !s.withQuery {
		u.RawQuery, u.ForceQuery = "", false
	}
	u.Fragment = ""
	return s.re.MatchString(u.String())
}

// response is one mocked HTTP answer.
type response struct {
	status int
	body   []byte
	header http.Header
	raises string
}

// decision is a queued answer to an approval.
type decision struct {
	kind    string   // approve, reject or timeout
	by      []string // who decides (approve, reject)
	comment string
	name    string // matches approvals whose message contains it; "" any
}

func (d *decision) matches(w *sbruntime.Wait, req *sbruntime.ApprovalRequest) bool {
	return d.name == "" || strings.Contains(req.Message, d.name) || strings.Contains(w.Name, d.name)
}

// stub registers a step stub; the latest matching one wins.
func (m *Mocks) stub(s *stepStub) {
	m.mu.Lock()
	m.stubs = append(m.stubs, s)
	m.mu.Unlock()
}

// stubFor returns the stub for a step target, or nil.
func (m *Mocks) stubFor(fn starlark.Callable, name string) *stepStub {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := len(m.stubs) - 1; i >= 0; i-- {
		if m.stubs[i].matches(fn, name) {
			return m.stubs[i]
		}
	}
	return nil
}

func (m *Mocks) addHTTP(s *httpStub) {
	m.mu.Lock()
	m.https = append(m.https, s)
	m.mu.Unlock()
}

// answer picks the response to req; nil when no mock matches.
func (m *Mocks) answer(req *http.Request) *response {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := len(m.https) - 1; i >= 0; i-- {
		s := m.https[i]
		if s.matches(req) {
			s.n++
			return s.responses[min(s.n, len(s.responses))-1]
		}
	}
	return nil
}

func (m *Mocks) record(c *Call) {
	m.mu.Lock()
	m.calls = append(m.calls, c)
	m.mu.Unlock()
}

func (m *Mocks) noteUnmatched(what string) {
	m.mu.Lock()
	if !slices.Contains(m.unmatched, what) {
		m.unmatched = append(m.unmatched, what)
	}
	m.mu.Unlock()
}

// takeUnmatched returns and forgets the effects no mock matched.
func (m *Mocks) takeUnmatched() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	u := m.unmatched
	m.unmatched = nil
	return u
}

func (m *Mocks) decide(d *decision) {
	m.mu.Lock()
	m.decisions = append(m.decisions, d)
	m.mu.Unlock()
}

// takeDecision removes and returns the first queued decision for the approval.
func (m *Mocks) takeDecision(w *sbruntime.Wait, req *sbruntime.ApprovalRequest) *decision {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, d := range m.decisions {
		if d.matches(w, req) {
			m.decisions = slices.Delete(m.decisions, i, i+1)
			return d
		}
	}
	return nil
}

// Signal queues a signal for the next wait_for_signal(name).
func (m *Mocks) Signal(name string, data json.RawMessage) {
	m.mu.Lock()
	m.signals[name] = append(m.signals[name], data)
	m.mu.Unlock()
}

// takeSignal removes and returns the oldest queued signal called name, as
// wait_for_signal returns it.
func (m *Mocks) takeSignal(name string) (json.RawMessage, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	q := m.signals[name]
	if len(q) == 0 {
		return nil, false
	}
	m.signals[name] = q[1:]
	return sbruntime.SignalResult(name, q[0], "test", m.Clock.Now()), true
}

// SetSecret makes secret(name) return value.
func (m *Mocks) SetSecret(name, value string) {
	m.mu.Lock()
	m.secrets[name] = value
	m.mu.Unlock()
}

// secret is secret()'s lookup: a set value, else a stand-in, so that no
// offline run needs real credentials.
func (m *Mocks) secret(name string) (string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if v, ok := m.secrets[name]; ok {
		return v, true
	}
	return "mock-secret-" + name, true
}

// Calls returns the effects made so far, in order.
func (m *Mocks) Calls() []*Call {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.calls)
}

func (m *Mocks) addSteps(steps []*Step) {
	m.mu.Lock()
	m.steps = append(m.steps, steps...)
	m.mu.Unlock()
}

func (m *Mocks) nextTS() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.slackTS++
	return fmt.Sprintf("%d.%06d", m.Clock.Now().Unix(), m.slackTS)
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-3]) + "..."
	}
	return s
}
