package builtins

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"

	sbruntime "github.com/starbook/starbook/runtime"
)

// memJournal is an in-memory runtime.Journal.
type memJournal struct {
	mu     sync.Mutex
	events map[string]*sbruntime.Event
	waits  map[string]*sbruntime.Wait
	status []sbruntime.Status
}

var _ sbruntime.Journal = (*memJournal)(nil)

func (j *memJournal) Append(_ context.Context, ev *sbruntime.Event) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if _, ok := j.events[ev.Position]; ok {
		return sbruntime.ErrPositionTaken
	}
	j.events[ev.Position] = ev
	return nil
}

func (j *memJournal) Wait(_ context.Context, w *sbruntime.Wait) (*sbruntime.Event, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.waits[w.Position] = w
	return nil, nil
}

func (j *memJournal) SetStatus(_ context.Context, s sbruntime.Status) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.status = append(j.status, s)
	return nil
}

// httpRun is the outcome of one script run, with the raw Go errors the
// steps' functions returned (the history keeps only their text).
type httpRun struct {
	sbruntime.Outcome
	stepErrs []error
}

func (r httpRun) result(t *testing.T) map[string]any {
	t.Helper()
	if r.Status != sbruntime.StatusCompleted {
		t.Fatalf("status %q, error %q, err %v; want completed", r.Status, r.Error, r.Err)
	}
	var m map[string]any
	if err := json.Unmarshal(r.Result, &m); err != nil {
		t.Fatalf("result %s: %v", r.Result, err)
	}
	return m
}

func (r httpRun) failure(t *testing.T) string {
	t.Helper()
	if r.Status != sbruntime.StatusFailed {
		t.Fatalf("status %q, result %s, err %v; want failed", r.Status, r.Result, r.Err)
	}
	return r.Error
}

// stepErr is the last step's raw error.
func (r httpRun) stepErr(t *testing.T) error {
	t.Helper()
	if len(r.stepErrs) == 0 {
		t.Fatal("no step failed")
	}
	return r.stepErrs[len(r.stepErrs)-1]
}

const testExecution = "ex-1"

// runHTTP runs src's main(event) with the http module, a test call() and
// secret(name) reading secrets; event is {"url": url}.
func runHTTP(t *testing.T, opts HTTPOptions, secrets map[string]string, url, src string) httpRun {
	t.Helper()
	var mu sync.Mutex
	var stepErrs []error
	call := starlark.NewBuiltin("call", func(th *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		if len(args) == 0 {
			return nil, errors.New("call: missing the function")
		}
		fn, ok := args[0].(starlark.Callable)
		if !ok {
			return nil, errors.New("call: first argument must be callable")
		}
		spec := sbruntime.StepSpec{Kind: sbruntime.KindCall, Name: fn.Name(), Args: args[1:], Kwargs: kwargs}
		return sbruntime.Step(th, spec, func(sc *sbruntime.StepContext) (starlark.Value, error) {
			sth, stop := sc.Thread(sc.Ctx, "t")
			defer stop()
			v, err := starlark.Call(sth, fn, args[1:], kwargs)
			if err != nil {
				mu.Lock()
				stepErrs = append(stepErrs, err)
				mu.Unlock()
			}
			return v, err
		})
	})
	secret := starlark.NewBuiltin("secret", func(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		var name string
		if err := starlark.UnpackArgs(b.Name(), args, kwargs, "name", &name); err != nil {
			return nil, err
		}
		return sbruntime.NewSecret(th, name, secrets[name]), nil
	})
	predeclared := starlark.StringDict{
		"http":   NewHTTPModule(opts),
		"call":   call,
		"secret": secret,
		"struct": starlark.NewBuiltin("struct", starlarkstruct.Make),
	}
	prog, err := sbruntime.Compile(&sbruntime.Bundle{Name: "t", Main: "t.star",
		Files: map[string]string{"t.star": src}}, predeclared)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	input, _ := json.Marshal(map[string]string{"url": url})
	journal := &memJournal{events: map[string]*sbruntime.Event{}, waits: map[string]*sbruntime.Wait{}}
	// A safety net against a hung test, not a timing assertion.
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	out := (&sbruntime.Engine{Builtins: predeclared}).Execute(ctx, prog, &sbruntime.Run{
		Execution: &sbruntime.Execution{ID: testExecution, Runbook: "t", Input: input},
		Journal:   journal,
	})
	mu.Lock()
	defer mu.Unlock()
	return httpRun{Outcome: out, stepErrs: stepErrs}
}

