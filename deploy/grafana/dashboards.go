package dashboards

import (
	"encoding/json"
	"fmt"

	"github.com/grafana/grafana-foundation-sdk/go/bargauge"
	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/heatmap"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

// ds is the Prometheus data source the dashboard's datasource variable picks.
var ds = common.DataSourceRef{Type: cog.ToPtr("prometheus"), Uid: cog.ToPtr("${datasource}")}

// Selectors shared by the queries: the runbooks picked, and what counts as
// a run for the SLOs (cancelled runs are left out, as starbook slo does).
const (
	rb       = `runbook=~"$runbook"`
	counted  = `status=~"completed|failed|stuck"`
	failures = `status=~"failed|stuck"`
	ended    = "starbook_executions_ended_total"
	// burn is the burn rate of each runbook's objective over a window:
	// the recorded error ratio over the ratio the objective allows.
	burn = `starbook:execution_error_ratio:rate%s{` + rb + `} / on (runbook) (1 - starbook:slo_success_target)`
)

func query(expr, legend string) *prometheus.DataqueryBuilder {
	return prometheus.NewDataqueryBuilder().Datasource(ds).Expr(expr).LegendFormat(legend)
}

func series(title, unit, description string, queries ...*prometheus.DataqueryBuilder) *timeseries.PanelBuilder {
	p := timeseries.NewPanelBuilder().Title(title).Description(description).Datasource(ds).Unit(unit).
		Height(8).Span(12).FillOpacity(10)
	for _, q := range queries {
		p.WithTarget(q)
	}
	return p
}

func single(title, unit, description string, q *prometheus.DataqueryBuilder) *stat.PanelBuilder {
	return stat.NewPanelBuilder().Title(title).Description(description).Datasource(ds).Unit(unit).
		Height(5).Span(6).WithTarget(q.Instant())
}

func link(title, url string) *dashboard.DashboardLinkBuilder {
	return dashboard.NewDashboardLinkBuilder(title).Type(dashboard.DashboardLinkTypeLink).Url(url).TargetBlank(true)
}

// base is a dashboard with the variables every one has: the data source,
// the runbooks shown and the URL of a starbook node (for links to its UI).
func base(uid, title, description string) *dashboard.DashboardBuilder {
	return dashboard.NewDashboardBuilder(title).Uid(uid).Description(description).
		Tags([]string{"starbook"}).Refresh("1m").Time("now-6h", "now").Timezone(common.TimeZoneBrowser).
		WithVariable(dashboard.NewDatasourceVariableBuilder("datasource").Label("Data source").Type("prometheus")).
		WithVariable(dashboard.NewQueryVariableBuilder("runbook").Label("Runbook").Datasource(ds).
			Query(dashboard.StringOrMap{String: cog.ToPtr("label_values(" + ended + ", runbook)")}).
			Refresh(dashboard.VariableRefreshOnTimeRangeChanged).Sort(dashboard.VariableSortAlphabeticalAsc).
			Multi(true).IncludeAll(true).AllValue(".*")).
		WithVariable(dashboard.NewTextBoxVariableBuilder("starbook_url").Label("starbook URL").
			Description("A starbook node's address, for the links to its web UI").
			DefaultValue(dashboard.StringOrMap{String: cog.ToPtr("http://127.0.0.1:7070")})).
		Link(link("starbook executions", "${starbook_url}/ui/#/executions"))
}

// Executive is the overview: how often runbooks succeed, how many run,
// which fail most, how fast their SLOs burn.
func Executive() *dashboard.DashboardBuilder {
	return base("starbook-executive", "starbook / Executive",
		"How runbooks do: success rate, throughput, the runbooks that fail most and how fast their SLOs burn.").
		WithRow(dashboard.NewRowBuilder("Over the time range")).
		WithPanel(single("Success rate", "percentunit", "Completed runs over those that completed, failed or got stuck (cancelled runs are left out).",
			query(fmt.Sprintf(`sum(increase(%s{%s,status="completed"}[$__range])) / sum(increase(%s{%s,%s}[$__range]))`, ended, rb, ended, rb, counted), "success rate"))).
		WithPanel(single("Runs ended", "short", "Runs that completed, failed or got stuck.",
			query(fmt.Sprintf(`sum(increase(%s{%s,%s}[$__range]))`, ended, rb, counted), "runs"))).
		WithPanel(single("Failed or stuck", "short", "Runs that failed or got stuck.",
			query(fmt.Sprintf(`sum(increase(%s{%s,%s}[$__range]))`, ended, rb, failures), "failures"))).
		WithPanel(single("Worst burn rate (1h)", "x", "The fastest any runbook burns its SLO's error budget over the last hour: 1 spends it exactly over the SLO window.",
			query("max("+fmt.Sprintf(burn, "1h")+")", "burn rate"))).
		WithRow(dashboard.NewRowBuilder("Trends")).
		WithPanel(series("Throughput", "runs/min", "Runs ended per minute, by status.",
			query(fmt.Sprintf(`sum by (status) (rate(%s{%s}[$__rate_interval])) * 60`, ended, rb), "{{status}}"))).
		WithPanel(series("Success rate by runbook (1h)", "percentunit", "1 - the error ratio over the last hour.",
			query(`1 - starbook:execution_error_ratio:rate1h{`+rb+`}`, "{{runbook}}")).Min(0).Max(1)).
		WithPanel(bargauge.NewPanelBuilder().Title("Top failing runbooks").Datasource(ds).Height(8).Span(12).
			Description("The ten runbooks with the most failed or stuck runs over the time range.").
			WithTarget(query(fmt.Sprintf(`topk(10, sum by (runbook) (increase(%s{%s,%s}[$__range])))`, ended, rb, failures), "{{runbook}}").Instant())).
		WithPanel(series("SLO burn rate (1h)", "x", "Each runbook's error ratio over the last hour over what its slo() allows (starbook rules records both).",
			query(fmt.Sprintf(burn, "1h"), "{{runbook}}")))
}

// OnCall is what the person paged looks at: burn rates of the alerting
// windows, failures, queued and dropped runs, dead letters, waits, health.
func OnCall() *dashboard.DashboardBuilder {
	return base("starbook-oncall", "starbook / On-call",
		"What the alerts of starbook rules watch: SLO burn rates, failures, queued and throttled runs, dead letters, waits and the cluster's health.").
		WithRow(dashboard.NewRowBuilder("SLOs")).
		WithPanel(series("Burn rate 5m / 1h / 6h", "x", "Pages at 14.4x over 1h and 5m, at 6x over 6h and 30m; a ticket at 1x over 3d and 6h.",
			query(fmt.Sprintf(burn, "5m"), "{{runbook}} 5m"), query(fmt.Sprintf(burn, "1h"), "{{runbook}} 1h"),
			query(fmt.Sprintf(burn, "6h"), "{{runbook}} 6h"))).
		WithPanel(series("Failed and stuck runs", "short", "Runs that failed or got stuck per interval, by runbook.",
			query(fmt.Sprintf(`sum by (runbook, status) (increase(%s{%s,%s}[$__rate_interval]))`, ended, rb, failures), "{{runbook}} {{status}}")).
			DataLinks([]cog.Builder[dashboard.DashboardLink]{link("Runbook in starbook", "${starbook_url}/ui/#/runbooks/${__field.labels.runbook}")})).
		WithRow(dashboard.NewRowBuilder("Backlog")).
		WithPanel(series("Queued runs", "short", "Runnable executions no node has claimed, and triggered runs waiting for their runbook's max_concurrent or rate.",
			query(`max(starbook_queue_depth)`, "runnable, unclaimed"),
			query(`max by (runbook) (starbook_trigger_queued{`+rb+`})`, "{{runbook}} queued by its policy"))).
		WithPanel(series("Throttled runs", "short", "Runs held back by a limit: queued behind max_concurrent or rate, dropped by on_excess=\"drop\", or refused by a budget().",
			query(`sum by (runbook, reason) (increase(starbook_runs_throttled_total{`+rb+`}[$__rate_interval]))`, "{{runbook}} {{reason}}"))).
		WithPanel(series("Alerts by outcome", "short", "Alerts received per interval, by runbook and what they did: started a run, coalesced into their group's run, duplicate, overflow (the group's run was full: a dead letter), refused by the input schema, ...",
			query(`sum by (runbook, status) (increase(starbook_alerts_total{`+rb+`}[$__rate_interval]))`, "{{runbook}} {{status}}"))).
		WithPanel(series("Dead letters", "short", "Runs that failed for good, waiting to be looked at or redriven.",
			query(`max by (runbook) (sum without (reason) (starbook_dead_letters{`+rb+`}))`, "{{runbook}}"))).
		WithPanel(series("Pending waits", "short", "Pending approvals, signals and sleeps, and the age of the oldest approval.",
			query(`max by (kind) (starbook_waits_pending)`, "{{kind}}"),
			query(`max(starbook_waits_oldest_age_seconds{kind="approval"}) / 3600`, "oldest approval (hours)"))).
		WithRow(dashboard.NewRowBuilder("Cluster")).
		WithPanel(single("Leader", "short", "Nodes that report being leader: 1, or alerts fire.", query(`sum(starbook_leader)`, "leaders"))).
		WithPanel(single("Nodes", "short", "Nodes registered in etcd.", query(`max(starbook_nodes)`, "nodes"))).
		WithPanel(series("etcd errors", "reqps", "Failed etcd requests per second, by node and operation.",
			query(`sum by (instance, op) (rate(starbook_etcd_request_errors_total[$__rate_interval]))`, "{{instance}} {{op}}"))).
		WithPanel(series("etcd space", "percentunit", "etcd's db file (and the part of it in use) over its quota, largest member. From 90% new runs are refused; past 100% etcd refuses every write (NOSPACE). starbook store shows it, starbook store free compacts, defragments and disarms.",
			query(`max(starbook_etcd_db_bytes / starbook_etcd_quota_bytes)`, "db file"),
			query(`max(starbook_etcd_db_in_use_bytes / starbook_etcd_quota_bytes)`, "in use")))
}

// Debug is for finding out why: step latencies, retries, replays, run
// outcomes, etcd; its links open an execution in the node's web UI.
func Debug() *dashboard.DashboardBuilder {
	return base("starbook-debug", "starbook / Debug",
		"Step latencies, retries, replays, durations and etcd. Put an execution id in the execution box and follow the link to its page in the starbook UI.").
		WithVariable(dashboard.NewTextBoxVariableBuilder("execution").Label("Execution id").
			Description("An execution to open in the starbook UI (starbook ls lists them)")).
		Link(link("Open execution ${execution}", "${starbook_url}/ui/#/executions/${execution}")).
		WithRow(dashboard.NewRowBuilder("Steps")).
		WithPanel(heatmap.NewPanelBuilder().Title("Step latency").Datasource(ds).Height(8).Span(12).
			Description("Executed (not replayed) steps by duration, retries included.").
			WithTarget(query(`sum by (le) (increase(starbook_step_duration_seconds_bucket{`+rb+`}[$__rate_interval]))`, "{{le}}").
				Format(prometheus.PromQueryFormatHeatmap))).
		WithPanel(series("Step latency p95", "s", "By runbook, kind and step name.",
			query(`histogram_quantile(0.95, sum by (le, runbook, kind, name) (rate(starbook_step_duration_seconds_bucket{`+rb+`}[$__rate_interval])))`, "{{runbook}} {{kind}} {{name}}"))).
		WithPanel(series("Retries", "short", "Attempts beyond the first, per second.",
			query(`sum by (runbook, kind, name) (rate(starbook_step_retries_total{`+rb+`}[$__rate_interval]))`, "{{runbook}} {{kind}} {{name}}"))).
		WithPanel(series("Failed steps", "short", "Steps that failed after their retries, per second.",
			query(`sum by (runbook, kind, name) (rate(starbook_step_duration_seconds_count{`+rb+`,result="failed"}[$__rate_interval]))`, "{{runbook}} {{kind}} {{name}}"))).
		WithRow(dashboard.NewRowBuilder("Runs")).
		WithPanel(series("Run duration p50 / p95", "s", "Creation to end of the runs that ended, by runbook.",
			query(`histogram_quantile(0.5, sum by (le, runbook) (rate(starbook_execution_duration_seconds_bucket{`+rb+`}[$__rate_interval])))`, "{{runbook}} p50"),
			query(`histogram_quantile(0.95, sum by (le, runbook) (rate(starbook_execution_duration_seconds_bucket{`+rb+`}[$__rate_interval])))`, "{{runbook}} p95")).
			DataLinks([]cog.Builder[dashboard.DashboardLink]{link("Runbook in starbook", "${starbook_url}/ui/#/runbooks/${__field.labels.runbook}")})).
		WithPanel(series("Runs by outcome", "short", "Runs (first runs and replays) the nodes finished, per second: waiting runs park and replay later.",
			query(`sum by (runbook, outcome) (rate(starbook_runs_total{`+rb+`}[$__rate_interval]))`, "{{runbook}} {{outcome}}"))).
		WithPanel(series("Replayed steps", "short", "Durable calls answered from history on replay, per second.",
			query(`sum by (runbook) (rate(starbook_replayed_steps_total{`+rb+`}[$__rate_interval]))`, "{{runbook}}"))).
		WithPanel(series("Runs in flight and claims", "short", "Executions each node runs now and has claimed.",
			query(`sum by (instance) (starbook_runs_in_flight)`, "{{instance}} running"),
			query(`max by (node) (starbook_claims)`, "{{node}} claims"))).
		WithRow(dashboard.NewRowBuilder("etcd")).
		WithPanel(series("etcd request latency p99", "s", "By operation, over every node.",
			query(`histogram_quantile(0.99, sum by (le, op) (rate(starbook_etcd_request_duration_seconds_bucket[$__rate_interval])))`, "{{op}}"))).
		WithPanel(series("etcd errors", "reqps", "Failed etcd requests per second, by node and operation.",
			query(`sum by (instance, op) (rate(starbook_etcd_request_errors_total[$__rate_interval]))`, "{{instance}} {{op}}")))
}

// Render builds every dashboard and returns its JSON by file name.
func Render() (map[string][]byte, error) {
	out := map[string][]byte{}
	for name, b := range map[string]*dashboard.DashboardBuilder{
		"executive.json": Executive(),
		"oncall.json":    OnCall(),
		"debug.json":     Debug(),
	} {
		d, err := b.Build()
		if err != nil {
			return nil, fmt.Errorf("build %s: %w", name, err)
		}
		j, err := json.MarshalIndent(d, "", "  ")
		if err != nil {
			return nil, fmt.Errorf("encode %s: %w", name, err)
		}
		out[name] = append(j, '\n')
	}
	return out, nil
}
