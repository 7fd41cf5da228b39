package api_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/starbook/starbook"
	"github.com/starbook/starbook/api"
	"github.com/starbook/starbook/api/apitest"
	sbruntime "github.com/starbook/starbook/runtime"
)

func TestSignalAndDecisionRoutes(t *testing.T) {
	var signalled []string
	var decided []string
	svc := &apitest.Service{
		SignalFunc: func(_ context.Context, id, name string, data json.RawMessage, by string) error {
			if id == "gone" {
				return sbruntime.Inputf("execution gone has ended (completed): signal %s not delivered", name)
			}
			signalled = append(signalled, id+" "+name+" "+string(data)+" "+by)
			return nil
		},
		DecideFunc: func(_ context.Context, id, pos string, d sbruntime.Decision) (*sbruntime.ApprovalState, error) {
			decided = append(decided, strings.Join([]string{id, pos, d.User, d.Via, d.Comment}, "|"))
			if pos == "" && id == "two" {
				return nil, sbruntime.Conflictf("execution two has 2 pending approvals (positions 1, 2): name one")
			}
			return &sbruntime.ApprovalState{Execution: id, Position: pos, Resolved: true,
				Result: &sbruntime.ApprovalResult{Approved: d.Approve, By: []string{d.User}}}, nil
		},
		WaitsFunc: func(context.Context, starbook.WaitFilter) ([]*starbook.PendingWait, error) {
			return []*starbook.PendingWait{{Execution: "a", Kind: "approval"}, {Execution: "b", Kind: "signal", Name: "go"}}, nil
		},
	}
	srv := httptest.NewServer(api.NewHandler(svc, nil))
	defer srv.Close()
	do := func(method, path, body string, hdr ...string) (int, string) {
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(b))
	}
	for _, tc := range []struct {
		method, path, body string
		hdr                []string
		status             int
		contains           string
	}{
		{"POST", "/api/v1/executions/x/signals/go", "", nil, 200, `{"delivered":true,"execution":"x","signal":"go"}`},
		{"POST", "/api/v1/executions/x/signals/go", `{"data": {"v": 1}}`, []string{api.UserHeader, "bob"}, 200, `"delivered":true`},
		{"POST", "/api/v1/executions/x/signals/go", `{"data": {"v": 1}`, nil, 400, "invalid request body"},
		{"POST", "/api/v1/executions/x/signals/go", `{"date": 1}`, nil, 400, `unknown field \"date\"`},
		{"POST", "/api/v1/executions/gone/signals/go", ``, nil, 400, "has ended"},
		{"POST", "/api/v1/executions/x/approvals/4/0/2", `{"decision":"approve","as":"alice","comment":"ok"}`, nil, 200, `"resolved":true`},
		{"POST", "/api/v1/executions/x/approve", `{"decision":"reject"}`, []string{api.UserHeader, "carol", api.ViaHeader, "cli"}, 200, `"approved":false`},
		{"POST", "/api/v1/executions/two/approve", `{"decision":"approve","as":"a"}`, nil, 409, "name one"},
		{"POST", "/api/v1/executions/x/approve", `{"decision":"maybe","as":"a"}`, nil, 400, `decision must be \"approve\"`},
		{"POST", "/api/v1/executions/x/approve", `{"decision":"approve"}`, nil, 400, "who decides?"},
		{"GET", "/api/v1/approvals", "", nil, 200, `{"approvals":[{"execution":"a"`},
		{"GET", "/api/v1/waits", "", nil, 200, `"name":"go"`},
	} {
		status, body := do(tc.method, tc.path, tc.body, tc.hdr...)
		if status != tc.status || !strings.Contains(body, tc.contains) {
			t.Errorf("%s %s %s: %d %s; want %d containing %s", tc.method, tc.path, tc.body, status, body, tc.status, tc.contains)
		}
	}
	wantSignals := []string{"x go  api", `x go {"v": 1} bob`}
	if strings.Join(signalled, "\n") != strings.Join(wantSignals, "\n") {
		t.Errorf("signals %q, want %q", signalled, wantSignals)
	}
	wantDecided := []string{"x|4/0/2|alice|api|ok", "x||carol|cli|", "two||a|api|"}
	if strings.Join(decided, "\n") != strings.Join(wantDecided, "\n") {
		t.Errorf("decisions %q, want %q", decided, wantDecided)
	}
}

// TestWaitsPages: GET /api/v1/waits asks the service for a page and one
// more, answers the page oldest first with the cursor of its last wait in
// id order as next, and refuses bad values with 400.
func TestWaitsPages(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	waits := []*starbook.PendingWait{ // in cursor order; the later executions wait longer
		{Execution: "01JA", Position: "1", Kind: "signal", Since: t0.Add(3 * time.Minute)},
		{Execution: "01JB", Position: "1", Kind: "signal", Since: t0.Add(2 * time.Minute)},
		{Execution: "01JC", Position: "2/1", Kind: "approval", Since: t0.Add(time.Minute)},
	}
	var filters []starbook.WaitFilter
	svc := &apitest.Service{WaitsFunc: func(_ context.Context, f starbook.WaitFilter) ([]*starbook.PendingWait, error) {
		filters = append(filters, f)
		var out []*starbook.PendingWait
		for _, w := range waits {
			if w.Cursor() > f.After && (f.Limit == 0 || len(out) < f.Limit) {
				out = append(out, w)
			}
		}
		return out, nil
	}}
	srv := httptest.NewServer(api.NewHandler(svc, nil))
	defer srv.Close()
	c := &api.Client{BaseURL: srv.URL}
	page, next, err := c.WaitsPage(context.Background(), starbook.WaitFilter{Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(page) != 2 || page[0].Execution != "01JB" || page[1].Execution != "01JA" || next != "01JB/1" {
		t.Errorf("page %v, next %q; want 01JB then 01JA (oldest first), next 01JB/1", page, next)
	}
	page, next, err = c.WaitsPage(context.Background(), starbook.WaitFilter{Limit: 2, After: next})
	if err != nil || len(page) != 1 || page[0].Execution != "01JC" || next != "" {
		t.Errorf("last page %v, next %q, %v; want 01JC alone", page, next, err)
	}
	if _, err := c.Waits(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := []starbook.WaitFilter{{Limit: 3}, {Limit: 3, After: "01JB/1"}, {Limit: api.DefaultLimit + 1}}
	if !slices.Equal(filters, want) {
		t.Errorf("filters %+v, want %+v", filters, want)
	}
	for _, q := range []string{"limit=0", "limit=1001", "limit=x", "after=01JA", "after=a%20b/1", "after=/1"} {
		resp, err := http.Get(srv.URL + "/api/v1/waits?" + q)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400", q, resp.StatusCode)
		}
	}
}
