package builtins

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/go-cleanhttp"
	"github.com/hashicorp/go-retryablehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"

	"github.com/starbook/starbook/downstream"
	sbruntime "github.com/starbook/starbook/runtime"
)

// HTTPOptions configure the http module. Zero fields take the defaults.
type HTTPOptions struct {
	// Client is the base client whose transport requests use; a pooled client
	// without a timeout when nil. Its Timeout, if any, bounds each attempt.
	Client *http.Client
	// MaxRetryAfter caps the wait before a retry, whether a server asked for
	// it with Retry-After or it comes from backoff. Default 30s.
	MaxRetryAfter time.Duration
	// MaxBodyBytes is the largest response body read. Default 8 MiB.
	MaxBodyBytes int64
	// DefaultTimeout bounds a request, retries included, unless the script
	// passes timeout=. Default 30s.
	DefaultTimeout time.Duration
	// Retries is how many times a request is retried after a connection
	// error, a 429 or a 5xx other than 501, unless the script passes
	// retries=. Default 2; negative disables retries.
	Retries int
	// RetryWait is the backoff before the first retry when the server gives
	// no Retry-After; it doubles on each retry up to MaxRetryAfter. Default 1s.
	RetryWait time.Duration
	// Guards protect the hosts that have a limit (http_limit, serve
	// --http-limit): rate, concurrency, retry budget and circuit breaker.
	// A request to any other host costs one map lookup. Nil guards nothing.
	Guards *downstream.Guards
}

func (o HTTPOptions) withDefaults() HTTPOptions {
	if o.Client == nil {
		o.Client = cleanhttp.DefaultPooledClient()
	}
	if o.MaxRetryAfter <= 0 {
		o.MaxRetryAfter = 30 * time.Second
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = 8 << 20
	}
	if o.DefaultTimeout <= 0 {
		o.DefaultTimeout = 30 * time.Second
	}
	switch {
	case o.Retries == 0:
		o.Retries = 2
	case o.Retries < 0:
		o.Retries = 0
	}
	if o.RetryWait <= 0 {
		o.RetryWait = time.Second
	}
	return o
}

// maxRetries bounds retries= so a script cannot keep a step busy forever.
const maxRetries = 10

// HTTPError is a response with status >= 400 under raise_for_status. Its
// fields are safe to show: URL has no query string or userinfo and Body has
// the execution's secrets scrubbed.
type HTTPError struct {
	Method     string
	URL        string
	Status     int
	Body       string        // the first 512 bytes of the response body
	RetryAfter time.Duration // the response's Retry-After, 0 if none
	Attempts   int           // requests made, retries included
}

func (e *HTTPError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: %d", e.Method, e.URL, e.Status)
	if text := http.StatusText(e.Status); text != "" {
		b.WriteString(" " + text)
	}
	if e.Attempts > 1 {
		fmt.Fprintf(&b, " (after %d attempts)", e.Attempts)
	}
	if body := truncate(strings.Join(strings.Fields(e.Body), " "), 200); body != "" {
		b.WriteString(": " + body)
	}
	return b.String()
}

// RetryAfterHint is the wait the server asked for, for a retry policy to honour.
func (e *HTTPError) RetryAfterHint() time.Duration { return e.RetryAfter }

// NewHTTPModule returns the http module: get, post, put, patch and delete
// (url, **kw) and request(method, url, **kw). Each is an effect: it runs only
// inside a durable step, sends the step's idempotency key and returns
// {"status", "headers", "body", "json"}.
func NewHTTPModule(opts HTTPOptions) *starlarkstruct.Module {
	c := &httpClient{opts: opts.withDefaults()}
	members := starlark.StringDict{
		"request": starlark.NewBuiltin("http.request", c.request),
	}
	for _, method := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		name := strings.ToLower(method)
		members[name] = starlark.NewBuiltin("http."+name, c.method(method))
	}
	return &starlarkstruct.Module{Name: "http", Members: members}
}

type httpClient struct {
	opts HTTPOptions
}

func (c *httpClient) method(method string) func(*starlark.Thread, *starlark.Builtin, starlark.Tuple, []starlark.Tuple) (starlark.Value, error) {
	return func(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		sc := sbruntime.InStep(th)
		if sc == nil {
			return nil, fmt.Errorf("%s is an effect: run it as a durable step, e.g. call(%s, url)", b.Name(), b.Name())
		}
		req := httpRequest{method: method, retries: c.opts.Retries, raiseForStatus: true}
		if err := starlark.UnpackArgs(b.Name(), args, kwargs, req.params(false)...); err != nil {
			return nil, err
		}
		return c.do(th, b.Name(), sc, &req)
	}
}

