package api

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/starbook/starbook"
)

// UsageResponse is GET /api/v1/usage: per runbook per UTC day, newest day
// first.
type UsageResponse struct {
	Usage []*starbook.DayUsage `json:"usage"`
}

// Usage days: how many GET /api/v1/usage reports by default and at most.
const (
	DefaultUsageDays = 7
	MaxUsageDays     = 400
)

// usageRoutes registers GET /api/v1/usage when svc reports usage.
func (h *handler) usageRoutes() {
	if _, ok := h.svc.(starbook.UsageService); ok {
		h.route("GET /api/v1/usage", h.usage)
	}
}

func (h *handler) usage(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	runbook := q.Get("runbook")
	if runbook != "" && !validSegment(runbook) {
		return badRequest(fmt.Sprintf("invalid runbook %q", runbook))
	}
	days := DefaultUsageDays
	if s := q.Get("days"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxUsageDays {
			return badRequest(fmt.Sprintf("invalid days %q: want an integer from 1 to %d", s, MaxUsageDays))
		}
		days = n
	}
	list, err := h.svc.(starbook.UsageService).Usage(r.Context(), runbook, days)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, UsageResponse{Usage: nonNil(list)})
	return nil
}

// Usage returns what runbook ("" for all) did on each of the last days UTC
// days (0: the server's default), newest first.
func (c *Client) Usage(ctx context.Context, runbook string, days int) ([]*starbook.DayUsage, error) {
	q := url.Values{}
	if runbook != "" {
		q.Set("runbook", runbook)
	}
	if days > 0 {
		q.Set("days", strconv.Itoa(days))
	}
	path := "/api/v1/usage"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var resp UsageResponse
	err := c.do(ctx, http.MethodGet, path, nil, nil, &resp)
	return resp.Usage, err
}
