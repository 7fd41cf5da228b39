package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"testing"

	"github.com/starbook/starbook"
	"github.com/starbook/starbook/api"
)

// TestAuditPagesBack: GET /api/v1/audit?before= pages back through a real
// store's audit log, newest to oldest, a page of limit at a time, each page
// oldest first with the cursor of the one before it; after and before
// together are refused.
func TestAuditPagesBack(t *testing.T) {
	svc, _, h := startRunbookPage(t)
	ctx := context.Background()
	const n = 25
	for i := range n {
		if err := svc.RecordAudit(ctx, &starbook.AuditRecord{Actor: fmt.Sprint("u", i), Action: "execution.start", Outcome: starbook.AuditOK}); err != nil {
			t.Fatal(err)
		}
	}
	get := func(query string) api.AuditResponse {
		t.Helper()
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", "/api/v1/audit?"+query, nil))
		if w.Code != 200 {
			t.Fatalf("audit?%s: %d %s", query, w.Code, w.Body)
		}
		var resp api.AuditResponse
		if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
			t.Fatal(err)
		}
		return resp
	}
	var actors []string
	page := get("limit=10")
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("paging back does not end")
		}
		var these []string
		for _, r := range page.Audit {
			these = append(these, r.Actor)
		}
		actors = append(these, actors...)
		if page.Prev == "" {
			break
		}
		page = get("limit=10&before=" + page.Prev)
	}
	if len(actors) != n {
		t.Fatalf("paged back through %d records, want %d: %v", len(actors), n, actors)
	}
	for i, a := range actors {
		if a != fmt.Sprint("u", i) {
			t.Fatalf("record %d is %s: %v", i, a, actors)
		}
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/api/v1/audit?after=A&before=B", nil))
	if w.Code != 400 {
		t.Fatalf("after and before: %d", w.Code)
	}
}
