package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/starbook/starbook"
	sbruntime "github.com/starbook/starbook/runtime"
)

// BundleResponse is GET /api/v1/runbooks/{name}/versions/{version}.
type BundleResponse struct {
	Name      string            `json:"name"`
	Version   string            `json:"version"`
	Main      string            `json:"main"`
	Files     map[string]string `json:"files"`
	CreatedAt time.Time         `json:"created_at"`
	// Libraries names the release of each library whose modules Files
	// holds ("@std": "v1.4.0+3f2a9c01b7de"), pinned at apply.
	Libraries map[string]string `json:"libraries,omitempty"`
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
	if _, ok := h.svc.(starbook.LogService); ok {
		h.route("GET /api/v1/executions/{id}/logs", h.logs)
	}
	if _, ok := h.svc.(starbook.RunbookService); ok {
		h.route("GET /api/v1/runbooks/{name}", h.runbook)
		h.route("GET /api/v1/runbooks/{name}/versions/{version}", h.runbookVersion)
	}
}

func (h *handler) logs(w http.ResponseWriter, r *http.Request) error {
	ls := h.svc.(starbook.LogService)
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

func (h *handler) runbookVersion(w http.ResponseWriter, r *http.Request) error {
	b, created, err := h.svc.(starbook.RunbookService).RunbookVersion(r.Context(), r.PathValue("name"), r.PathValue("version"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, BundleResponse{Name: b.Name, Version: b.Version, Main: b.Main, Files: b.Files, CreatedAt: created, Libraries: b.Libraries})
	return nil
}

// executionDetail adds an execution's pending waits and its timeline to the
// response of GET /api/v1/executions/{id}.
func (h *handler) executionDetail(r *http.Request, e *sbruntime.Execution, history []*sbruntime.Event) (waits []*sbruntime.Wait, timeline []TimelineRow) {
	if ws, ok := h.svc.(starbook.WaitService); ok && !e.Status.Terminal() {
		var err error
		if waits, err = ws.ExecutionWaits(r.Context(), e.ID); err != nil {
			h.logger.Warn("read waits", "execution", e.ID, "err", err)
		}
	}
	return waits, Timeline(e, history, waits, time.Now())
}
