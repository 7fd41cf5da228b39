package api

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/starbook/starbook"
)

// snapshotRoutes serves GET /api/v1/snapshot when the service can stream one.
func (h *handler) snapshotRoutes() {
	if _, ok := h.svc.(starbook.Snapshotter); ok {
		h.route("GET /api/v1/snapshot", h.snapshot)
	}
}

// snapshot streams the store's snapshot. An error before the first byte is
// an ordinary JSON error; after it, the status is sent, so the connection
// is cut instead: the client sees a broken body, never a short file that
// looks whole (and the trailer check would catch one anyway).
func (h *handler) snapshot(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="starbook.snapshot"`)
	cw := &countingWriter{w: w}
	n, err := h.svc.(starbook.Snapshotter).Snapshot(r.Context(), cw)
	if err != nil {
		if cw.n == 0 {
			w.Header().Del("Content-Disposition")
			return err
		}
		h.logger.Warn("snapshot stream cut", "bytes", n, "err", err)
		panic(http.ErrAbortHandler)
	}
	who := "anonymous"
	if p, ok := principal(r); ok {
		who = p.Name
	}
	h.logger.Info("snapshot served", "bytes", n, "by", who)
	return nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// Snapshot streams the node's snapshot of the whole store to w and returns
// the bytes written. It needs the admin role. The client's own timeout does
// not apply (a large store takes a while): ctx bounds it. It does not check
// the trailer: snapshot.WriteFile does.
func (c *Client) Snapshot(ctx context.Context, w io.Writer) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(c.BaseURL, "/")+"/api/v1/snapshot", nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Accept", "application/octet-stream")
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
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, responseError(resp)
	}
	n, err := io.Copy(w, resp.Body)
	if err != nil {
		return n, fmt.Errorf("snapshot download after %d bytes: %w", n, err)
	}
	return n, nil
}
