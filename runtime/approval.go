package runtime

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.starlark.net/starlark"
)

// Approval decisions and the ways they arrive.
const (
	DecisionApprove = "approve"
	DecisionReject  = "reject"
	DecisionTimeout = "timeout"

	ViaSlack   = "slack"
	ViaCLI     = "cli"
	ViaAPI     = "api"
	ViaTimeout = "timeout"
)

// What an approval wait does when its deadline passes (ApprovalRequest.OnTimeout).
const (
	OnTimeoutReject   = "reject"
	OnTimeoutApprove  = "approve"
	OnTimeoutFail     = "fail"
	OnTimeoutEscalate = "escalate"
)

var (
	// ErrConflict reports a request that the current state refuses: an
	// approval already decided, several pending approvals where one was meant.
	ErrConflict = errors.New("conflict")
	// ErrForbidden reports a user who may not make the decision asked for.
	ErrForbidden = errors.New("forbidden")
)

// ApprovalRequest is the Detail of an approval wait: what is asked, of whom,
// and what the deadline does. Escalation rewrites Approvers, Channel and
// Round; Notified is set once the request was posted for the current Round.
type ApprovalRequest struct {
	Message   string   `json:"message"`
	Approvers []string `json:"approvers,omitempty"` // empty: anyone
	Channel   string   `json:"channel,omitempty"`
	Required  int      `json:"required"`
	Runbook   string   `json:"runbook"`
	// Requester started the run by hand: with Required >= 2 their own
	// approval does not count (two-person rule).
	Requester  string      `json:"requester,omitempty"`
	Timeout    string      `json:"timeout,omitempty"` // as written, for people
	OnTimeout  string      `json:"on_timeout"`
	Escalation *Escalation `json:"escalation,omitempty"`
	Round      int         `json:"round,omitempty"` // 0, or 1 once escalated
	Notified   *MessageRef `json:"notified,omitempty"`
}

// Escalation re-asks an approval elsewhere when the first deadline passes.
type Escalation struct {
	Channel   string        `json:"channel,omitempty"`
	Approvers []string      `json:"approvers,omitempty"`
	Timeout   time.Duration `json:"timeout"`
	Then      string        `json:"then"` // reject, approve or fail at the second deadline
}

// MessageRef locates a posted chat message (Slack: channel id and ts).
type MessageRef struct {
	Channel string `json:"channel"`
	TS      string `json:"ts"`
	Round   int    `json:"round,omitempty"`
}

// ApprovalDecision is one person's recorded decision.
type ApprovalDecision struct {
	User     string    `json:"user"`
	Decision string    `json:"decision"` // approve or reject
	Comment  string    `json:"comment,omitempty"`
	Via      string    `json:"via"`
	At       time.Time `json:"at"`
}

// ApprovalResult is what an approval wait records and wait_for_approval
// returns: the outcome, who made it, and every decision received.
type ApprovalResult struct {
	Approved  bool               `json:"approved"`
	Decision  string             `json:"decision"` // approve, reject or timeout
	By        []string           `json:"by"`
	At        time.Time          `json:"at"`
	Comment   string             `json:"comment,omitempty"`
	Via       string             `json:"via"`
	Decisions []ApprovalDecision `json:"decisions"`
}

// JSON encodes r.
func (r *ApprovalResult) JSON() json.RawMessage {
	if r.By == nil {
		r.By = []string{}
	}
	if r.Decisions == nil {
		r.Decisions = []ApprovalDecision{}
	}
	b, _ := json.Marshal(r)
	return b
}

// ApprovalTimeout is the result recorded when an approval's deadline passes
// with onTimeout "approve" or "reject".
func ApprovalTimeout(onTimeout string, at time.Time) json.RawMessage {
	r := &ApprovalResult{Approved: onTimeout == OnTimeoutApprove, Decision: DecisionTimeout, At: at.UTC(), Via: ViaTimeout}
	return r.JSON()
}

// ParseApprovalRequest decodes an approval wait's Detail.
func ParseApprovalRequest(w *Wait) (*ApprovalRequest, error) {
	var r ApprovalRequest
	if err := json.Unmarshal(w.Detail, &r); err != nil {
		return nil, err
	}
	if r.Required < 1 {
		r.Required = 1
	}
	return &r, nil
}

// IsSlackGroup reports whether an approver entry names a Slack user group:
// "@handle" or a usergroup id "S…".
func IsSlackGroup(a string) bool {
	if strings.HasPrefix(a, "@") {
		return true
	}
	return len(a) > 1 && a[0] == 'S' && isSlackID(a)
}

// IsSlackUser reports whether an approver entry is a Slack user id ("U…", "W…").
func IsSlackUser(a string) bool {
	return len(a) > 1 && (a[0] == 'U' || a[0] == 'W') && isSlackID(a)
}

// isSlackID: Slack ids are upper-case letters and digits, with digits.
func isSlackID(s string) bool {
	if len(s) < 5 {
		return false
	}
	digits := false
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9':
			digits = true
		case r < 'A' || r > 'Z':
			return false
		}
	}
	return digits
}

// JSONValue is a Starlark value with its own JSON form, so it can cross a
// checkpoint (an approval returned from main, passed to call()).
type JSONValue interface {
	starlark.Value
	JSON() json.RawMessage
}

// ExecutionFrom returns a copy of the record of th's execution, or nil
// outside one.
func ExecutionFrom(th *starlark.Thread) *Execution {
	if f := frameOf(th); f != nil {
		e := *f.run.exec
		return &e
	}
	return nil
}

// Decision is one person's answer to a pending approval. Until requests are
// authenticated (issue 8) User is whatever the caller says.
type Decision struct {
	User    string // a Slack user id for Slack, a name or email otherwise
	Approve bool
	Comment string
	Via     string // slack, cli or api
}

// ApprovalState is an approval as a decision left it.
type ApprovalState struct {
	Execution string `json:"execution"`
	Position  string `json:"position"`
	// Resolved is true when the approval is decided (by this decision, or
	// earlier for a duplicate); Result then says how.
	Resolved bool            `json:"resolved"`
	Result   *ApprovalResult `json:"result,omitempty"`
	// Approvals received so far, while the approval waits for more.
	Approvals []ApprovalDecision `json:"approvals"`
	Required  int                `json:"required"`
	// Duplicate: this user had already approved; nothing changed.
	Duplicate bool `json:"duplicate,omitempty"`
}

// ApprovalTimeoutError is the error recorded when an approval with
// on_timeout "fail" runs out of time.
func ApprovalTimeoutError(message string, d time.Duration) string {
	s, _, _ := strings.Cut(strings.TrimSpace(message), "\n")
	if len(s) > 80 {
		s = s[:77] + "..."
	}
	return "approval timed out after " + d.String() + " with no decision: " + s
}

// refusal is an error whose message is for people and which matches a
// sentinel (ErrConflict, ErrForbidden) with errors.Is.
type refusal struct {
	kind error
	msg  string
}

func (e *refusal) Error() string { return e.msg }
func (e *refusal) Unwrap() error { return e.kind }

// Conflictf returns an error matching ErrConflict with a formatted message.
func Conflictf(format string, args ...any) error {
	return &refusal{ErrConflict, fmt.Sprintf(format, args...)}
}

// Forbiddenf returns an error matching ErrForbidden with a formatted message.
func Forbiddenf(format string, args ...any) error {
	return &refusal{ErrForbidden, fmt.Sprintf(format, args...)}
}