func (c *httpClient) request(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	sc := sbruntime.InStep(th)
	if sc == nil {
		return nil, fmt.Errorf("%s is an effect: run it as a durable step, e.g. call(%s, method, url)", b.Name(), b.Name())
	}
	req := httpRequest{retries: c.opts.Retries, raiseForStatus: true}
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, req.params(true)...); err != nil {
		return nil, err
	}
	req.method = strings.ToUpper(req.method)
	if req.method == "" || strings.IndexFunc(req.method, func(r rune) bool { return r < 'A' || r > 'Z' }) >= 0 {
		return nil, fmt.Errorf("%s: invalid method %q", b.Name(), req.method)
	}
	return c.do(th, b.Name(), sc, &req)
}

// httpRequest is one call's arguments.
type httpRequest struct {
	method         string
	url            textArg
	json           starlark.Value
	body           bodyArg
	headers        stringMapArg
	query          queryArg
	timeout        durationArg
	retries        int
	raiseForStatus bool
	auth           authArg
}

func (r *httpRequest) params(withMethod bool) []any {
	var p []any
	if withMethod {
		p = append(p, "method", &r.method)
	}
	return append(p, "url", &r.url, "json?", &r.json, "body?", &r.body, "headers?", &r.headers,
		"params?", &r.query, "timeout?", &r.timeout, "retries?", &r.retries, "raise_for_status?", &r.raiseForStatus, "auth?", &r.auth)
}

