package runtime_test

import (
	"strings"
	"testing"

	sbruntime "github.com/starbook/starbook/runtime"
)

// TestEffective: an attempt replays the latest attempt's event at each
// position, keeps earlier attempts' successful events and voids their
// failed ones (a failed fan_out item and the fan_out around it included).
func TestEffective(t *testing.T) {
	ok := func(pos string, attempt int) *sbruntime.Event {
		return &sbruntime.Event{Position: pos, Kind: "call", Result: []byte(`1`), Attempt: attempt}
	}
	bad := func(pos string, attempt int) *sbruntime.Event {
		return &sbruntime.Event{Position: pos, Kind: "call", Error: "boom", Attempt: attempt}
	}
	history := []*sbruntime.Event{ok("1", 0), bad("2", 0), ok("2/0/1", 0), bad("2/1/1", 0), bad("3", 2), ok("2", 2)}
	for _, tc := range []struct {
		attempt int
		want    string // position:attempt:ok|failed, in position order
		rerun   string
	}{
		{1, "1:0:ok 2:2:ok 2/0/1:0:ok 2/1/1:0:failed 3:2:failed", ""},
		{2, "1:0:ok 2:2:ok 2/0/1:0:ok 3:2:failed", "2/1/1"},
		{3, "1:0:ok 2:2:ok 2/0/1:0:ok", "2/1/1,3"},
	} {
		var got []string
		for _, ev := range sbruntime.EffectiveList(history, tc.attempt) {
			st := "ok"
			if ev.Failed() {
				st = "failed"
			}
			got = append(got, ev.Position+":"+itoa(ev.Attempt)+":"+st)
		}
		if g := strings.Join(got, " "); g != tc.want {
			t.Errorf("attempt %d replays %s, want %s", tc.attempt, g, tc.want)
		}
		if g := strings.Join(sbruntime.Rerun(history, tc.attempt), ","); g != tc.rerun {
			t.Errorf("attempt %d reruns %q, want %q", tc.attempt, g, tc.rerun)
		}
	}
	if sbruntime.Compensated(history) || !sbruntime.Compensated(append(history, &sbruntime.Event{Position: "4", Kind: sbruntime.KindUndo})) {
		t.Error("Compensated: want true only with an undo event")
	}
}

func itoa(n int) string { return string(rune('0' + n)) }
