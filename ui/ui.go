// Package ui is the node's web UI: plain HTML, CSS and JavaScript embedded in
// the binary and served at /ui/. The pages read the JSON API (executions,
// approvals, runbooks, schedules, SLOs, audit, cluster, logs) and act through
// it (run, cancel, redrive, approve, pause); nothing is fetched from elsewhere
// and nothing is built at run time. app.js holds the helpers, the router and
// the executions, approvals, dead letters and cluster pages; form.js the run
// form; runbook.js a runbook's page; pages.js Schedules, SLOs, Audit and an
// execution's actions. Every list reads one page of the API.
package ui

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed assets
var assets embed.FS

// Prefix is where the UI is served.
const Prefix = "/ui/"

// Handler serves the UI's files under Prefix.
func Handler() http.Handler {
	sub, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	files := http.StripPrefix(Prefix, http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self'; img-src 'self' data:")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})
}

// Mount adds the UI to mux (an *http.ServeMux, or anything that registers
// handlers as one does) at Prefix, and a redirect from / to it.
func Mount(mux interface{ Handle(string, http.Handler) }) {
	mux.Handle("GET "+Prefix, Handler())
	mux.Handle("GET /{$}", http.RedirectHandler(Prefix, http.StatusFound))
}
