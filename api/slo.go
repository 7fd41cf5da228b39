package api

import (
	"context"
	"net/http"
	"net/url"

	"github.com/starbook/starbook"
)

// slo answers GET /api/v1/slo[?runbook=NAME]: the status of every runbook's
// objective, or of one runbook's.
func (h *handler) slo(w http.ResponseWriter, r *http.Request) error {
	ss, ok := h.svc.(starbook.SLOService)
	if !ok {
		return &requestError{status: http.StatusNotFound, msg: "this node does not report SLOs"}
	}
	name := r.URL.Query().Get("runbook")
	if name != "" {
		if err := checkRunbookName(name); err != nil {
			return err
		}
	}
	report, err := ss.SLOs(r.Context(), name)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, report)
	return nil
}

// SLOs returns the status of runbook's objective, or of every runbook's
// with runbook "".
func (c *Client) SLOs(ctx context.Context, runbook string) (*starbook.SLOReport, error) {
	path := "/api/v1/slo"
	if runbook != "" {
		path += "?runbook=" + url.QueryEscape(runbook)
	}
	var out starbook.SLOReport
	if err := c.do(ctx, http.MethodGet, path, nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
