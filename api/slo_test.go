package api_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/starbook/starbook"
	"github.com/starbook/starbook/api"
	"github.com/starbook/starbook/api/apitest"
)

// sloService is a fake service with the optional SLO part.
type sloService struct {
	apitest.Service
	asked []string
}

func (s *sloService) SLOs(_ context.Context, runbook string) (*starbook.SLOReport, error) {
	s.asked = append(s.asked, runbook)
	if runbook == "nope" {
		return nil, errNotFound
	}
	at := time.Date(2031, 3, 10, 12, 0, 0, 0, time.UTC)
	rate, p95 := 0.5, 2400.0
	return &starbook.SLOReport{At: at, SLOs: []*starbook.SLOStatus{{
		Runbook: "deploy", Version: "v1", From: at.Add(-7 * 24 * time.Hour),
		Objective: starbook.SLOObjective{Success: 0.9, Latency: map[string]string{"p95": "30m"}, Window: "7d", Where: "deploy.star:1:4"},
		Runs:      6, Successes: 3, Failures: 3, Cancelled: 1, SuccessRate: &rate,
		ErrorBudget: starbook.ErrorBudget{Allowed: 0.6, Failures: 3, Remaining: -4},
		Latency:     []starbook.LatencyStatus{{Percentile: "p95", Objective: "30m", ObjectiveSeconds: 1800, Seconds: &p95}},
		BurnRates:   []starbook.BurnRate{{Window: "5m", Runs: 1, Failures: 1, Rate: 10}},
	}}}, nil
}

// TestSLORoute: GET /api/v1/slo answers the report as its JSON shape says;
// ?runbook= asks for one, a bad name is a 400 before the service is asked,
// an unknown one a 404; the client decodes what the route sends.
func TestSLORoute(t *testing.T) {
	svc := &sloService{}
	h := api.NewHandler(svc, nil)
	w := do(t, h, "GET", "/api/v1/slo", "", "")
	const want = `{"at":"2031-03-10T12:00:00Z","slos":[{"runbook":"deploy","version":"v1",` +
		`"objective":{"success":0.9,"latency":{"p95":"30m"},"window":"7d","where":"deploy.star:1:4"},` +
		`"from":"2031-03-03T12:00:00Z","runs":6,"successes":3,"failures":3,"cancelled":1,"success_rate":0.5,` +
		`"error_budget":{"allowed_failures":0.6,"failures":3,"remaining":-4},` +
		`"latency":[{"percentile":"p95","objective":"30m","objective_seconds":1800,"seconds":2400,"met":false}],` +
		`"burn_rates":[{"window":"5m","runs":1,"failures":1,"rate":10}]}]}`
	if w.Code != 200 || strings.TrimSpace(w.Body.String()) != want {
		t.Fatalf("GET /api/v1/slo: %d\n%s\nwant\n%s", w.Code, w.Body, want)
	}
	if w := do(t, h, "GET", "/api/v1/slo?runbook=nope", "", ""); w.Code != 404 || !strings.Contains(w.Body.String(), `"error"`) {
		t.Errorf("unknown runbook: %d %s", w.Code, w.Body)
	}
	if w := do(t, h, "GET", "/api/v1/slo?runbook=..%2Fx", "", ""); w.Code != 400 || !strings.Contains(w.Body.String(), "invalid runbook name") {
		t.Errorf("bad runbook name: %d %s", w.Code, w.Body)
	}
	if strings.Join(svc.asked, ",") != ",nope" {
		t.Errorf("the service was asked for %q, want \"\" then nope (never the bad name)", svc.asked)
	}

	srv := httptest.NewServer(h)
	defer srv.Close()
	report, err := (&api.Client{BaseURL: srv.URL}).SLOs(context.Background(), "deploy")
	if err != nil || len(report.SLOs) != 1 || *report.SLOs[0].SuccessRate != 0.5 || report.SLOs[0].ErrorBudget.Remaining != -4 {
		t.Fatalf("client: %+v, %v", report, err)
	}
	if svc.asked[len(svc.asked)-1] != "deploy" {
		t.Errorf("the client asked for %q, want deploy", svc.asked[len(svc.asked)-1])
	}
}