// fastRetries are options under which retries do not wait.
var fastRetries = HTTPOptions{RetryWait: time.Millisecond, MaxRetryAfter: time.Millisecond}

// recorder is a test server that answers from a list of responses, one per
// request (the last one repeats), and records what it received.
type recorder struct {
	mu        sync.Mutex
	responses []response
	requests  []recorded
}

type response struct {
	status  int
	headers map[string]string
	body    string
}

type recorded struct {
	method string
	query  string
	header http.Header
	body   string
}

func newRecorder(t *testing.T, responses ...response) (*recorder, *httptest.Server) {
	rec := &recorder{responses: responses}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rec.mu.Lock()
		rec.requests = append(rec.requests, recorded{r.Method, r.URL.RawQuery, r.Header.Clone(), string(body)})
		resp := response{status: http.StatusOK}
		if len(rec.responses) > 0 {
			resp = rec.responses[min(len(rec.requests), len(rec.responses))-1]
		}
		rec.mu.Unlock()
		for k, v := range resp.headers {
			w.Header().Set(k, v)
		}
		w.WriteHeader(resp.status)
		io.WriteString(w, resp.body)
	}))
	t.Cleanup(srv.Close)
	return rec, srv
}

func (r *recorder) received() []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recorded(nil), r.requests...)
}

func TestHTTPResultShape(t *testing.T) {
	tests := []struct {
		name        string
		contentType string
		body        string
		wantJSON    any
	}{
		{"json object", "application/json", `{"a": [1, 2.5, "x"], "b": null}`,
			map[string]any{"a": []any{1.0, 2.5, "x"}, "b": nil}},
		{"json with charset", "application/json; charset=utf-8", `[1]`, []any{1.0}},
		{"problem+json", "application/problem+json", `{"title": "t"}`, map[string]any{"title": "t"}},
		{"invalid json", "application/json", `{"a":`, nil},
		{"trailing data", "application/json", `1 2`, nil},
		{"text", "text/plain", `{"a": 1}`, nil},
		{"no content type", "", ``, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, srv := newRecorder(t, response{status: http.StatusOK, body: tt.body,
				headers: map[string]string{"Content-Type": tt.contentType, "X-Request-ID": "r1"}})
			m := runHTTP(t, HTTPOptions{}, nil, srv.URL, `
def main(event):
    return call(http.get, event.url + "/shape")
`).result(t)
			if m["status"] != 200.0 || m["body"] != tt.body {
				t.Errorf("status %v body %q, want 200 %q", m["status"], m["body"], tt.body)
			}
			headers, _ := m["headers"].(map[string]any)
			if headers["x-request-id"] != "r1" {
				t.Errorf("headers %v: want lowercased x-request-id", headers)
			}
			got, _ := json.Marshal(m["json"])
			want, _ := json.Marshal(tt.wantJSON)
			if string(got) != string(want) {
				t.Errorf("json = %s, want %s", got, want)
			}
		})
	}
}

func TestHTTPHeadersJoined(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("Link", "<a>")
		w.Header().Add("Link", "<b>")
	}))
	defer srv.Close()
	m := runHTTP(t, HTTPOptions{}, nil, srv.URL, `
def main(event):
    r = call(http.get, event.url)
    return {"link": r.headers["link"], "json": r.json}
`).result(t)
	if m["link"] != "<a>, <b>" || m["json"] != nil {
		t.Errorf("got %v, want link \"<a>, <b>\" and json None", m)
	}
}

func TestHTTPIdempotencyKey(t *testing.T) {
	rec, srv := newRecorder(t)
	runHTTP(t, HTTPOptions{}, nil, srv.URL, `
def main(event):
    call(http.get, event.url)
    call(http.post, event.url, body="x")
    call(http.request, "put", event.url, headers={"idempotency-key": "mine", "User-Agent": "me"})
`).result(t)
	reqs := rec.received()
	want := []struct{ method, key, agent string }{
		{"GET", testExecution + "/1", "starbook"},
		{"POST", testExecution + "/2", "starbook"},
		{"PUT", "mine", "me"},
	}
	if len(reqs) != len(want) {
		t.Fatalf("%d requests, want %d", len(reqs), len(want))
	}
	for i, w := range want {
		r := reqs[i]
		if r.method != w.method || r.header.Get("Idempotency-Key") != w.key || r.header.Get("User-Agent") != w.agent {
			t.Errorf("request %d: %s key %q agent %q, want %s %q %q", i, r.method,
				r.header.Get("Idempotency-Key"), r.header.Get("User-Agent"), w.method, w.key, w.agent)
		}
	}
}