// do sends the request with retries and turns the response into the result.
func (c *httpClient) do(th *starlark.Thread, name string, sc *sbruntime.StepContext, r *httpRequest) (starlark.Value, error) {
	fail := func(err error) error { return errors.New(sbruntime.Scrub(th, err.Error())) }

	u, err := url.Parse(r.url.text)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		shown := r.url.display
		if !r.url.secret {
			shown = redactText(shown)
		}
		return nil, fail(fmt.Errorf("%s: invalid URL %s: want http:// or https:// and a host", name, shown))
	}
	shown := r.url.display
	if !r.url.secret {
		shown = redact(u)
	}
	if len(r.query.values) > 0 {
		q := u.Query()
		for k, vs := range r.query.values {
			q[k] = append(q[k], vs...)
		}
		u.RawQuery = q.Encode()
	}
	switch {
	case r.retries < 0 || r.retries > maxRetries:
		return nil, fmt.Errorf("%s: retries must be between 0 and %d, got %d", name, maxRetries, r.retries)
	case r.timeout.set && r.timeout.d == 0:
		return nil, fmt.Errorf("%s: timeout must be positive", name)
	case r.json != nil && r.json != starlark.None && r.body.set:
		return nil, fmt.Errorf("%s: pass json= or body=, not both", name)
	}

	// Policies see the request as it is shown: no user info, no query.
	if err := sc.Effect(sbruntime.Effect{Kind: "http", Method: strings.ToUpper(r.method), Host: u.Hostname(), URL: shown}); err != nil {
		return nil, err
	}
	guard := c.opts.Guards.Host(u.Hostname())
	if guard != nil && sc.Attempts > 1 && !guard.TakeRetry() {
		// A call()-level retry is a retry too: the budget refuses it, and
		// the step ends with the attempt's error it retries (runStep).
		return nil, guard.RetryBudgetError()
	}

	var payload []byte
	header := http.Header{}
	if r.json != nil && r.json != starlark.None {
		payload, err = revealJSON(r.json)
		if err != nil {
			return nil, fail(fmt.Errorf("%s: json=: %w", name, err))
		}
		header.Set("Content-Type", "application/json")
	} else if r.body.set {
		payload = r.body.data
	}
	header.Set("User-Agent", "starbook")
	header.Set("Idempotency-Key", sc.Key)
	for k, v := range r.headers.values { // the script's headers win, Idempotency-Key included
		header.Set(k, v)
	}

	timeout := c.opts.DefaultTimeout
	if r.timeout.set {
		timeout = r.timeout.d
	}
	ctx, cancel := context.WithTimeout(sbruntime.Context(th), timeout)
	defer cancel()
	if header.Get("traceparent") == "" { // the step's span, for the callee's trace
		propagation.TraceContext{}.Inject(ctx, propagation.HeaderCarrier(header))
	}

	var body any // a nil []byte would still send an empty body
	if payload != nil {
		body = payload
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, r.method, u.String(), body)
	if err != nil {
		return nil, fail(fmt.Errorf("%s %s: %s", r.method, shown, unwrapURLError(err)))
	}
	req.Header = header

	attempts := 0
	client := c.opts.Client
	var gt *guardedTransport
	if guard != nil {
		gt = &guardedTransport{base: client.Transport, host: guard, retry: sc.Attempts > 1, count: sc.CountHTTP}
		if gt.base == nil {
			gt.base = http.DefaultTransport
		}
		copied := *client
		copied.Transport = gt
		client = &copied
	}
	if r.auth.auth != nil {
		base := client.Transport
		if base == nil {
			base = http.DefaultTransport
		}
		copied := *client
		copied.Transport = &authTransport{base: base, auth: r.auth.auth, payload: payload,
			scrub: func(value, display string) { sbruntime.NewSecretShown(th, display, value) }}
		client = &copied
	}
	rc := &retryablehttp.Client{
		HTTPClient:   client,
		Logger:       nil, // errors are reported once, scrubbed, by us
		RetryWaitMin: c.opts.RetryWait,
		RetryWaitMax: c.opts.MaxRetryAfter,
		RetryMax:     r.retries,
		RequestLogHook: func(retryablehttp.Logger, *http.Request, int) {
			attempts++
			if gt == nil {
				sc.CountHTTP() // usage and budgets count every request sent
			}
		},
		CheckRetry: func(ctx context.Context, resp *http.Response, err error) (bool, error) {
			if heldBack(err) {
				return false, nil // not sent: the guard refused it
			}
			if resp != nil {
				c.opts.Guards.Requested(guard, resp.StatusCode)
			} else {
				c.opts.Guards.Requested(guard, 0)
			}
			retry, checkErr := retryablehttp.DefaultRetryPolicy(ctx, resp, err)
			if !retry || attempts > r.retries {
				return retry, checkErr
			}
			// Stop early rather than sleep past the deadline: the caller gets
			// the last response (and its Retry-After) instead of a timeout.
			if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < c.backoff(attempts-1, resp) {
				return false, nil
			}
			if guard != nil && !guard.TakeRetry() {
				return false, nil // the retry budget is spent: the last response stands
			}
			return true, nil
		},
		Backoff: func(_, _ time.Duration, attempt int, resp *http.Response) time.Duration {
			return c.backoff(attempt, resp)
		},
		// After the last retry, hand back the last response so its status is
		// reported, not "giving up after n attempts".
		ErrorHandler: func(resp *http.Response, err error, _ int) (*http.Response, error) {
			if err != nil && resp != nil {
				resp.Body.Close()
				resp = nil
			}
			return resp, err
		},
	}

	resp, err := rc.Do(req)
	if err != nil {
		if held := heldBackError(err); held != nil {
			return nil, held
		}
		return nil, c.transportError(th, sc, ctx, r.method, shown, timeout, attempts, err)
	}
	defer resp.Body.Close()

	limit := c.opts.MaxBodyBytes
	tooLarge := &sbruntime.LimitError{Limit: "http max_body_bytes", Msg: sbruntime.Scrub(th,
		fmt.Sprintf("%s %s: response body is over the %s limit", r.method, shown, formatBytes(limit)))}
	if resp.ContentLength > limit {
		return nil, tooLarge
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, c.transportError(th, sc, ctx, r.method, shown, timeout, attempts, fmt.Errorf("read body: %w", err))
	}
	if int64(len(data)) > limit {
		return nil, tooLarge
	}

	if r.raiseForStatus && resp.StatusCode >= 400 {
		retryAfter, _ := parseRetryAfter(resp.Header.Get("Retry-After"))
		return nil, &HTTPError{
			Method:     r.method,
			URL:        sbruntime.Scrub(th, shown),
			Status:     resp.StatusCode,
			Body:       truncate(sbruntime.Scrub(th, string(data)), 512), // scrub first: a cut could split a secret
			RetryAfter: retryAfter,
			Attempts:   attempts,
		}
	}
	return responseValue(resp, data), nil
}

