package api

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/starbook/starbook"
)

// ApplyResponse is POST /api/v1/runbooks with migrate: the versions
// applied (or, in a dry run, that would be) and what happened to each
// in-flight execution of their runbooks.
type ApplyResponse = starbook.ApplyResult

// applyWith serves an apply with migrate (and dry_run).
func (h *handler) applyWith(w http.ResponseWriter, r *http.Request, req applyRequest) error {
	if req.DryRun && !req.Migrate {
		return badRequest("dry_run needs migrate: a dry run reports what a migration would do")
	}
	svc, ok := h.svc.(starbook.MigrateService)
	if !ok {
		return &requestError{status: http.StatusNotImplemented, msg: "this node cannot migrate executions"}
	}
	by := strings.TrimSpace(r.Header.Get(UserHeader))
	if p, ok := principal(r); ok {
		by = p.Name // the token says who, whatever the header claims
	}
	n := note(r)
	n.detail = "migrate"
	if req.DryRun {
		n.detail += ", dry run"
	}
	res, err := svc.ApplyWith(r.Context(), req.Files, starbook.ApplyOptions{Migrate: true, DryRun: req.DryRun, By: by})
	if err != nil {
		return err
	}
	names := make([]string, len(res.Runbooks))
	for i, v := range res.Runbooks {
		names[i] = v.Name + "@" + v.Version
	}
	n.runbook = strings.Join(names, ",")
	counts := map[string]int{}
	for _, m := range res.Migration {
		counts[m.Result]++
	}
	for _, k := range []string{starbook.MigrationMigrated, starbook.MigrationWouldMigrate, starbook.MigrationIncompatible,
		starbook.MigrationRunning, starbook.MigrationMoved} {
		if counts[k] > 0 {
			n.detail += fmt.Sprintf(", %d %s", counts[k], k)
		}
	}
	res.Runbooks = nonNil(res.Runbooks)
	writeJSON(w, http.StatusOK, res)
	return nil
}

// ApplyMigrate applies files as Apply does and moves the in-flight
// executions of their runbooks onto the applied versions where their
// histories replay; with dryRun the server stores nothing and reports what
// it would do.
func (c *Client) ApplyMigrate(ctx context.Context, files map[string]string, dryRun bool) (*ApplyResponse, error) {
	var resp ApplyResponse
	hdr := http.Header{UserHeader: {c.User}} // who re-pins, without auth
	err := c.do(ctx, http.MethodPost, "/api/v1/runbooks", hdr, applyRequest{Files: files, Migrate: true, DryRun: dryRun}, &resp)
	if err != nil {
		return nil, err
	}
	return &resp, nil
}
