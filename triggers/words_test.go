package triggers

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestWords(t *testing.T) {
	alert := func(labels map[string]string, matchers []string, p Policy) *AlertTrigger {
		a, err := NewAlert(labels, matchers)
		if err != nil {
			t.Fatal(err)
		}
		a.Policy = p
		return a
	}
	grouped := alert(map[string]string{"alertname": "DiskFull"}, nil, Policy{})
	if err := grouped.SetGrouping([]string{"alertname", "host"}, true); err != nil {
		t.Fatal(err)
	}
	hook := func(name, secret, token string, p Policy) *WebhookTrigger {
		w, err := NewWebhook(name, secret, token, 0)
		if err != nil {
			t.Fatal(err)
		}
		w.Policy = p
		return w
	}
	rate, err := ParseRate("10/h")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		set  *Set
		want []string
	}{
		{"none", &Set{}, nil},
		{"nil", nil, nil},
		{"alert with a bound", &Set{Alerts: []*AlertTrigger{
			alert(map[string]string{"alertname": "KubePodCrashLooping"}, nil, Policy{MaxConcurrent: 5}),
		}}, []string{"alert: alertname=KubePodCrashLooping, at most 5 at once"}},
		{"alert matchers quoted where needed", &Set{Alerts: []*AlertTrigger{
			alert(nil, []string{`severity=~"critical|page"`, `team!="a b"`, `env=""`}, Policy{}),
		}}, []string{`alert: severity=~critical|page, team!="a b", env=""`}},
		{"alert grouped, rate, dropped", &Set{Alerts: []*AlertTrigger{grouped,
			alert(map[string]string{"alertname": "X"}, nil, Policy{Rate: rate, OnExcess: OnExcessDrop}),
		}}, []string{
			"alert: alertname=DiskFull, grouped by alertname, host, one run per group",
			"alert: alertname=X, at most 10 per hour, excess dropped",
		}},
		{"cron in UTC by default", &Set{Crons: []*CronTrigger{mustCron(t, "17 * * * *", "", "skip", 0)}},
			[]string{"cron: 17 * * * * (UTC), missed ticks skipped"}},
		{"cron with tz=", &Set{Crons: []*CronTrigger{mustCron(t, "0 3 * * *", "Europe/Paris", "", 0)}},
			[]string{"cron: 0 3 * * * (Europe/Paris)"}},
		{"cron with a CRON_TZ prefix, catch up all", &Set{Crons: []*CronTrigger{mustCron(t, "CRON_TZ=America/New_York @daily", "", "all", 3)}},
			[]string{"cron: @daily (America/New_York), missed ticks all fired (at most 3)"}},
		{"webhooks", &Set{Webhooks: []*WebhookTrigger{
			hook("deploy-finished", "DEPLOY_SECRET", "", Policy{}),
			hook("page", "", "PAGE_TOKEN", Policy{MaxConcurrent: 1}),
		}}, []string{"webhook: deploy-finished (HMAC signature)", "webhook: page (bearer token), at most 1 at once"}},
		{"every kind in order", &Set{
			Webhooks: []*WebhookTrigger{hook("w", "S", "", Policy{})},
			Crons:    []*CronTrigger{mustCron(t, "@hourly", "", "", 0)},
			Alerts:   []*AlertTrigger{alert(map[string]string{"alertname": "A"}, nil, Policy{})},
		}, []string{"alert: alertname=A", "cron: @hourly (UTC)", "webhook: w (HMAC signature)"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.set.Words(); !slices.Equal(got, tt.want) {
				t.Errorf("Words() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestNextFires(t *testing.T) {
	fmtAll := func(ts []time.Time) []string {
		out := make([]string, len(ts))
		for i, x := range ts {
			out[i] = x.Format(time.RFC3339)
		}
		return out
	}
	for _, tt := range []struct {
		name, spec, tz string
		after          string
		n              int
		wantZone       string
		want           []string
	}{
		{"UTC hourly", "17 * * * *", "", "2026-03-01T10:20:00Z", 3, "UTC",
			[]string{"2026-03-01T11:17:00Z", "2026-03-01T12:17:00Z", "2026-03-01T13:17:00Z"}},
		{"in the trigger's zone", "0 3 * * *", "Europe/Paris", "2026-03-01T12:00:00Z", 2, "Europe/Paris",
			[]string{"2026-03-02T03:00:00+01:00", "2026-03-03T03:00:00+01:00"}},
		{"across the spring DST change", "30 2 * * *", "Europe/Paris", "2026-03-28T12:00:00Z", 2, "Europe/Paris",
			// 02:30 does not exist on 29 March in Paris: that run is skipped.
			[]string{"2026-03-30T02:30:00+02:00", "2026-03-31T02:30:00+02:00"}},
		{"a prefix zone", "CRON_TZ=Asia/Tokyo 0 9 * * 1", "", "2026-03-01T00:00:00Z", 1, "Asia/Tokyo",
			[]string{"2026-03-02T09:00:00+09:00"}},
		{"strictly after", "0 * * * *", "", "2026-03-01T10:00:00Z", 1, "UTC", []string{"2026-03-01T11:00:00Z"}},
		{"none asked", "0 * * * *", "", "2026-03-01T10:00:00Z", 0, "UTC", []string{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := mustCron(t, tt.spec, tt.tz, "", 0)
			if s := c.Schedule(); strings.Contains(s, "TZ=") || !strings.HasSuffix(tt.spec, s) {
				t.Errorf("Schedule() = %q of %q", s, tt.spec)
			}
			if z := c.Zone(); z != tt.wantZone {
				t.Errorf("Zone() = %q, want %q", z, tt.wantZone)
			}
			got := fmtAll(c.NextFires(utc(tt.after), tt.n))
			if !slices.Equal(got, tt.want) {
				t.Errorf("NextFires = %q, want %q", got, tt.want)
			}
		})
	}
}
