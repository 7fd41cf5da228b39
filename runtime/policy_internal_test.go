package runtime

import (
	"context"
	"strings"
	"testing"
)

// TestHistorySoFarKeepsPositionOrder: the loaded history and the events a
// run records since, in or out of order (fan_out items end in any order),
// come out in position order at every call, and a caller's copy does not
// change under it.
func TestHistorySoFarKeepsPositionOrder(t *testing.T) {
	ev := func(pos string) *Event { return &Event{Position: pos} }
	rs := &run{policy: nopPolicy{}, history: map[string]*Event{"2": ev("2"), "1": ev("1"), "10": ev("10")}}
	positions := func(evs []*Event) string {
		var ps []string
		for _, e := range evs {
			ps = append(ps, e.Position)
		}
		return strings.Join(ps, " ")
	}
	if got := positions(rs.historySoFar()); got != "1 2 10" {
		t.Fatalf("loaded history: %s", got)
	}
	first := rs.historySoFar()
	for _, step := range []struct{ pos, want string }{
		{"11", "1 2 10 11"},
		{"12/1/0", "1 2 10 11 12/1/0"},
		{"12/0/0", "1 2 10 11 12/0/0 12/1/0"},
		{"3", "1 2 3 10 11 12/0/0 12/1/0"},
		{"13", "1 2 3 10 11 12/0/0 12/1/0 13"},
	} {
		rs.remember(ev(step.pos))
		if got := positions(rs.historySoFar()); got != step.want {
			t.Errorf("after %s: %s, want %s", step.pos, got, step.want)
		}
	}
	if got := positions(first); got != "1 2 10" {
		t.Errorf("an earlier copy changed: %s", got)
	}
}

type nopPolicy struct{}

func (nopPolicy) Decide(ctx context.Context, e *Execution, pos string, eff Effect, history []*Event) error {
	return nil
}
