package main

import (
	"net/http"

	"github.com/starbook/starbook/slackapp"
	"github.com/starbook/starbook/sso"
	"github.com/starbook/starbook/ui"
)

// routeMux is an http.ServeMux that remembers every pattern registered on
// it, so that a test can hold the documented routes against the served ones.
type routeMux struct {
	*http.ServeMux
	patterns []string
}

// Handle registers h for pattern.
func (m *routeMux) Handle(pattern string, h http.Handler) {
	m.patterns = append(m.patterns, pattern)
	m.ServeMux.Handle(pattern, h)
}

// HandleFunc registers fn for pattern.
func (m *routeMux) HandleFunc(pattern string, fn func(http.ResponseWriter, *http.Request)) {
	m.Handle(pattern, http.HandlerFunc(fn))
}

// nodeMux is the node's HTTP server: metrics, the web UI, single sign-on's
// /auth/ routes, Slack's routes when slack is configured (nil: not), and
// the API under everything else.
func nodeMux(metrics http.Handler, signIn *sso.RelyingParty, apiHandler http.Handler, slack *slackapp.App) *routeMux {
	mux := &routeMux{ServeMux: http.NewServeMux()}
	mux.Handle("GET /metrics", metrics)
	ui.Mount(mux)
	sso.Mount(mux, signIn)
	if slack != nil {
		mux.Handle("POST "+slackapp.InteractionsPath, slack)
		mux.Handle("POST "+slackapp.CommandsPath, slack)
	}
	mux.Handle("/", apiHandler)
	return mux
}
