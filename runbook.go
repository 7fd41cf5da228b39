package starbook

import (
	"encoding/json"
	"sort"
	"strings"
	"time"
)

// RunbookVersion describes one stored runbook version, as apply answers it.
type RunbookVersion struct {
	Name      string    `json:"name"`
	Version   string    `json:"version"`
	Files     []string  `json:"files"`
	CreatedAt time.Time `json:"created_at"`
	Unchanged bool      `json:"unchanged,omitempty"` // apply found this version already current
	// Warnings are what apply's check found that does not refuse it, e.g. a
	// secret not set on the node ("file:line:col: warning: ...").
	Warnings []string `json:"warnings,omitempty"`
	// Rollout is the canary rollout an apply --canary started of this
	// version; nil for a plain apply (or a runbook that had no current
	// version to be a canary of).
	Rollout *Rollout `json:"rollout,omitempty"`
	// Pause is the runbook's pause while it is paused (listings only).
	Pause *PauseState `json:"pause,omitempty"`
	// Libraries names the release of each library ("@std", "@team") whose
	// modules the version holds, pinned at apply (runtime.Bundle.Libraries).
	Libraries map[string]string `json:"libraries,omitempty"`
}

// RunbookInfo is a runbook and its stored versions, newest first.
type RunbookInfo struct {
	Name     string               `json:"name"`
	Current  string               `json:"current"`
	Versions []RunbookVersionInfo `json:"versions"`
	// Pause is the runbook's pause while it is paused.
	Pause *PauseState `json:"pause,omitempty"`
}

// RunbookVersionInfo describes one stored version.
type RunbookVersionInfo struct {
	Version   string          `json:"version"`
	CreatedAt time.Time       `json:"created_at"`
	Files     []string        `json:"files"`
	Current   bool            `json:"current,omitempty"`
	Triggers  json.RawMessage `json:"triggers,omitempty"`
	// Libraries names the release of each library whose modules the
	// version holds ("@std": "v1.4.0+3f2a9c01b7de").
	Libraries map[string]string `json:"libraries,omitempty"`
}

// LibrariesString names libraries (library -> release) in one line, sorted:
// "@std v1.4.0+3f2a9c01b7de, @team 5e1b0c2a9f3d"; "" for none.
func LibrariesString(libraries map[string]string) string {
	names := make([]string, 0, len(libraries))
	for lib := range libraries {
		names = append(names, lib)
	}
	sort.Strings(names)
	for i, lib := range names {
		names[i] = lib + " " + libraries[lib]
	}
	return strings.Join(names, ", ")
}
