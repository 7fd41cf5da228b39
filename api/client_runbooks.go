package api

import (
	"context"
	"net/http"
	"net/url"
)

// RunbookVersion returns the files of a stored runbook version ("current"
// for the current one): what `starbook replay` and `run --dry-run` run
// locally.
func (c *Client) RunbookVersion(ctx context.Context, name, version string) (*BundleResponse, error) {
	if version == "" {
		version = "current"
	}
	var resp BundleResponse
	err := c.do(ctx, http.MethodGet, "/api/v1/runbooks/"+url.PathEscape(name)+"/versions/"+url.PathEscape(version), nil, nil, &resp)
	return &resp, err
}
