package api_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/starbook/starbook/api"
	"github.com/starbook/starbook/api/apitest"
	"github.com/starbook/starbook/triggers"
)

// fakeHooks records what reaches the dispatcher.
type fakeHooks struct {
	notifications []*triggers.Notification
	webhookErr    error
	status        string
}

func (f *fakeHooks) Alertmanager(_ context.Context, n *triggers.Notification) (*triggers.Result, error) {
	f.notifications = append(f.notifications, n)
	return &triggers.Result{Executions: []triggers.Started{{Runbook: "crash", ID: "01X", Status: triggers.StatusStarted}}}, nil
}

func (f *fakeHooks) Webhook(_ context.Context, name string, h http.Header, body []byte) (*triggers.Result, error) {
	if f.webhookErr != nil {
		return nil, f.webhookErr
	}
	return &triggers.Result{Executions: []triggers.Started{{Runbook: "deploy", ID: "01Y", Status: f.status}}}, nil
}

func hookServer(t *testing.T, hooks api.Hooks, auth api.AlertmanagerAuth) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(api.NewHandler(&apitest.Service{}, nil, api.WithHooks(hooks, auth)))
	t.Cleanup(srv.Close)
	return srv
}

func post(t *testing.T, url string, body []byte, header http.Header) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	return resp.StatusCode, strings.TrimSpace(buf.String())
}

func payload(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("../testdata/alertmanager/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestAlertmanagerHook(t *testing.T) {
	hooks := &fakeHooks{}
	srv := hookServer(t, hooks, api.AlertmanagerAuth{})
	url := srv.URL + "/hooks/alertmanager"
	code, body := post(t, url, payload(t, "valid_firing.json"), nil)
	if code != http.StatusOK || !strings.Contains(body, `"status":"started"`) || len(hooks.notifications) != 1 {
		t.Fatalf("valid payload: %d %s", code, body)
	}
	for _, tt := range []struct {
		file string
		code int
		want string
	}{
		{"malformed.json", 400, "unexpected end of JSON"},
		{"wrong_version.json", 400, `unsupported Alertmanager payload version \"3\"`},
		{"missing_alerts.json", 400, `missing \"alerts\"`},
		{"bad_startsat.json", 400, "want an RFC 3339 time"},
	} {
		code, body := post(t, url, payload(t, tt.file), nil)
		if code != tt.code || !strings.Contains(body, tt.want) {
			t.Errorf("%s: %d %s; want %d with %q", tt.file, code, body, tt.code, tt.want)
		}
	}
	if len(hooks.notifications) != 1 {
		t.Fatalf("a malformed payload reached the dispatcher")
	}
	big := append([]byte(`{"version":"4","x":"`), bytes.Repeat([]byte("x"), triggers.MaxAlertmanagerBody)...)
	if code, body := post(t, url, big, nil); code != http.StatusRequestEntityTooLarge {
		t.Errorf("oversize: %d %s", code, body)
	}
}

func TestAlertmanagerHookAuth(t *testing.T) {
	hooks := &fakeHooks{}
	srv := hookServer(t, hooks, api.AlertmanagerAuth{Token: "am-token", User: "am", Password: "pw"})
	url := srv.URL + "/hooks/alertmanager"
	body := payload(t, "valid_firing.json")
	basic := func(u, p string) http.Header {
		r, _ := http.NewRequest("POST", "/", nil)
		r.SetBasicAuth(u, p)
		return r.Header
	}
	for _, tt := range []struct {
		name   string
		header http.Header
		code   int
	}{
		{"bearer", http.Header{"Authorization": {"Bearer am-token"}}, 200},
		{"basic", basic("am", "pw"), 200},
		{"no credentials", nil, 401},
		{"wrong token", http.Header{"Authorization": {"Bearer nope"}}, 401},
		{"wrong password", basic("am", "pw2"), 401},
		{"wrong user", basic("root", "pw"), 401},
	} {
		code, resp := post(t, url, body, tt.header)
		if code != tt.code {
			t.Errorf("%s: %d %s; want %d", tt.name, code, resp, tt.code)
		}
		if strings.Contains(resp, "am-token") || strings.Contains(resp, "pw") {
			t.Errorf("%s: response leaks a credential: %s", tt.name, resp)
		}
	}
	if len(hooks.notifications) != 2 {
		t.Fatalf("%d notifications reached the dispatcher, want 2", len(hooks.notifications))
	}
	if s := fmt.Sprint(api.AlertmanagerAuth{Token: "am-token", Password: "pw"}); strings.Contains(s, "am-token") {
		t.Fatalf("AlertmanagerAuth prints its token: %s", s)
	}
}

func TestWebhookHook(t *testing.T) {
	hooks := &fakeHooks{status: triggers.StatusStarted}
	srv := hookServer(t, hooks, api.AlertmanagerAuth{})
	url := srv.URL + "/hooks/deploy-done"
	body := []byte(`{"service":"api"}`)
	if code, resp := post(t, url, body, nil); code != http.StatusCreated || !strings.Contains(resp, `"id":"01Y"`) {
		t.Fatalf("started: %d %s", code, resp)
	}
	hooks.status = triggers.StatusDuplicate
	if code, resp := post(t, url, body, nil); code != http.StatusOK {
		t.Fatalf("duplicate: %d %s", code, resp)
	}
	for _, tt := range []struct {
		err  error
		code int
		want string
	}{
		{fmt.Errorf("webhook: %w", triggers.ErrUnknownHook), 404, `no runbook declares the webhook \"deploy-done\"`},
		{&triggers.AuthError{Msg: "signature does not match the body"}, 401, "signature does not match"},
		{&triggers.TooLargeError{Limit: 10}, 413, "at most 10 bytes"},
		{&triggers.ConfigError{Hook: "deploy-done", Env: "SECRET_VAR"}, 500, "not configured on this node"},
	} {
		hooks.webhookErr = tt.err
		code, resp := post(t, url, body, nil)
		if code != tt.code || !strings.Contains(resp, tt.want) {
			t.Errorf("%v: %d %s; want %d with %q", tt.err, code, resp, tt.code, tt.want)
		}
		if strings.Contains(resp, "SECRET_VAR") {
			t.Errorf("response names the secret's variable: %s", resp)
		}
	}
	hooks.webhookErr = nil
	big := bytes.Repeat([]byte("x"), triggers.MaxWebhookBody+1)
	if code, resp := post(t, url, big, nil); code != http.StatusRequestEntityTooLarge {
		t.Errorf("oversize: %d %s", code, resp)
	}
}

// TestWebhookTruncatedBody sends fewer bytes than Content-Length promises and
// closes: the request is refused, not run on a partial body.
func TestWebhookTruncatedBody(t *testing.T) {
	hooks := &fakeHooks{status: triggers.StatusStarted}
	srv := hookServer(t, hooks, api.AlertmanagerAuth{})
	conn, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /hooks/deploy HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"service\":")
	_ = conn.(*net.TCPConn).CloseWrite()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	var e struct{ Error string }
	_ = json.NewDecoder(resp.Body).Decode(&e)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(e.Error, "read request body") {
		t.Fatalf("truncated body: %d %q", resp.StatusCode, e.Error)
	}
}
