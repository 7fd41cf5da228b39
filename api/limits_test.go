package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/starbook/starbook/api"
	"github.com/starbook/starbook/api/apitest"
	sbruntime "github.com/starbook/starbook/runtime"
	"github.com/starbook/starbook/triggers"
)

// TestLimitErrors: each request limit answers with a status and a message
// that names the limit and the flag that sets it.
func TestLimitErrors(t *testing.T) {
	svc := &apitest.Service{StartFunc: func(context.Context, string, json.RawMessage, sbruntime.Trigger) (*sbruntime.Execution, error) {
		return nil, &sbruntime.LimitError{Limit: "max_active_executions",
			Msg: "runbook a has 3 active executions, the most it may have (serve --max-active-executions 3)"}
	}}
	h := api.NewHandler(svc, nil, api.WithLimits(api.Limits{Body: 100, RunbooksBody: 200, AlertmanagerBody: 300}),
		api.WithHooks(&triggers.Dispatcher{}, api.AlertmanagerAuth{}))
	big := func(n int) string { return `{"runbook": "` + strings.Repeat("a", n) + `"}` }
	for _, tc := range []struct {
		path, body string
		status     int
		want       string
	}{
		{"/api/v1/executions", big(100), 413, "request body too large: limit is 100 bytes (serve --max-body-bytes)"},
		{"/api/v1/executions/e1/signals/go", big(100), 413, "limit is 100 bytes (serve --max-body-bytes)"},
		{"/api/v1/runbooks", big(200), 413, "limit is 200 bytes (serve --max-runbooks-body-bytes)"},
		{"/hooks/alertmanager", big(300), 413, "limit is 300 bytes (serve --max-alertmanager-body-bytes)"},
		{"/api/v1/executions", `{"runbook": "a"}`, 429, "(serve --max-active-executions 3) (limit max_active_executions)"},
	} {
		w := do(t, h, http.MethodPost, tc.path, tc.body, "")
		if w.Code != tc.status || !strings.Contains(w.Body.String(), tc.want) {
			t.Errorf("POST %s: %d %s, want %d %q", tc.path, w.Code, w.Body, tc.status, tc.want)
		}
	}
	for _, l := range []api.Limits{{Body: 2 << 20}, {RunbooksBody: 100 << 20}} {
		if err := l.Validate(); err == nil {
			t.Errorf("limits %+v accepted", l)
		}
	}
}