func TestHTTPRetries(t *testing.T) {
	unavailable := response{status: http.StatusServiceUnavailable, headers: map[string]string{"Retry-After": "0"}}
	ok := response{status: http.StatusOK, body: "done"}
	tests := []struct {
		name      string
		opts      HTTPOptions
		call      string
		responses []response
		attempts  int
		wantErr   string // "" for success
	}{
		{"GET 503 then 200", HTTPOptions{}, `call(http.get, event.url)`,
			[]response{unavailable, ok}, 2, ""},
		{"POST 503 then 200", HTTPOptions{}, `call(http.post, event.url, json={"n": 1})`,
			[]response{unavailable, ok}, 2, ""},
		{"Retry-After 3600 capped", HTTPOptions{MaxRetryAfter: time.Millisecond}, `call(http.delete, event.url)`,
			[]response{{status: http.StatusTooManyRequests, headers: map[string]string{"Retry-After": "3600"}}, ok}, 2, ""},
		{"500 until retries run out", fastRetries, `call(http.put, event.url, body="b")`,
			[]response{{status: http.StatusInternalServerError, body: "boom"}}, 3,
			"PUT " + "URL" + ": 500 Internal Server Error (after 3 attempts): boom"},
		{"retries from options", HTTPOptions{Retries: 1, RetryWait: time.Millisecond}, `call(http.get, event.url)`,
			[]response{{status: http.StatusBadGateway}}, 2, "502 Bad Gateway (after 2 attempts)"},
		{"retries=0", HTTPOptions{}, `call(http.get, event.url, retries=0)`,
			[]response{unavailable, ok}, 1, "503 Service Unavailable"},
		{"501 not retried", HTTPOptions{}, `call(http.get, event.url)`,
			[]response{{status: http.StatusNotImplemented}, ok}, 1, "501 Not Implemented"},
		{"404 not retried", HTTPOptions{}, `call(http.get, event.url)`,
			[]response{{status: http.StatusNotFound}, ok}, 1, "404 Not Found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, srv := newRecorder(t, tt.responses...)
			run := runHTTP(t, tt.opts, nil, srv.URL, "def main(event):\n    return "+tt.call+"\n")
			reqs := rec.received()
			if len(reqs) != tt.attempts {
				t.Fatalf("%d requests, want %d", len(reqs), tt.attempts)
			}
			for i, r := range reqs {
				if r.header.Get("Idempotency-Key") != testExecution+"/1" || r.body != reqs[0].body {
					t.Errorf("attempt %d: key %q body %q, want the first attempt's %q %q",
						i, r.header.Get("Idempotency-Key"), r.body, testExecution+"/1", reqs[0].body)
				}
			}
			if tt.wantErr == "" {
				if m := run.result(t); m["status"] != 200.0 || m["body"] != "done" {
					t.Errorf("result %v, want status 200 body done", m)
				}
				return
			}
			want := strings.ReplaceAll(tt.wantErr, "URL", srv.URL)
			if msg := run.failure(t); !strings.Contains(msg, want) || strings.Contains(msg, "giving up") {
				t.Errorf("error %q, want it to contain %q", msg, want)
			}
			var he *HTTPError
			if !errors.As(run.stepErr(t), &he) || he.Attempts != tt.attempts {
				t.Errorf("step error %#v, want an *HTTPError after %d attempts", run.stepErr(t), tt.attempts)
			}
		})
	}
}

func TestHTTPRetryStopsBeforeDeadline(t *testing.T) {
	// A Retry-After longer than the time left is not waited out: the caller
	// gets the response and its hint instead of a timeout.
	rec, srv := newRecorder(t, response{status: http.StatusServiceUnavailable,
		headers: map[string]string{"Retry-After": "120"}})
	run := runHTTP(t, HTTPOptions{MaxRetryAfter: time.Hour}, nil, srv.URL, `
def main(event):
    return call(http.get, event.url, timeout="1m")
`)
	if n := len(rec.received()); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
	var he *HTTPError
	if !errors.As(run.stepErr(t), &he) || he.Status != 503 || he.RetryAfterHint() != 120*time.Second {
		t.Errorf("step error %v, want a 503 *HTTPError hinting 2m0s", run.stepErr(t))
	}
}

