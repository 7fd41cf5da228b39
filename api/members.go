package api

import (
	"context"
	"net/http"
	"net/url"

	"github.com/starbook/starbook"
)

// Members administers the etcd members of a cluster of embedded members
// (serve --initial-cluster). cluster.Membership implements it.
type Members interface {
	// Members lists the members and whether each answers.
	Members(ctx context.Context) ([]starbook.Member, error)
	// AddMember adds a member and returns the flags it must start with.
	AddMember(ctx context.Context, name, peerURL string) (*starbook.MemberAdded, error)
	// RemoveMember removes the member named name; it refuses the last one.
	RemoveMember(ctx context.Context, name string) error
}

// WithMembers serves the membership of the node's etcd cluster:
// GET /api/v1/cluster/members, POST /api/v1/cluster/members (admin) and
// DELETE /api/v1/cluster/members/{name} (admin); GET /api/v1/cluster lists
// the members too.
func WithMembers(m Members) Option {
	return func(h *handler) {
		h.members = m
		h.route("GET /api/v1/cluster/members", h.listMembers)
		h.route("POST /api/v1/cluster/members", h.addMember)
		h.route("DELETE /api/v1/cluster/members/{name}", h.removeMember)
	}
}

// AddMemberRequest is the body of POST /api/v1/cluster/members.
type AddMemberRequest struct {
	Name    string `json:"name"`
	PeerURL string `json:"peer_url"`
}

func (h *handler) listMembers(w http.ResponseWriter, r *http.Request) error {
	ms, err := h.members.Members(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"members": nonNil(ms)})
	return nil
}

func (h *handler) addMember(w http.ResponseWriter, r *http.Request) error {
	var req AddMemberRequest
	if err := h.decodeBody(w, r, h.limits.Body, &req, false); err != nil {
		return err
	}
	if req.Name == "" || req.PeerURL == "" {
		return badRequest("name and peer_url are required")
	}
	added, err := h.members.AddMember(r.Context(), req.Name, req.PeerURL)
	if err != nil {
		return err
	}
	note(r).detail = "member " + req.Name + " " + req.PeerURL
	writeJSON(w, http.StatusCreated, added)
	return nil
}

func (h *handler) removeMember(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	if err := h.members.RemoveMember(r.Context(), name); err != nil {
		return err
	}
	note(r).detail = "member " + name
	writeJSON(w, http.StatusOK, map[string]string{"removed": name})
	return nil
}

// Members lists the etcd members of the node's cluster of embedded members.
func (c *Client) Members(ctx context.Context) ([]starbook.Member, error) {
	var out struct {
		Members []starbook.Member `json:"members"`
	}
	if err := c.do(ctx, http.MethodGet, "/api/v1/cluster/members", nil, nil, &out); err != nil {
		return nil, err
	}
	return out.Members, nil
}

// AddMember adds an etcd member named name at peerURL (admin role) and
// returns the flags it must start with.
func (c *Client) AddMember(ctx context.Context, name, peerURL string) (*starbook.MemberAdded, error) {
	var out starbook.MemberAdded
	if err := c.do(ctx, http.MethodPost, "/api/v1/cluster/members", nil, AddMemberRequest{Name: name, PeerURL: peerURL}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RemoveMember removes the etcd member named name (admin role).
func (c *Client) RemoveMember(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/api/v1/cluster/members/"+url.PathEscape(name), nil, nil, nil)
}
