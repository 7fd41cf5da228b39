package api

import (
	"fmt"
	"net/http"
	"path"
	"strings"
	"unicode/utf8"

	sbruntime "github.com/starbook/starbook/runtime"
	"github.com/starbook/starbook/triggers"
)

// Limits are the request body caps of the API, in bytes. Zero fields take
// the defaults (MaxBody, MaxRunbooksBody, MaxAlertmanagerBody).
type Limits struct {
	Body             int64 // any /api/v1 request but an apply
	RunbooksBody     int64 // POST /api/v1/runbooks
	AlertmanagerBody int64 // POST /hooks/alertmanager
}

// MaxAlertmanagerBody is the default cap of an Alertmanager notification.
const MaxAlertmanagerBody = triggers.MaxAlertmanagerBody

// MaxBodyCap is the largest body cap accepted: a request's content is stored
// in one etcd value, and etcd refuses requests over 1.5 MiB (the Alertmanager
// payload is the exception: it is split into many executions).
const MaxBodyCap = 1 << 20

func (l Limits) withDefaults() Limits {
	if l.Body <= 0 {
		l.Body = MaxBody
	}
	if l.RunbooksBody <= 0 {
		l.RunbooksBody = MaxRunbooksBody
	}
	if l.AlertmanagerBody <= 0 {
		l.AlertmanagerBody = MaxAlertmanagerBody
	}
	return l
}

// Validate refuses caps that cannot work.
func (l Limits) Validate() error {
	if l.Body > MaxBodyCap {
		return fmt.Errorf("max body %d bytes is over %d: an execution's input must fit one etcd request", l.Body, MaxBodyCap)
	}
	if l.RunbooksBody > 64<<20 || l.AlertmanagerBody > 64<<20 {
		return fmt.Errorf("body caps are at most 64 MiB")
	}
	return nil
}

// WithLimits sets the request body caps.
func WithLimits(l Limits) Option {
	return func(h *handler) { h.limits = l.withDefaults() }
}

// WithScrubber scrubs the secrets s knows from every request body the API
// and the hooks receive, before anything is decoded or stored: a runbook
// that sends a secret back to its node (as a signal, say) stores its
// placeholder, not its value.
func WithScrubber(s *sbruntime.Scrubber) Option {
	return func(h *handler) { h.scrubber = s }
}

// validID accepts what can be an execution or audit record id: 1 to 64
// letters, digits, '-' or '_'. Anything else cannot name a stored record and
// must not reach a storage key.
func validID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// validVersion accepts a runbook version (a content hash) or "current".
func validVersion(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z') {
			return false
		}
	}
	return true
}

// checkPath refuses path values that cannot name anything stored: an id
// that is not one, a name that is "." or "..", holds a slash, a control
// character or invalid UTF-8, a position that is not numbers and slashes.
func checkPath(r *http.Request) error {
	if id := r.PathValue("id"); id != "" && !validID(id) {
		return badRequest(fmt.Sprintf("invalid execution id %q: want letters, digits, '-' or '_'", id))
	}
	for _, key := range []string{"name", "version"} {
		if v := r.PathValue(key); v != "" && !validSegment(v) {
			return badRequest(fmt.Sprintf("invalid %s %q in the path", key, v))
		}
	}
	if pos := r.PathValue("position"); pos != "" && !validPosition(pos) {
		return badRequest(fmt.Sprintf("invalid position %q: want numbers separated by '/', such as 4/0/2", pos))
	}
	return nil
}

func validSegment(s string) bool {
	if s == "." || s == ".." || len(s) > 256 || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == '/' || r == '\\' {
			return false
		}
	}
	return true
}

func validPosition(s string) bool {
	if len(s) > 256 {
		return false
	}
	for _, seg := range strings.Split(s, "/") {
		if seg == "" {
			return false
		}
		for i := 0; i < len(seg); i++ {
			if seg[i] < '0' || seg[i] > '9' {
				return false
			}
		}
	}
	return true
}

// canonical reports whether a path has no ".", ".." or empty segments: the
// mux would redirect such a path to another route.
func canonical(p string) bool {
	c := path.Clean(p)
	if strings.HasSuffix(p, "/") && c != "/" {
		c += "/"
	}
	return c == p
}

// checkRunbookName refuses a name that cannot be a runbook's.
func checkRunbookName(name string) error {
	if !sbruntime.ValidRunbookName(name) {
		return badRequest(fmt.Sprintf("invalid runbook name %q: want 1-100 lower-case letters, digits, '-' or '_'", name))
	}
	return nil
}

// checkUTF8 refuses text that is not UTF-8: JSON decoding would replace the
// bad bytes silently and store something the caller did not send.
func checkUTF8(what string, b []byte) error {
	if !utf8.Valid(b) {
		return badRequest(what + " is not valid UTF-8")
	}
	return nil
}
