package api

import (
	"context"
	"net/http"

	"github.com/starbook/starbook"
)

// storeRoutes serves GET /api/v1/store (the store's space) and POST
// /api/v1/store/free (admin: compact, defragment, disarm) when the service
// keeps storage.
func (h *handler) storeRoutes() {
	if _, ok := h.svc.(starbook.StorageKeeper); ok {
		h.route("GET /api/v1/store", h.storeSpace)
		h.route("POST /api/v1/store/free", h.freeStore)
	}
}

func (h *handler) storeSpace(w http.ResponseWriter, r *http.Request) error {
	sp, err := h.svc.(starbook.StorageKeeper).StoreSpace(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, sp)
	return nil
}

// freeRequest is POST /api/v1/store/free's body: empty or {}.
type freeRequest struct{}

func (h *handler) freeStore(w http.ResponseWriter, r *http.Request) error {
	var req freeRequest
	if err := h.decodeBody(w, r, h.limits.Body, &req, true); err != nil {
		return err
	}
	sp, err := h.svc.(starbook.StorageKeeper).FreeStore(r.Context())
	if err != nil {
		return err
	}
	who := "anonymous"
	if p, ok := principal(r); ok {
		who = p.Name
	}
	h.logger.Info("store freed", "by", who, "db_bytes", sp.DBBytes, "quota_bytes", sp.Quota, "refusing", sp.Refusal != "")
	writeJSON(w, http.StatusOK, sp)
	return nil
}

// StoreSpace returns the store's space as the node reads it now.
func (c *Client) StoreSpace(ctx context.Context) (*starbook.StoreSpace, error) {
	var out starbook.StoreSpace
	if err := c.do(ctx, http.MethodGet, "/api/v1/store", nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// FreeStore compacts etcd's history, defragments its members and disarms
// the NOSPACE alarm (admin). It blocks each member while it defragments it.
func (c *Client) FreeStore(ctx context.Context) (*starbook.StoreSpace, error) {
	var out starbook.StoreSpace
	if err := c.do(ctx, http.MethodPost, "/api/v1/store/free", nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
