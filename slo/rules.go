package slo

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/starbook/starbook/triggers"
)

// Objective is one runbook's declared objective, for Rules.
type Objective struct {
	Runbook string
	SLO     *triggers.SLO
}

// Burn is one multi-window burn-rate alert: it fires when the error ratio
// over both Long and Short exceeds Factor times the ratio the objective
// allows (Google's SRE workbook, "multiwindow, multi-burn-rate alerts").
type Burn struct {
	Alert    string
	Severity string
	Factor   float64
	Long     string
	Short    string
	For      string
}

// Burns are the burn-rate alerts every objective gets: page at 14.4x over
// 1h and 5m (2% of a 30-day budget in an hour), page at 6x over 6h and 30m
// (5% in 6 hours), ticket at 1x over 3d and 6h (10% in 3 days).
var Burns = []Burn{
	{"StarbookSLOBurnRateFast", "page", 14.4, "1h", "5m", "2m"},
	{"StarbookSLOBurnRateMedium", "page", 6, "6h", "30m", "15m"},
	{"StarbookSLOBurnRateSlow", "ticket", 1, "3d", "6h", "1h"},
}

// ratioWindows are the windows the error ratios are recorded over.
var ratioWindows = []string{"5m", "30m", "1h", "6h", "3d"}

// RatioRecord is the name of the recorded error ratio of every runbook over
// window: failed and stuck executions over those that ended completed,
// failed or stuck (cancelled ones are left out, as in starbook slo).
func RatioRecord(window string) string { return "starbook:execution_error_ratio:rate" + window }

// TargetRecord is the recorded success target of each runbook's objective
// (label runbook).
const TargetRecord = "starbook:slo_success_target"

// maxLabel is the longest label value the node's metrics keep (observe
// truncates longer runbook names).
const maxLabel = 64

func runbookLabel(name string) string {
	if len(name) > maxLabel {
		return name[:maxLabel]
	}
	return name
}

// ratio writes a ratio without float noise: 1 - 0.99 is "0.01".
func ratio(r float64) string {
	return strconv.FormatFloat(math.Round(r*1e9)/1e9, 'f', -1, 64)
}

// rulesWriter writes a Prometheus rule file by hand, so that its layout is
// stable and readable: expressions as literal blocks, other strings quoted
// as JSON (a JSON string is a YAML double-quoted scalar).
type rulesWriter struct{ b strings.Builder }

func (w *rulesWriter) group(name string) {
	fmt.Fprintf(&w.b, "  - name: %s\n    rules:\n", name)
}

func (w *rulesWriter) rule(kind, name, expr, forDur string, labels, annotations [][2]string) {
	fmt.Fprintf(&w.b, "      - %s: %s\n        expr: |\n", kind, name)
	for _, line := range strings.Split(strings.TrimSpace(expr), "\n") {
		fmt.Fprintf(&w.b, "          %s\n", line)
	}
	if forDur != "" {
		fmt.Fprintf(&w.b, "        for: %s\n", forDur)
	}
	for _, m := range []struct {
		key   string
		pairs [][2]string
	}{{"labels", labels}, {"annotations", annotations}} {
		if len(m.pairs) == 0 {
			continue
		}
		fmt.Fprintf(&w.b, "        %s:\n", m.key)
		for _, kv := range m.pairs {
			fmt.Fprintf(&w.b, "          %s: %s\n", kv[0], strconv.Quote(kv[1]))
		}
	}
}

