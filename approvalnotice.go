package starbook

import (
	"context"
	"errors"
	"time"

	sbruntime "github.com/starbook/starbook/runtime"
)

// ChatUser is what a chat directory knows about a user.
type ChatUser struct {
	ID    string // Slack user id
	Name  string // user name
	Email string
}

// ChatDirectory resolves approver entries that name Slack users and user
// groups (slackapp implements it; cluster's Decide uses it). Without one,
// such entries match only the same id.
type ChatDirectory interface {
	// GroupMembers returns the user ids of a user group ("@handle" or "S…").
	GroupMembers(ctx context.Context, group string) ([]string, error)
	// User returns what is known of a Slack user id.
	User(ctx context.Context, id string) (ChatUser, error)
}

// ErrNoChannel is returned by an ApprovalNotifier that has nowhere to post
// a request; the request is then left unposted.
var ErrNoChannel = errors.New("no channel to post the approval request to")

// ApprovalNotice is an approval request as a notifier shows it: pending,
// decided, timed out, escalated elsewhere or ended with its execution.
type ApprovalNotice struct {
	Execution string
	Position  string
	Request   *sbruntime.ApprovalRequest
	Since     time.Time
	Deadline  *time.Time
	Approvals []sbruntime.ApprovalDecision // received so far
	Outcome   *sbruntime.ApprovalResult    // set once decided or timed out
	Error     string                       // the recorded error (on_timeout "fail")
	// EscalatedTo is the request that superseded this post after its deadline.
	EscalatedTo *sbruntime.ApprovalRequest
	Ended       bool // the execution ended without a decision
}

// ApprovalNotifier posts approval requests where people answer them (Slack)
// and updates each post when it is answered. Posting is an effect outside
// any script step: the store drives it from the wait records, at least once
// across crashes (a crash between a post and its record posts again).
type ApprovalNotifier interface {
	Post(ctx context.Context, n *ApprovalNotice) (sbruntime.MessageRef, error)
	Update(ctx context.Context, ref sbruntime.MessageRef, n *ApprovalNotice) error
}
