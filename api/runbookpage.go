package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/starbook/starbook"
	"github.com/starbook/starbook/schema"
	"github.com/starbook/starbook/triggers"
)

// RunbookResponse is GET /api/v1/runbooks/{name}: the runbook and its
// stored versions (starbook.RunbookInfo), and what the web UI's runbook page
// shows of its current version.
type RunbookResponse struct {
	*starbook.RunbookInfo
	// Description is the comment that opens the main file.
	Description string `json:"description"`
	Main        string `json:"main"`
	// Files are every file of the current version (name -> source), the
	// library modules it loads ("@std/k8s.star") included.
	Files map[string]string `json:"files"`
	// Libraries names the release of each library whose modules the
	// current version holds ("@std": "v1.4.0+3f2a9c01b7de"), pinned at
	// apply; the runbook page shows it in one line.
	Libraries map[string]string `json:"libraries,omitempty"`
	// InputSchema is the current version's input schema; null for none.
	InputSchema   json.RawMessage `json:"input_schema,omitempty"`
	InputSchemaAt string          `json:"input_schema_at,omitempty"`
	// TriggersInWords describe its triggers, one each (triggers.Set.Words);
	// empty when it starts only by hand.
	TriggersInWords []string `json:"triggers_in_words"`
	// Schedules are its cron triggers with their next fires.
	Schedules []ScheduleFires `json:"schedules"`
}

// ScheduleFires is one cron trigger and its next ticks, in its zone.
type ScheduleFires struct {
	Spec  string      `json:"spec"`
	Zone  string      `json:"zone"`
	Words string      `json:"words"`
	Next  []time.Time `json:"next"`
}

// FormResponse is GET /api/v1/runbooks/{name}/form: the form the current
// version's input schema maps to (schema.FormOf), the one the web UI's run
// form and Slack's run modal are built from.
type FormResponse struct {
	Runbook string       `json:"runbook"`
	Version string       `json:"version"`
	Form    *schema.Form `json:"form"`
	// Schema is the input schema the form came from; null for none (the
	// form then asks for JSON text).
	Schema json.RawMessage `json:"schema,omitempty"`
}

// Next fires on the runbook page: how many by default (?fires=) and at most.
const (
	DefaultNextFires = 5
	MaxNextFires     = 100
)

// runbookPageRoutes registers the routes of the runbook page and the run
// form, when svc describes runbooks; GET /api/v1/runbooks/{name} itself is
// registered with the other observe routes.
func (h *handler) runbookPageRoutes() {
	if _, ok := h.svc.(starbook.RunbookService); ok {
		h.route("GET /api/v1/runbooks/{name}/form", h.runbookForm)
	}
	if _, ok := h.svc.(starbook.ScheduleService); ok {
		h.route("GET /api/v1/schedules", h.schedules)
	}
}

func (h *handler) runbook(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	if err := checkRunbookName(name); err != nil {
		return err
	}
	fires := DefaultNextFires
	if s := r.URL.Query().Get("fires"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 || n > MaxNextFires {
			return badRequest(fmt.Sprintf("invalid fires %q: want an integer from 0 to %d", s, MaxNextFires))
		}
		fires = n
	}
	rs := h.svc.(starbook.RunbookService)
	info, err := rs.Runbook(r.Context(), name)
	if err != nil {
		return err
	}
	// The version info names current, not whatever is current a moment later.
	b, _, err := rs.RunbookVersion(r.Context(), name, info.Current)
	if err != nil {
		return err
	}
	set, err := triggers.DecodeSet(b.Triggers)
	if err != nil {
		return fmt.Errorf("runbook %s@%s: %w", name, b.Version, err)
	}
	resp := RunbookResponse{RunbookInfo: info, Description: b.Description(), Main: b.Main, Files: b.Files, Libraries: b.Libraries,
		InputSchema: b.InputSchema, InputSchemaAt: b.InputSchemaAt,
		TriggersInWords: nonNil(set.Words()), Schedules: []ScheduleFires{}}
	now := time.Now()
	for _, c := range set.Crons {
		resp.Schedules = append(resp.Schedules, ScheduleFires{Spec: c.Schedule(), Zone: c.Zone(), Words: c.Words(),
			Next: nonNil(c.NextFires(now, fires))})
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

func (h *handler) runbookForm(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	if err := checkRunbookName(name); err != nil {
		return err
	}
	b, _, err := h.svc.(starbook.RunbookService).RunbookVersion(r.Context(), name, "current")
	if err != nil {
		return err
	}
	form, err := schema.FormOf(b.InputSchema)
	if err != nil {
		// Apply compiled the schema: failing now means the record is damaged.
		return fmt.Errorf("form of %s@%s: %w", name, b.Version, err)
	}
	writeJSON(w, http.StatusOK, FormResponse{Runbook: name, Version: b.Version, Form: form, Schema: b.InputSchema})
	return nil
}

// SchedulesResponse is GET /api/v1/schedules: every cron trigger of every
// runbook, by runbook.
type SchedulesResponse struct {
	At        time.Time           `json:"at"` // next ticks are after this
	Schedules []starbook.Schedule `json:"schedules"`
}

func (h *handler) schedules(w http.ResponseWriter, r *http.Request) error {
	now := time.Now()
	list, err := h.svc.(starbook.ScheduleService).Schedules(r.Context(), now)
	if err != nil {
		return err
	}
	if ps, ok := h.svc.(starbook.PauseService); ok {
		pauses, err := ps.Pauses(r.Context())
		if err != nil {
			return err
		}
		byRunbook := map[string]*starbook.PauseState{}
		for i := range pauses {
			if pauses[i].Paused {
				byRunbook[pauses[i].Runbook] = &pauses[i]
			}
		}
		for i := range list {
			if p := byRunbook[list[i].Runbook]; p != nil {
				list[i].Pause = p
			} else if p := byRunbook[starbook.AllRunbooks]; p != nil {
				all := *p
				all.Runbook, all.All = list[i].Runbook, true
				list[i].Pause = &all
			}
		}
	}
	writeJSON(w, http.StatusOK, SchedulesResponse{At: now.UTC(), Schedules: nonNil(list)})
	return nil
}