func TestHTTPRaiseForStatus(t *testing.T) {
	const token = "tok-3141592653"
	_, srv := newRecorder(t, response{status: http.StatusServiceUnavailable,
		headers: map[string]string{"Retry-After": "7"},
		body:    "upstream rejected token " + token + "\n" + strings.Repeat("x", 1000)})
	u := strings.Replace(srv.URL, "http://", "http://user:hunter22@", 1) + "/deploy?sig=qwerty"
	run := runHTTP(t, HTTPOptions{}, map[string]string{"token": token}, u, `
def main(event):
    return call(http.post, event.url, headers={"Authorization": "Bearer " + secret("token")}, retries=0)
`)
	msg := run.failure(t)
	for _, leak := range []string{token, "hunter22", "user:", "qwerty", "sig="} {
		if strings.Contains(msg, leak) {
			t.Errorf("error %q leaks %q", msg, leak)
		}
	}
	wantPrefix := "POST " + srv.URL + "/deploy: 503 Service Unavailable: upstream rejected token <secret token> xxx"
	if !strings.Contains(msg, wantPrefix) {
		t.Errorf("error %q, want %q", msg, wantPrefix)
	}
	var he *HTTPError
	if !errors.As(run.stepErr(t), &he) {
		t.Fatalf("step error %T, want *HTTPError", run.stepErr(t))
	}
	if he.Status != 503 || he.RetryAfterHint() != 7*time.Second || he.URL != srv.URL+"/deploy" {
		t.Errorf("got status %d hint %s url %s, want 503 7s %s/deploy", he.Status, he.RetryAfterHint(), he.URL, srv.URL)
	}
	if len(he.Body) != 512 || strings.Contains(he.Body, token) || !strings.Contains(he.Body, "<secret token>") {
		t.Errorf("body %q: want 512 bytes, scrubbed", he.Body)
	}
	if got := len(he.Error()) - len(strings.SplitN(he.Error(), "Unavailable: ", 2)[0]+"Unavailable: "); got != 200 {
		t.Errorf("error shows %d bytes of body, want 200", got)
	}

	t.Run("raise_for_status=False", func(t *testing.T) {
		m := runHTTP(t, HTTPOptions{}, nil, srv.URL, `
def main(event):
    r = call(http.get, event.url, raise_for_status=False, retries=0)
    return {"status": r.status}
`).result(t)
		if m["status"] != 503.0 {
			t.Errorf("status %v, want 503", m["status"])
		}
	})
}

func TestHTTPSendsSecrets(t *testing.T) {
	const token = "s3cr3t-value"
	rec, srv := newRecorder(t, response{status: http.StatusOK,
		headers: map[string]string{"Content-Type": "application/json"}, body: `{"echo": "` + token + `"}`})
	run := runHTTP(t, HTTPOptions{}, map[string]string{"token": token}, srv.URL, `
def main(event):
    tok = secret("token")
    payload = {"token": tok, "n": 1, "items": [1.5, "a", None, True], "s": struct(k = tok), "t": ("x",)}
    call(http.post, event.url, json=payload, headers={"Authorization": "Bearer " + tok},
         params={"key": tok, "page": 2, "tag": ["a", "b"]})
    call(http.put, event.url + "?keep=1", body=tok, params={"add": "2"})
    return call(http.get, event.url)
`)
	if m := run.result(t); strings.Contains(string(run.Result), token) || m["json"].(map[string]any)["echo"] != "<secret token>" {
		t.Errorf("result %s holds the secret's value", run.Result)
	}
	reqs := rec.received()
	if len(reqs) != 3 {
		t.Fatalf("%d requests, want 3", len(reqs))
	}
	post := reqs[0]
	var body map[string]any
	if err := json.Unmarshal([]byte(post.body), &body); err != nil {
		t.Fatalf("body %q: %v", post.body, err)
	}
	wantBody := `{"items":[1.5,"a",null,true],"n":1,"s":{"k":"` + token + `"},"t":["x"],"token":"` + token + `"}`
	if post.body != wantBody {
		t.Errorf("json body %s, want %s", post.body, wantBody)
	}
	if got := post.header.Get("Authorization"); got != "Bearer "+token {
		t.Errorf("Authorization %q, want the secret's value", got)
	}
	if got := post.header.Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type %q, want application/json", got)
	}
	if post.query != "key="+token+"&page=2&tag=a&tag=b" {
		t.Errorf("query %q", post.query)
	}
	if put := reqs[1]; put.body != token || put.query != "add=2&keep=1" {
		t.Errorf("put body %q query %q, want the secret's value and add=2&keep=1", put.body, put.query)
	}
}

