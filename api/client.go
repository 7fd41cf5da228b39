package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/starbook/starbook"
	sbruntime "github.com/starbook/starbook/runtime"
)

// Client calls the HTTP API of a starbook node. Its methods mirror the routes
// served by [NewHandler]; a non-2xx response is returned as an [*Error].
type Client struct {
	BaseURL string       // e.g. http://127.0.0.1:7070
	HTTP    *http.Client // nil means http.DefaultClient; its Timeout must exceed any Wait
	User    string       // recorded as the source of the executions Start creates (without auth)
	Token   string       // sent as Authorization: Bearer when set
}

// Error is a non-2xx response from the API.
type Error struct {
	Status  int    // HTTP status code
	Message string // the server's error message
}

func (e *Error) Error() string { return e.Message }

// maxErrorBody caps how much of an error response is read.
const maxErrorBody = 64 << 10

// Health returns nil when the node reports itself healthy.
func (c *Client) Health(ctx context.Context) error {
	return c.do(ctx, http.MethodGet, "/healthz", nil, nil, nil)
}

// Apply stores the runbooks in files (name relative to the runbook directory,
// '/'-separated -> source) and returns one version per runbook.
func (c *Client) Apply(ctx context.Context, files map[string]string) ([]starbook.RunbookVersion, error) {
	var resp runbooksResponse
	err := c.do(ctx, http.MethodPost, "/api/v1/runbooks", nil, applyRequest{Files: files}, &resp)
	return resp.Runbooks, err
}

// Runbooks lists the runbooks with their current version.
func (c *Client) Runbooks(ctx context.Context) ([]starbook.RunbookVersion, error) {
	var resp runbooksResponse
	err := c.do(ctx, http.MethodGet, "/api/v1/runbooks", nil, nil, &resp)
	return resp.Runbooks, err
}

// Start creates an execution of runbook with input (nil for none), recorded as
// triggered manually by c.User. The execution is durable when Start returns.
func (c *Client) Start(ctx context.Context, runbook string, input json.RawMessage) (*sbruntime.Execution, error) {
	return c.StartForced(ctx, runbook, input, false)
}

// StartForced is Start that, with force, starts the runbook even while it
// is paused (the node allows it to admins only).
func (c *Client) StartForced(ctx context.Context, runbook string, input json.RawMessage, force bool) (*sbruntime.Execution, error) {
	var resp executionResponse
	hdr := http.Header{TriggerHeader: {"manual"}, UserHeader: {c.User}}
	err := c.do(ctx, http.MethodPost, "/api/v1/executions", hdr, startRequest{Runbook: runbook, Input: input, Force: force}, &resp)
	return resp.Execution, err
}

// Executions lists executions matching f, newest first. A zero Limit means the
// server's default.
func (c *Client) Executions(ctx context.Context, f starbook.Filter) ([]*sbruntime.Execution, error) {
	list, _, err := c.ExecutionsPage(ctx, f)
	return list, err
}

// ExecutionsPage lists one page of executions matching f, newest first (those
// older than f.After when set), and returns the id to pass as f.After for the
// next page: "" when this page is the last.
func (c *Client) ExecutionsPage(ctx context.Context, f starbook.Filter) (list []*sbruntime.Execution, next string, err error) {
	q := url.Values{}
	if f.Status != "" {
		q.Set("status", string(f.Status))
	}
	if f.Runbook != "" {
		q.Set("runbook", f.Runbook)
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	if f.After != "" {
		q.Set("after", f.After)
	}
	path := "/api/v1/executions"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var resp executionsResponse
	err = c.do(ctx, http.MethodGet, path, nil, nil, &resp)
	return resp.Executions, resp.Next, err
}

// Execution returns an execution and its history in position order.
func (c *Client) Execution(ctx context.Context, id string) (*sbruntime.Execution, []*sbruntime.Event, error) {
	return c.Wait(ctx, id, 0)
}

// Wait blocks until the execution is terminal or timeout (at most [MaxWait])
// has passed, then returns it and its history as they are. Running out of time
// is not an error: check the returned status.
func (c *Client) Wait(ctx context.Context, id string, timeout time.Duration) (*sbruntime.Execution, []*sbruntime.Event, error) {
	path := "/api/v1/executions/" + url.PathEscape(id)
	if timeout > 0 {
		path += "?wait=" + url.QueryEscape(timeout.String())
	}
	var resp historyResponse
	err := c.do(ctx, http.MethodGet, path, nil, nil, &resp)
	return resp.Execution, resp.History, err
}

// Cancel cancels an execution that has not ended and returns it.
func (c *Client) Cancel(ctx context.Context, id string) (*sbruntime.Execution, error) {
	var resp executionResponse
	err := c.do(ctx, http.MethodPost, "/api/v1/executions/"+url.PathEscape(id)+"/cancel", nil, nil, &resp)
	return resp.Execution, err
}

// do sends in (if not nil) as JSON and decodes a 2xx response into out (if not nil).
func (c *Client) do(ctx context.Context, method, path string, hdr http.Header, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.BaseURL, "/")+path, body)
	if err != nil {
		return err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return responseError(resp)
	}
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decode response: %w", method, req.URL.Path, err)
	}
	return nil
}

// responseError turns a non-2xx response into an *Error carrying the server's
// message, or the status line and body when the body is not an API error.
func responseError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var e errorResponse
	if json.Unmarshal(b, &e) == nil && e.Error != "" {
		return &Error{Status: resp.StatusCode, Message: e.Error}
	}
	msg := resp.Status
	if s := strings.TrimSpace(string(b)); s != "" {
		msg += ": " + s
	}
	return &Error{Status: resp.StatusCode, Message: msg}
}