// guardedTransport sends one HTTP call's requests to a guarded host through
// its guard. retryablehttp sends them one after another, so its fields need
// no lock.
type guardedTransport struct {
	base  http.RoundTripper
	host  *downstream.Host
	retry bool   // a call()-level retry: every request repeats an earlier one
	count func() // counts a request sent, for usage and budgets
	sent  int
}

func (t *guardedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Hostname() != t.host.Name() { // a redirect elsewhere
		return t.base.RoundTrip(req)
	}
	// A retry was allowed by the budget in CheckRetry; a redirect (it
	// carries the response that caused it) is no retry.
	retry := t.retry || (t.sent > 0 && req.Response == nil)
	t.sent++
	pass, err := t.host.Acquire(req.Context(), retry)
	if err != nil {
		return nil, err
	}
	t.count()
	resp, err := t.base.RoundTrip(req)
	if resp == nil {
		pass.Done(0, err)
		pass.Release()
		return nil, err
	}
	pass.Done(resp.StatusCode, err)
	// The request holds its concurrency slot until its body is closed.
	resp.Body = &releasingBody{ReadCloser: resp.Body, release: pass.Release}
	return resp, err
}

// releasingBody releases a request's slot when its body is closed.
type releasingBody struct {
	io.ReadCloser
	release func()
}

func (b *releasingBody) Close() error {
	err := b.ReadCloser.Close()
	b.release()
	return err
}

// heldBack reports whether err is a request a guard did not send.
func heldBack(err error) bool { return err != nil && heldBackError(err) != nil }

// heldBackError is the guard's error in err, nil if none: a circuit open or
// a rate limit's wait longer than the request may take.
func heldBackError(err error) error {
	var open *downstream.OpenError
	if errors.As(err, &open) {
		return open
	}
	var throttled *downstream.ThrottleError
	if errors.As(err, &throttled) {
		return throttled
	}
	return nil
}

// backoff is the wait before retry attempt+1: the server's Retry-After on a
// 429 or 503, else exponential from RetryWait; never over MaxRetryAfter.
func (c *httpClient) backoff(attempt int, resp *http.Response) time.Duration {
	wait := time.Duration(-1)
	if resp != nil && (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable) {
		if d, ok := parseRetryAfter(resp.Header.Get("Retry-After")); ok {
			wait = d
		}
	}
	if wait < 0 {
		f := float64(c.opts.RetryWait) * math.Pow(2, float64(attempt))
		wait = time.Duration(min(f, float64(c.opts.MaxRetryAfter)))
	}
	return min(wait, c.opts.MaxRetryAfter)
}

// transportError describes a request that got no usable response, without the
// URL's query string and with secrets scrubbed.
func (c *httpClient) transportError(th *starlark.Thread, sc *sbruntime.StepContext, ctx context.Context,
	method, shown string, timeout time.Duration, attempts int, err error) error {
	if cause := context.Cause(sbruntime.Context(th)); cause != nil {
		// The step itself was stopped: keep the cause visible to errors.Is.
		return fmt.Errorf("%s %s: %w", method, sbruntime.Scrub(th, shown), cause)
	}
	var reason string
	var netErr net.Error
	var dnsErr *net.DNSError
	var certErr *x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	switch {
	case ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded):
		reason = fmt.Sprintf("timed out after %s", timeout)
	case errors.Is(err, syscall.ECONNREFUSED):
		reason = "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		reason = "connection reset by peer"
	case errors.As(err, &dnsErr):
		reason = "cannot resolve host " + dnsErr.Name
		if dnsErr.IsNotFound {
			reason = "no such host " + dnsErr.Name
		}
	case errors.As(err, &certErr), errors.As(err, &hostErr):
		reason = "TLS certificate not trusted: " + unwrapURLError(err)
	case errors.As(err, &netErr) && netErr.Timeout():
		reason = "timed out"
	default:
		reason = unwrapURLError(err)
	}
	if attempts > 1 {
		reason += fmt.Sprintf(" (after %d attempts)", attempts)
	}
	msg := sbruntime.Scrub(th, fmt.Sprintf("%s %s: %s", method, shown, reason))
	if strings.HasPrefix(reason, "timed out") {
		return &timeoutError{msg: msg}
	}
	return errors.New(msg)
}

// timeoutError is a request that ran out of time; it matches
// context.DeadlineExceeded for errors.Is.
type timeoutError struct{ msg string }

