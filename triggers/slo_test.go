package triggers_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/starbook/starbook/triggers"
)

func TestSLODurations(t *testing.T) {
	for s, want := range map[string]time.Duration{
		"28d": 28 * 24 * time.Hour, "1d12h": 36 * time.Hour, "10m": 10 * time.Minute, "1h30m": 90 * time.Minute,
		"90s": 90 * time.Second, "1.5s": 1500 * time.Millisecond, "0d1h": time.Hour,
	} {
		got, err := triggers.ParseDuration(s)
		if err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", s, got, err, want)
		}
		back, err := triggers.ParseDuration(triggers.FormatDuration(got))
		if err != nil || back != got {
			t.Errorf("FormatDuration(%v) = %q does not read back (%v, %v)", got, triggers.FormatDuration(got), back, err)
		}
	}
	for d, want := range map[time.Duration]string{
		28 * 24 * time.Hour: "28d", 36 * time.Hour: "1d12h", 10 * time.Minute: "10m", time.Hour: "1h",
		90 * time.Minute: "1h30m", 90 * time.Second: "1m30s", 30 * time.Second: "30s", 1500 * time.Millisecond: "1.5s",
	} {
		if got := triggers.FormatDuration(d); got != want {
			t.Errorf("FormatDuration(%v) = %q, want %q", d, got, want)
		}
	}
	for _, s := range []string{"", "d", "xd", "-1d", "1d-", "28days", "1w"} {
		if d, err := triggers.ParseDuration(s); err == nil {
			t.Errorf("ParseDuration(%q) = %v, want an error", s, d)
		}
	}
}

// TestSLOJSON: an SLO is stored as declared and read back the same; a stored
// SLO that does not validate is refused on decode.
func TestSLOJSON(t *testing.T) {
	o, err := triggers.NewSLO(0.99, map[string]time.Duration{"p95": 10 * time.Minute, "p50": time.Minute}, 28*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	set := &triggers.Set{}
	if err := set.SetSLO(o, "a.star:1:4"); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"slo":{"success":0.99,"latency":{"p50":"1m","p95":"10m"},"window":"28d","where":"a.star:1:4"}}`
	if string(b) != want {
		t.Fatalf("stored %s\nwant   %s", b, want)
	}
	back, err := triggers.DecodeSet(b)
	if err != nil || back.SLO == nil || back.SLO.Success != 0.99 || len(back.SLO.Latency) != 2 ||
		back.SLO.Latency[1].Max != 10*time.Minute || back.SLO.Window != o.Window || !back.Empty() {
		t.Fatalf("decoded %+v, %v", back.SLO, err)
	}
	if _, err := triggers.DecodeSet([]byte(`{"slo":{"success":1.5,"window":"28d"}}`)); err == nil {
		t.Error("a stored success of 1.5 decoded")
	}
}
