package node_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	sbruntime "github.com/starbook/starbook/runtime"
)

// TestTwoPersonRuleForAPIStarts: a run started through the API by an
// authenticated caller (trigger "api" with the token's name as source)
// names that caller as the requester, whose own approval does not count
// when two are required.
func TestTwoPersonRuleForAPIStarts(t *testing.T) {
	tn := startTestNode(t, t.TempDir())
	tn.apply(t, map[string]string{"twoperson.star": fmt.Sprintf(approvalRunbook, `approvers = ["ops", "bob", "carol"], required = 2`)})
	e, err := tn.svc.Start(context.Background(), "twoperson", json.RawMessage(`{"pod": "web-1"}`),
		sbruntime.Trigger{Type: "api", Source: "ops"})
	if err != nil {
		t.Fatal(err)
	}
	w := awaitPendingWait(t, tn.svc.Store, e.ID)
	if _, err := decide(tn.svc.Store, w, "ops", true); !errors.Is(err, sbruntime.ErrForbidden) || !strings.Contains(err.Error(), "two-person rule") {
		t.Fatalf("the API caller approving their own run: %v", err)
	}
	if _, err := decide(tn.svc.Store, w, "bob", true); err != nil {
		t.Fatal(err)
	}
	if st, err := decide(tn.svc.Store, w, "carol", true); err != nil || !st.Resolved || !st.Result.Approved {
		t.Fatalf("second approver: %+v, %v", st, err)
	}
}
