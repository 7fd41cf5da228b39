package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	sbruntime "github.com/starbook/starbook/runtime"
)

// LogService is what the logs routes need; a Service that implements it
// serves GET /api/v1/executions/{id}/logs.
type LogService interface {
	// Logs returns up to limit (<= 0: all) lines with Seq > after, oldest first.
	Logs(ctx context.Context, id string, after int64, limit int) ([]*sbruntime.LogLine, error)
	// FollowLogs sends the lines with Seq > after and then new ones as they are
	// stored, until the execution has ended (nil), ctx is done or send fails.
	FollowLogs(ctx context.Context, id string, after int64, send func(*sbruntime.LogLine) error) error
}

// RunbookService is what the runbook detail routes need.
type RunbookService interface {
	// Runbook describes a runbook and its stored versions.
	Runbook(ctx context.Context, name string) (*RunbookInfo, error)
	// RunbookVersion returns a stored version ("" or "current": the current one).
	RunbookVersion(ctx context.Context, name, version string) (*sbruntime.Bundle, time.Time, error)
}

// WaitService lists one execution's pending waits (its timeline shows them).
type WaitService interface {
	ExecutionWaits(ctx context.Context, id string) ([]*sbruntime.Wait, error)
}

// RunbookInfo is a runbook and its stored versions, newest first.
type RunbookInfo struct {
	Name     string               `json:"name"`
	Current  string               `json:"current"`
	Versions []RunbookVersionInfo `json:"versions"`
}

// RunbookVersionInfo describes one stored version.
type RunbookVersionInfo struct {
	Version   string          `json:"version"`
	CreatedAt time.Time       `json:"created_at"`
	Files     []string        `json:"files"`
	Current   bool            `json:"current,omitempty"`
	Triggers  json.RawMessage `json:"triggers,omitempty"`
}

// BundleResponse is GET /api/v1/runbooks/{name}/versions/{version}.
type BundleResponse struct {
	Name      string            `json:"name"`
	Version   string            `json:"version"`
	Main      string            `json:"main"`
	Files     map[string]string `json:"files"`
	CreatedAt time.Time         `json:"created_at"`
}

// LogsResponse is GET /api/v1/executions/{id}/logs without follow: the
// lines, and the seq to pass as ?after= for the next ones.
type LogsResponse struct {
	Logs []*sbruntime.LogLine `json:"logs"`
	Next int64                `json:"next"`
}

// MaxLogLines is the most lines one GET of logs returns without follow.
const MaxLogLines = 10000

// observeRoutes registers the routes of the optional services svc implements.
func (h *handler) observeRoutes() {
	if _, ok := h.svc.(LogService); ok {
		h.route("GET /api/v1/executions/{id}/logs", h.logs)
	}
	if _, ok := h.svc.(RunbookService); ok {
		h.route("GET /api/v1/runbooks/{name}", h.runbook)
		h.route("GET /api/v1/runbooks/{name}/versions/{version}", h.runbookVersion)
	}
}

func (h *handler) logs(w http.ResponseWriter, r *http.Request) error {
	ls := h.svc.(LogService)
	id, q := r.PathValue("id"), r.URL.Query()
	var after int64
	if s := q.Get("after"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return badRequest(fmt.Sprintf("invalid after %q: want a log seq", s))
		}
		after = n
	} else if s := r.Header.Get("Last-Event-ID"); s != "" { // an EventSource reconnecting
		after, _ = strconv.ParseInt(s, 10, 64)
	}
	limit := MaxLogLines
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxLogLines {
			return badRequest(fmt.Sprintf("invalid limit %q: want an integer from 1 to %d", s, MaxLogLines))
		}
		limit = n
	}
	follow := q.Get("follow") == "1" || q.Get("follow") == "true"
	if !follow {
		lines, err := ls.Logs(r.Context(), id, after, limit)
		if err != nil {
			return err
		}
		next := after
		if len(lines) > 0 {
			next = lines[len(lines)-1].Seq
		}
		writeJSON(w, http.StatusOK, LogsResponse{Logs: nonNil(lines), Next: next})
		return nil
	}
	// Check that the execution exists while a JSON error can still be sent.
	if _, err := ls.Logs(r.Context(), id, after, 1); err != nil {
		return err
	}
	sse := strings.Contains(r.Header.Get("Accept"), "text/event-stream")
	if sse {
		w.Header().Set("Content-Type", "text/event-stream")
	} else {
		w.Header().Set("Content-Type", "application/x-ndjson")
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	_ = rc.Flush()
	err := ls.FollowLogs(r.Context(), id, after, func(l *sbruntime.LogLine) error {
		b, err := json.Marshal(l)
		if err != nil {
			return err
		}
		if sse {
			_, err = fmt.Fprintf(w, "id: %d\nevent: log\ndata: %s\n\n", l.Seq, b)
		} else {
			_, err = w.Write(append(b, '\n'))
		}
		if err != nil {
			return err
		}
		return rc.Flush()
	})
	if err != nil && r.Context().Err() == nil {
		h.logger.Warn("follow logs", "execution", id, "err", err)
		return nil // the status is sent; the stream just ends
	}
	if sse && err == nil {
		_, _ = fmt.Fprint(w, "event: end\ndata: {}\n\n")
		_ = rc.Flush()
	}
	return nil
}

func (h *handler) runbook(w http.ResponseWriter, r *http.Request) error {
	info, err := h.svc.(RunbookService).Runbook(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, info)
	return nil
}

func (h *handler) runbookVersion(w http.ResponseWriter, r *http.Request) error {
	b, created, err := h.svc.(RunbookService).RunbookVersion(r.Context(), r.PathValue("name"), r.PathValue("version"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, BundleResponse{Name: b.Name, Version: b.Version, Main: b.Main, Files: b.Files, CreatedAt: created})
	return nil
}

// executionDetail adds an execution's pending waits and its timeline to the
// response of GET /api/v1/executions/{id}.
func (h *handler) executionDetail(r *http.Request, e *sbruntime.Execution, history []*sbruntime.Event) (waits []*sbruntime.Wait, timeline []TimelineRow) {
	if ws, ok := h.svc.(WaitService); ok && !e.Status.Terminal() {
		var err error
		if waits, err = ws.ExecutionWaits(r.Context(), e.ID); err != nil {
			h.logger.Warn("read waits", "execution", e.ID, "err", err)
		}
	}
	return waits, Timeline(e, history, waits, time.Now())
}