func TestHTTPOutsideStep(t *testing.T) {
	tests := []struct{ call, want string }{
		{`http.get(event.url)`, "http.get is an effect: run it as a durable step, e.g. call(http.get, url)"},
		{`http.post(event.url, json={})`, "http.post is an effect: run it as a durable step, e.g. call(http.post, url)"},
		{`http.request("GET", event.url)`, "http.request is an effect: run it as a durable step, e.g. call(http.request, method, url)"},
	}
	for _, tt := range tests {
		t.Run(tt.call, func(t *testing.T) {
			rec, srv := newRecorder(t)
			msg := runHTTP(t, HTTPOptions{}, nil, srv.URL, "def main(event):\n    return "+tt.call+"\n").failure(t)
			if !strings.Contains(msg, tt.want) {
				t.Errorf("error %q, want %q", msg, tt.want)
			}
			if n := len(rec.received()); n != 0 {
				t.Errorf("%d requests sent, want none", n)
			}
		})
	}
	t.Run("bare thread", func(t *testing.T) {
		_, err := starlark.Call(&starlark.Thread{}, NewHTTPModule(HTTPOptions{}).Members["delete"], starlark.Tuple{starlark.String("http://x")}, nil)
		if err == nil || !strings.Contains(err.Error(), "call(http.delete, url)") {
			t.Errorf("error %v, want the effect message", err)
		}
	})
}

func TestHTTPBodyLimit(t *testing.T) {
	big := strings.Repeat("a", 2048)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/chunked" {
			w.(http.Flusher).Flush() // no Content-Length: the cap applies while reading
		} else {
			w.Header().Set("Content-Length", strconv.Itoa(len(big)))
		}
		io.WriteString(w, big)
	}))
	defer srv.Close()
	for _, path := range []string{"/sized", "/chunked"} {
		t.Run(path, func(t *testing.T) {
			run := runHTTP(t, HTTPOptions{MaxBodyBytes: 1024}, nil, srv.URL+path, `
def main(event):
    return call(http.get, event.url)
`)
			want := "GET " + srv.URL + path + ": response body is over the 1 KiB limit"
			if msg := run.failure(t); !strings.Contains(msg, want) {
				t.Errorf("error %q, want %q", msg, want)
			}
			var le *sbruntime.LimitError
			if !errors.As(run.stepErr(t), &le) {
				t.Errorf("step error %T, want *runtime.LimitError", run.stepErr(t))
			}
		})
	}
	t.Run("at the limit", func(t *testing.T) {
		m := runHTTP(t, HTTPOptions{MaxBodyBytes: 2048}, nil, srv.URL+"/chunked", `
def main(event):
    return {"n": len(call(http.get, event.url).body)}
`).result(t)
		if m["n"] != 2048.0 {
			t.Errorf("body length %v, want 2048", m["n"])
		}
	})
}

func TestHTTPTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)
	tests := []struct{ timeout, want string }{
		{`"50ms"`, "timed out after 50ms"},
		{`0.05`, "timed out after 50ms"},
	}
	for _, tt := range tests {
		t.Run(tt.timeout, func(t *testing.T) {
			run := runHTTP(t, HTTPOptions{}, nil, srv.URL+"/slow?x=1", `
def main(event):
    return call(http.get, event.url, timeout=`+tt.timeout+`)
`)
			want := "GET " + srv.URL + "/slow: " + tt.want
			if msg := run.failure(t); !strings.Contains(msg, want) || strings.Contains(msg, "x=1") {
				t.Errorf("error %q, want %q", msg, want)
			}
			if !errors.Is(run.stepErr(t), context.DeadlineExceeded) {
				t.Errorf("step error %v does not match context.DeadlineExceeded", run.stepErr(t))
			}
		})
	}
}

func TestHTTPConnectionRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + l.Addr().String() + "/x"
	l.Close()
	tests := []struct {
		call, want string
	}{
		{`call(http.get, event.url, retries=0)`, "GET " + url + ": connection refused"},
		{`call(http.post, event.url, retries=2)`, "POST " + url + ": connection refused (after 3 attempts)"},
	}
	for _, tt := range tests {
		t.Run(tt.call, func(t *testing.T) {
			msg := runHTTP(t, fastRetries, nil, url, "def main(event):\n    return "+tt.call+"\n").failure(t)
			if !strings.Contains(msg, tt.want) || strings.Contains(msg, "giving up") {
				t.Errorf("error %q, want %q", msg, tt.want)
			}
		})
	}
}

func TestHTTPBadArguments(t *testing.T) {
	_, srv := newRecorder(t)
	tests := []struct{ call, want string }{
		{`call(http.get)`, "http.get: missing argument for url"},
		{`call(http.get, 1)`, "http.get: for parameter url: got int, want string or secret"},
		{`call(http.get, "ftp://host/x?k=v")`, "http.get: invalid URL ftp://host/x: want http:// or https://"},
		{`call(http.get, event.url, retries=-1)`, "retries must be between 0 and 10"},
		{`call(http.get, event.url, timeout="soon")`, `invalid duration "soon"`},
		{`call(http.get, event.url, timeout=0)`, "timeout must be positive"},
		{`call(http.post, event.url, json={}, body="x")`, "pass json= or body=, not both"},
		{`call(http.post, event.url, json={1: 2})`, `json=: json: dict key 1 is a int`},
		{`call(http.post, event.url, json={"f": len})`, `json=: json["f"]: a builtin_function_or_method cannot be sent`},
		{`call(http.post, event.url, json=float("nan"))`, "cannot be sent as JSON"},
		{`call(http.get, event.url, headers={"a": 1})`, `for parameter "headers": ["a"]: got int, want string or secret`},
		{`call(http.get, event.url, headers=["a"])`, `for parameter "headers": got list, want dict`},
		{`call(http.get, event.url, params={"a": {}})`, `for parameter "params": ["a"]: got dict`},
		{`call(http.get, event.url, body=1)`, `for parameter "body": got int, want string, bytes or secret`},
		{`call(http.get, event.url, verify=False)`, "unexpected keyword argument"},
		{`call(http.request, "GE T", event.url)`, `http.request: invalid method "GE T"`},
	}
	for _, tt := range tests {
		t.Run(tt.call, func(t *testing.T) {
			msg := runHTTP(t, HTTPOptions{}, nil, srv.URL, "def main(event):\n    return "+tt.call+"\n").failure(t)
			if !strings.Contains(msg, tt.want) {
				t.Errorf("error %q, want %q", msg, tt.want)
			}
		})
	}
}

func TestHTTPBackoff(t *testing.T) {
	c := &httpClient{opts: HTTPOptions{RetryWait: time.Second, MaxRetryAfter: 5 * time.Second}.withDefaults()}
	withRetryAfter := func(status int, v string) *http.Response {
		return &http.Response{StatusCode: status, Header: http.Header{"Retry-After": {v}}}
	}
	tests := []struct {
		name    string
		attempt int
		resp    *http.Response
		want    time.Duration
	}{
		{"connection error", 0, nil, time.Second},
		{"doubles", 2, nil, 4 * time.Second},
		{"capped", 10, nil, 5 * time.Second},
		{"503 Retry-After", 0, withRetryAfter(503, "3"), 3 * time.Second},
		{"429 Retry-After capped", 0, withRetryAfter(429, "3600"), 5 * time.Second},
		{"429 Retry-After date in the past", 3, withRetryAfter(429, "Mon, 02 Jan 2006 15:04:05 GMT"), 0},
		{"500 ignores Retry-After", 1, withRetryAfter(500, "0"), 2 * time.Second},
		{"bad Retry-After", 0, withRetryAfter(503, "soon"), time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := c.backoff(tt.attempt, tt.resp); got != tt.want {
				t.Errorf("backoff = %s, want %s", got, tt.want)
			}
		})
	}
}
