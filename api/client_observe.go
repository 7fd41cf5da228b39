package api

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	sbruntime "github.com/starbook/starbook/runtime"
)

// ExecutionDetail is GET /api/v1/executions/{id}: the execution, its history,
// its pending waits and its timeline.
type ExecutionDetail struct {
	Execution *sbruntime.Execution `json:"execution"`
	History   []*sbruntime.Event   `json:"history"`
	Waits     []*sbruntime.Wait    `json:"waits,omitempty"`
	Timeline  []TimelineRow        `json:"timeline,omitempty"`
	Usage     *sbruntime.Usage     `json:"usage,omitempty"` // steps, retries, HTTP calls, fan_out items, wall time
}

// ExecutionDetail returns an execution with its history, waits and timeline.
func (c *Client) ExecutionDetail(ctx context.Context, id string) (*ExecutionDetail, error) {
	var resp ExecutionDetail
	err := c.do(ctx, http.MethodGet, "/api/v1/executions/"+url.PathEscape(id), nil, nil, &resp)
	return &resp, err
}

// Logs returns the execution's log lines with Seq > after (at most
// MaxLogLines) and the seq to read on from.
func (c *Client) Logs(ctx context.Context, id string, after int64) (*LogsResponse, error) {
	var resp LogsResponse
	path := "/api/v1/executions/" + url.PathEscape(id) + "/logs?after=" + strconv.FormatInt(after, 10)
	err := c.do(ctx, http.MethodGet, path, nil, nil, &resp)
	return &resp, err
}

// FollowLogs calls fn with each log line with Seq > after as it is stored,
// until the server ends the stream (the execution ended) or ctx is done. It
// returns the seq of the last line it saw, so a caller can follow on after
// a broken connection. c.HTTP's Timeout does not apply to the stream.
func (c *Client) FollowLogs(ctx context.Context, id string, after int64, fn func(*sbruntime.LogLine) error) (int64, error) {
	u := strings.TrimRight(c.BaseURL, "/") + "/api/v1/executions/" + url.PathEscape(id) +
		"/logs?follow=1&after=" + strconv.FormatInt(after, 10)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return after, err
	}
	req.Header.Set("Accept", "application/x-ndjson")
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := http.Client{}
	if c.HTTP != nil {
		hc = *c.HTTP
		hc.Timeout = 0
	}
	resp, err := hc.Do(req)
	if err != nil {
		return after, err
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return after, responseError(resp)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		var l sbruntime.LogLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return after, fmt.Errorf("decode log line: %w", err)
		}
		if err := fn(&l); err != nil {
			return after, err
		}
		after = l.Seq
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil {
		return after, err
	}
	return after, ctx.Err()
}
