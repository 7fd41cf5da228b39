package triggers

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func mustCron(t *testing.T, spec, tz, catchUp string, maxCatchUp int) *CronTrigger {
	t.Helper()
	c, err := NewCron(spec, tz, catchUp, maxCatchUp)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func ticksOf(d Due) []string {
	var out []string
	for _, t := range d.Fire {
		s := t.At.UTC().Format(time.RFC3339)
		if t.Late {
			s += " late"
		}
		out = append(out, s)
	}
	return out
}

func TestNewCronRefuses(t *testing.T) {
	for _, tt := range []struct {
		spec, tz, catchUp string
		max               int
		want              string
	}{
		{"*/5 * * *", "", "", 0, "expected exactly 5 fields"},
		{"61 * * * *", "", "", 0, "above maximum"},
		{"@fortnightly", "", "", 0, "unrecognized descriptor"},
		{"0 9 * * *", "Mars/Olympus", "", 0, `unknown time zone "Mars/Olympus"`},
		{"0 9 * * *", "Local", "", 0, "unknown time zone"},
		{"CRON_TZ=Europe/Paris 0 9 * * *", "UTC", "", 0, "not both"},
		{"CRON_TZ=Nowhere/Land 0 9 * * *", "", "", 0, `unknown time zone "Nowhere/Land"`},
		{"CRON_TZ=UTC", "", "", 0, "followed by a schedule"}, // robfig/cron panics on this one
		{"TZ=", "", "", 0, "followed by a schedule"},
		{"0 0 30 2 *", "", "", 0, "never fires"},
		{"0 9 * * *", "", "sometimes", 0, `catch_up="sometimes"`},
		{"0 9 * * *", "", "last", 5, "max_catch_up only applies"},
		{"0 9 * * *", "", "all", -1, "max_catch_up=-1"},
	} {
		_, err := NewCron(tt.spec, tt.tz, tt.catchUp, tt.max)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("NewCron(%q, %q, %q, %d) = %v; want an error containing %q", tt.spec, tt.tz, tt.catchUp, tt.max, err, tt.want)
		}
	}
	for _, spec := range []string{"@hourly", "@daily", "@every 10m", "CRON_TZ=Asia/Tokyo 0 9 * * 1-5", "TZ=UTC */5 * * * *"} {
		if _, err := NewCron(spec, "", "", 0); err != nil {
			t.Errorf("NewCron(%q): %v", spec, err)
		}
	}
}

func TestCronTimeZones(t *testing.T) {
	tests := []struct {
		spec, tz string
		after    string
		want     string
	}{
		{"0 9 * * *", "", "2026-01-15T00:00:00Z", "2026-01-15T09:00:00Z"}, // UTC by default
		{"0 9 * * *", "Europe/Paris", "2026-01-15T00:00:00Z", "2026-01-15T08:00:00Z"},
		{"0 9 * * *", "Europe/Paris", "2026-07-15T00:00:00Z", "2026-07-15T07:00:00Z"},
		{"CRON_TZ=America/New_York 0 9 * * *", "", "2026-01-15T00:00:00Z", "2026-01-15T14:00:00Z"},
		{"@hourly", "Asia/Kolkata", "2026-01-15T00:10:00Z", "2026-01-15T00:30:00Z"}, // UTC+5:30
	}
	for _, tt := range tests {
		c := mustCron(t, tt.spec, tt.tz, "", 0)
		if got := c.Next(utc(tt.after)).UTC().Format(time.RFC3339); got != tt.want {
			t.Errorf("%s tz=%q after %s: %s, want %s", tt.spec, tt.tz, tt.after, got, tt.want)
		}
	}
}

// TestCronDST pins robfig/cron's semantics: a time in the spring-forward gap
// does not exist and is skipped; in the fall-back hour a wall-clock time
// happens twice and fires at both instants.
func TestCronDST(t *testing.T) {
	c := mustCron(t, "30 2 * * *", "Europe/Paris", "", 0)
	var got []string
	for x := utc("2026-03-27T12:00:00Z"); len(got) < 3; {
		x = c.Next(x)
		got = append(got, x.UTC().Format(time.RFC3339))
	}
	want := "2026-03-28T01:30:00Z 2026-03-30T00:30:00Z 2026-03-31T00:30:00Z" // no 2026-03-29
	if strings.Join(got, " ") != want {
		t.Errorf("spring forward: %v, want %s", got, want)
	}
	got = nil
	for x := utc("2026-10-24T12:00:00Z"); len(got) < 3; {
		x = c.Next(x)
		got = append(got, x.UTC().Format(time.RFC3339))
	}
	want = "2026-10-25T00:30:00Z 2026-10-25T01:30:00Z 2026-10-26T01:30:00Z"
	if strings.Join(got, " ") != want {
		t.Errorf("fall back: %v, want %s", got, want)
	}
}

func TestCronDueCatchUp(t *testing.T) {
	// Hourly; the last tick handled was 10:00; the leader came back at 15:00:30.
	last, now := utc("2026-01-15T10:00:00Z"), utc("2026-01-15T15:00:30Z")
	tests := []struct {
		catchUp string
		max     int
		want    string
		skipped int
	}{
		// 15:00 is 30 s late: on time, it fires under every policy.
		{CatchUpSkip, 0, "2026-01-15T15:00:00Z", 4},
		{CatchUpLast, 0, "2026-01-15T15:00:00Z", 4},
		{CatchUpAll, 0, "2026-01-15T11:00:00Z late,2026-01-15T12:00:00Z late,2026-01-15T13:00:00Z late,2026-01-15T14:00:00Z late,2026-01-15T15:00:00Z", 0},
		{CatchUpAll, 2, "2026-01-15T13:00:00Z late,2026-01-15T14:00:00Z late,2026-01-15T15:00:00Z", 2},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s-%d", tt.catchUp, tt.max), func(t *testing.T) {
			d := mustCron(t, "0 * * * *", "", tt.catchUp, tt.max).Due(last, now)
			if got := strings.Join(ticksOf(d), ","); got != tt.want || d.Skipped != tt.skipped {
				t.Fatalf("fire %s (skipped %d)\nwant %s (skipped %d)", got, d.Skipped, tt.want, tt.skipped)
			}
			if !d.Newest.Equal(utc("2026-01-15T15:00:00Z")) {
				t.Fatalf("newest %s", d.Newest)
			}
		})
	}
	// Back at 15:20: no tick is on time; "last" fires 15:00 late, "skip" nothing.
	now = utc("2026-01-15T15:20:00Z")
	if got := ticksOf(mustCron(t, "0 * * * *", "", "", 0).Due(last, now)); strings.Join(got, ",") != "2026-01-15T15:00:00Z late" {
		t.Errorf("default (last): %v", got)
	}
	if d := mustCron(t, "0 * * * *", "", CatchUpSkip, 0).Due(last, now); len(d.Fire) != 0 || d.Skipped != 5 {
		t.Errorf("skip: %v, skipped %d", ticksOf(d), d.Skipped)
	}
	// Nothing due before the next tick.
	if d := mustCron(t, "0 * * * *", "", "", 0).Due(utc("2026-01-15T15:00:00Z"), utc("2026-01-15T15:59:59Z")); len(d.Fire) != 0 || !d.Newest.IsZero() {
		t.Errorf("between ticks: %+v", d)
	}
}