// Rules returns the Prometheus rule file starbook ships: the error ratios of
// every runbook over the burn windows, the burn-rate and latency alerts of
// each objective (in the order given), and alerts on starbook's own health.
func Rules(objectives []Objective) []byte {
	w := &rulesWriter{}
	w.b.WriteString(`# Prometheus rules for starbook, written by "starbook rules": do not edit,
# regenerate. Burn-rate alerts come from the runbooks' slo() declarations;
# the health alerts watch starbook itself. See README.md, "Alert rules and
# dashboards".
groups:
`)
	w.group("starbook-slo-ratios")
	for _, win := range ratioWindows {
		// A runbook without failures has no failed series: "or 0 * ..."
		// gives it a ratio of 0 rather than none.
		w.rule("record", RatioRecord(win), fmt.Sprintf(`
(
  sum by (runbook) (rate(starbook_executions_ended_total{status=~"failed|stuck"}[%[1]s]))
  or
  0 * sum by (runbook) (rate(starbook_executions_ended_total{status="completed"}[%[1]s]))
)
/
sum by (runbook) (rate(starbook_executions_ended_total{status=~"completed|failed|stuck"}[%[1]s]))`, win), "", nil, nil)
	}
	for _, o := range objectives {
		rb := runbookLabel(o.Runbook)
		budget := ratio(1 - o.SLO.Success)
		window := triggers.FormatDuration(o.SLO.Window)
		w.group("starbook-slo-" + rb)
		// The objective as a series, for dashboards: burn rate = error
		// ratio / on (runbook) (1 - target).
		w.rule("record", TargetRecord, "vector("+ratio(o.SLO.Success)+")", "", [][2]string{{"runbook", rb}}, nil)
		for _, b := range Burns {
			threshold := fmt.Sprintf("(%s * %s)", strconv.FormatFloat(b.Factor, 'f', -1, 64), budget)
			w.rule("alert", b.Alert, fmt.Sprintf(`
%s{runbook=%q} > %s
and
%s{runbook=%q} > %s`, RatioRecord(b.Long), rb, threshold, RatioRecord(b.Short), rb, threshold), b.For,
				[][2]string{{"severity", b.Severity}, {"runbook", rb}, {"long_window", b.Long}, {"short_window", b.Short}},
				[][2]string{
					{"summary", fmt.Sprintf("Runbook %s burns its error budget at %sx or faster", rb, strconv.FormatFloat(b.Factor, 'f', -1, 64))},
					{"description", fmt.Sprintf("Over the last %s and %s, more than %s times the %s%% of runs its slo(success = %s, window = %q) allows have failed or got stuck. Run: starbook slo %s",
						b.Long, b.Short, strconv.FormatFloat(b.Factor, 'f', -1, 64), ratio((1-o.SLO.Success)*100), ratio(o.SLO.Success), window, rb)},
				})
		}
		for _, l := range o.SLO.Latency {
			max := triggers.FormatDuration(l.Max)
			w.rule("alert", "StarbookSLOLatency", fmt.Sprintf(`
histogram_quantile(%s, sum by (le) (rate(starbook_execution_duration_seconds_bucket{runbook=%q,status=~"completed|failed|stuck"}[6h])))
> %s`, ratio(l.Quantile), rb, strconv.FormatFloat(l.Max.Seconds(), 'f', -1, 64)), "1h",
				[][2]string{{"severity", "ticket"}, {"runbook", rb}, {"percentile", l.Name}},
				[][2]string{
					{"summary", fmt.Sprintf("Runbook %s: %s of run durations over %s", rb, l.Name, max)},
					{"description", fmt.Sprintf("The %s of the durations of runs that ended in the last 6h is over the %s its slo() allows (estimated from starbook_execution_duration_seconds buckets). Run: starbook slo %s", l.Name, max, rb)},
				})
		}
	}
	w.group("starbook-health")
	for _, h := range healthRules {
		w.rule("alert", h.alert, h.expr, h.forDur, [][2]string{{"severity", h.severity}},
			[][2]string{{"summary", h.summary}, {"description", h.description}})
	}
	return []byte(w.b.String())
}

// healthRules watch starbook itself.
var healthRules = []struct {
	alert, expr, forDur, severity, summary, description string
}{
	{"StarbookNoLeader", `(sum(starbook_leader) or vector(0)) < 1`, "1m", "page",
		"No starbook node is leader",
		"No scraped node reports starbook_leader = 1: durable timers, cron, retention and queued runs stop until a node is elected. Check the nodes' etcd session (starbook cluster)."},
	{"StarbookEtcdErrors", `sum by (instance) (rate(starbook_etcd_request_errors_total[5m])) > 0`, "5m", "page",
		"starbook node {{ $labels.instance }} gets etcd errors",
		"{{ $labels.instance }}'s etcd requests have been failing for 5 minutes: steps cannot be recorded, so its runs stop and retry."},
	{"StarbookDeadLettersGrowing", `
max by (runbook) (sum without (reason) (starbook_dead_letters))
>
(
  max by (runbook) (sum without (reason) (starbook_dead_letters offset 15m))
  or
  max by (runbook) (sum without (reason) (starbook_dead_letters)) * 0
)`, "", "ticket",
		"Runbook {{ $labels.runbook }} has new dead letters",
		"Runbook {{ $labels.runbook }} has more dead letters than 15 minutes ago ({{ $value }} now): runs that failed for good. Look at them and redrive (README, dead letters)."},
	{"StarbookQueueBacklog", `max(starbook_queue_depth) > 0`, "10m", "ticket",
		"Runnable executions wait for a worker",
		"{{ $value }} runnable executions have had no node claim them for 10 minutes: the nodes' workers are all busy, or nodes are gone."},
	{"StarbookApprovalWaitingLong", `max(starbook_waits_oldest_age_seconds{kind="approval"}) > 4 * 3600`, "5m", "ticket",
		"An approval has been pending for more than 4 hours",
		"The oldest pending approval has waited {{ $value | humanizeDuration }}: starbook ls --waiting lists it."},
	{"StarbookNodeGone", `max(max_over_time(starbook_nodes[1h])) - max(starbook_nodes) > 0`, "5m", "ticket",
		"A starbook node left the cluster",
		"{{ $value }} fewer nodes are registered than at most in the last hour: a node lost its session. Its runs were taken over; check it (starbook cluster)."},
	{"StarbookStoreNearlyFull", `max(starbook_etcd_db_bytes / starbook_etcd_quota_bytes) > 0.8`, "5m", "ticket",
		"starbook's etcd is over 80% of its quota",
		"etcd's db file is {{ $value | humanizePercentage }} of its quota: from 90% starbook refuses new runs, past 100% etcd refuses every write (NOSPACE). Free space: a shorter serve --retention, then starbook store free (compact, defrag, disarm NOSPACE), or raise serve --etcd-quota. starbook store shows it."},
	{"StarbookStoreFull", `max(starbook_storage_full) > 0`, "1m", "page",
		"starbook refuses new runs: its etcd is full",
		"At 90% of etcd's quota, or under etcd's NOSPACE alarm, starbook refuses new runs (API 507, alerts and webhooks 507 and dead letters with reason storage); runs in flight go on, or wait for space. Free space: a shorter serve --retention, then starbook store free, or raise serve --etcd-quota."},
}