func (e *timeoutError) Error() string   { return e.msg }
func (e *timeoutError) Timeout() bool   { return true }
func (e *timeoutError) Is(t error) bool { return t == context.DeadlineExceeded }

// unwrapURLError is err's text without the *url.Error wrapper, whose message
// repeats the full URL, query string and userinfo included.
func unwrapURLError(err error) string {
	for {
		var ue *url.Error
		if !errors.As(err, &ue) {
			return err.Error()
		}
		err = ue.Err
	}
}

// responseValue is the result a script sees.
func responseValue(resp *http.Response, data []byte) starlark.Value {
	names := make([]string, 0, len(resp.Header))
	for k := range resp.Header {
		names = append(names, k)
	}
	sort.Strings(names)
	headers := starlark.NewDict(len(names))
	for _, k := range names {
		_ = headers.SetKey(starlark.String(strings.ToLower(k)), starlark.String(strings.Join(resp.Header[k], ", ")))
	}
	var parsed starlark.Value = starlark.None
	if isJSON(resp.Header.Get("Content-Type")) && json.Valid(data) {
		if v, err := sbruntime.Decode(data); err == nil {
			parsed = v
		}
	}
	result := starlark.NewDict(4)
	_ = result.SetKey(starlark.String("status"), starlark.MakeInt(resp.StatusCode))
	_ = result.SetKey(starlark.String("headers"), headers)
	_ = result.SetKey(starlark.String("body"), starlark.String(data))
	_ = result.SetKey(starlark.String("json"), parsed)
	return result
}

func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json"))
}

// redact is u without userinfo, query string or fragment, for messages.
func redact(u *url.URL) string {
	c := *u
	c.User = nil
	c.RawQuery, c.ForceQuery = "", false
	c.Fragment, c.RawFragment = "", ""
	return c.String()
}

// redactText is a URL that did not parse, cut before any query string or
// fragment and without userinfo.
func redactText(s string) string {
	if i := strings.IndexAny(s, "?#"); i >= 0 {
		s = s[:i]
	}
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return s
	}
	authority, path, hasPath := strings.Cut(rest, "/")
	if i := strings.LastIndex(authority, "@"); i >= 0 {
		authority = authority[i+1:]
	}
	if hasPath {
		return scheme + "://" + authority + "/" + path
	}
	return scheme + "://" + authority
}

// parseRetryAfter reads a Retry-After header: seconds or an HTTP date.
func parseRetryAfter(h string) (time.Duration, bool) {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0, false
	}
	if n, err := strconv.ParseInt(h, 10, 64); err == nil {
		if n < 0 {
			return 0, false
		}
		if n > math.MaxInt64/int64(time.Second) {
			n = math.MaxInt64 / int64(time.Second)
		}
		return time.Duration(n) * time.Second, true
	}
	t, err := http.ParseTime(h)
	if err != nil {
		return 0, false
	}
	return max(time.Until(t), 0), true
}

// truncate cuts s to at most n bytes on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func formatBytes(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d-byte", n)
}

// textArg is a string or a secret; display is what messages may show.
type textArg struct {
	text, display string
	secret        bool
}

func (a *textArg) Unpack(v starlark.Value) error {
	text, err := sbruntime.RevealString(v)
	if err != nil {
		return err
	}
	_, a.secret = v.(*sbruntime.Secret)
	a.text, a.display = text, text
	if a.secret {
		a.display = v.String()
	}
	return nil
}

// bodyArg is body=: a string, bytes or a secret, sent as is.
type bodyArg struct {
	data []byte
	set  bool
}

func (a *bodyArg) Unpack(v starlark.Value) error {
	switch x := v.(type) {
	case starlark.NoneType:
		return nil
	case starlark.Bytes:
		a.data = []byte(x)
	default:
		s, err := sbruntime.RevealString(v)
		if err != nil {
			return fmt.Errorf("got %s, want string, bytes or secret", v.Type())
		}
		a.data = []byte(s)
	}
	a.set = true
	return nil
}

// stringMapArg is headers=: a mapping of string to string or secret.
type stringMapArg struct{ values map[string]string }

func (a *stringMapArg) Unpack(v starlark.Value) error {
	if v == starlark.None {
		return nil
	}
	m, ok := v.(starlark.IterableMapping)
	if !ok {
		return fmt.Errorf("got %s, want dict", v.Type())
	}
	a.values = map[string]string{}
	for _, kv := range m.Items() {
		k, ok := starlark.AsString(kv[0])
		if !ok {
			return fmt.Errorf("key %s is a %s, want string", kv[0], kv[0].Type())
		}
		s, err := sbruntime.RevealString(kv[1])
		if err != nil {
			return fmt.Errorf("[%q]: %w", k, err)
		}
		a.values[k] = s
	}
	return nil
}

// queryArg is params=: a mapping of name to a scalar, a secret or a list of them.
type queryArg struct{ values url.Values }

func (a *queryArg) Unpack(v starlark.Value) error {
	if v == starlark.None {
		return nil
	}
	m, ok := v.(starlark.IterableMapping)
	if !ok {
		return fmt.Errorf("got %s, want dict", v.Type())
	}
	a.values = url.Values{}
	for _, kv := range m.Items() {
		k, ok := starlark.AsString(kv[0])
		if !ok {
			return fmt.Errorf("key %s is a %s, want string", kv[0], kv[0].Type())
		}
		items := []starlark.Value{kv[1]}
		switch x := kv[1].(type) {
		case *starlark.List:
			items = listOf(x)
		case starlark.Tuple:
			items = x
		}
		for _, item := range items {
			s, err := queryValue(item)
			if err != nil {
				return fmt.Errorf("[%q]: %w", k, err)
			}
			a.values.Add(k, s)
		}
	}
	return nil
}

func listOf(l *starlark.List) []starlark.Value {
	out := make([]starlark.Value, l.Len())
	for i := range out {
		out[i] = l.Index(i)
	}
	return out
}

func queryValue(v starlark.Value) (string, error) {
	switch x := v.(type) {
	case starlark.String:
		return string(x), nil
	case *sbruntime.Secret:
		return x.Reveal(), nil
	case starlark.Int, starlark.Float:
		return x.String(), nil
	case starlark.Bool:
		if x {
			return "true", nil
		}
		return "false", nil
	}
	return "", fmt.Errorf("got %s, want string, number, bool or secret", v.Type())
}

// revealJSON encodes v like runtime.Encode, except that secrets are written
// with their value: this is the body sent, never something stored.
func revealJSON(v starlark.Value) ([]byte, error) {
	x, err := toJSONValue(v, "json")
	if err != nil {
		return nil, err
	}
	return json.Marshal(x)
}

func toJSONValue(v starlark.Value, path string) (any, error) {
	switch x := v.(type) {
	case starlark.NoneType:
		return nil, nil
	case starlark.Bool:
		return bool(x), nil
	case starlark.Int:
		return json.Number(x.String()), nil
	case starlark.Float:
		f := float64(x)
		if math.IsInf(f, 0) || math.IsNaN(f) {
			return nil, fmt.Errorf("%s: %s cannot be sent as JSON", path, x.String())
		}
		return f, nil
	case starlark.String:
		return string(x), nil
	case *sbruntime.Secret:
		return x.Reveal(), nil
	case *starlarkstruct.Struct:
		d := starlark.StringDict{}
		x.ToStringDict(d)
		out := make(map[string]any, len(d))
		for k, e := range d {
			ev, err := toJSONValue(e, path+"."+k)
			if err != nil {
				return nil, err
			}
			out[k] = ev
		}
		return out, nil
	case *starlark.List, starlark.Tuple:
		seq := v.(starlark.Indexable)
		out := make([]any, seq.Len())
		for i := range out {
			ev, err := toJSONValue(seq.Index(i), fmt.Sprintf("%s[%d]", path, i))
			if err != nil {
				return nil, err
			}
			out[i] = ev
		}
		return out, nil
	case starlark.IterableMapping: // dict and record
		out := map[string]any{}
		for _, kv := range x.Items() {
			k, ok := kv[0].(starlark.String)
			if !ok {
				return nil, fmt.Errorf("%s: dict key %s is a %s; JSON keys must be strings", path, kv[0], kv[0].Type())
			}
			ev, err := toJSONValue(kv[1], path+"["+strconv.Quote(string(k))+"]")
			if err != nil {
				return nil, err
			}
			out[string(k)] = ev
		}
		return out, nil
	}
	return nil, fmt.Errorf("%s: a %s cannot be sent as JSON (only None, bool, int, float, string, secret, list, tuple, dict and struct can)", path, v.Type())
}
