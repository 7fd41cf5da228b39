package observe

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/starbook/starbook/downstream"
)

// downstreamMetrics are the HTTP metrics per host: declared hosts by name,
// every other host as "other", so scripts cannot multiply series.
type downstreamMetrics struct {
	requests  *prometheus.CounterVec
	circuit   *prometheus.GaugeVec
	throttled *prometheus.CounterVec
	ssh       *prometheus.CounterVec
}

func newDownstreamMetrics() downstreamMetrics {
	return downstreamMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "starbook_http_requests_total",
			Help: "HTTP requests the http built-ins sent, by host (declared by http_limit or --http-limit; \"other\" for the rest) and code (the status, or \"error\" for a transport error)."},
			[]string{"host", "code"}),
		circuit: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "starbook_circuit_state",
			Help: "Circuit breaker state of a limited host on this node: 0 closed, 1 half-open, 2 open."},
			[]string{"host"}),
		throttled: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "starbook_http_throttled_total",
			Help: "HTTP requests to a limited host held back, by reason: circuit_open (failed fast, not sent), retry_budget (retry not sent) or rate (the rate limit's wait outlasted the request)."},
			[]string{"host", "reason"}),
		ssh: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "starbook_ssh_commands_total",
			Help: "SSH commands ssh.run ran, by host (declared by http_limit or --http-limit, which protect SSH too; \"other\" for the rest) and exit_status (\"0\", \"1\", ..., or \"error\" for a command that could not run: connection, host key, authentication)."},
			[]string{"host", "exit_status"}),
	}
}

func (d downstreamMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{d.requests, d.circuit, d.throttled, d.ssh}
}

// DownstreamHooks feed the node's downstream guards' events into the
// metrics: give them to downstream.Config.Hooks.
func (m *Metrics) DownstreamHooks() downstream.Hooks {
	return downstream.Hooks{
		Request: func(host, code string) { m.downstream.requests.WithLabelValues(label(host), code).Inc() },
		Circuit: func(host string, s downstream.State) {
			m.downstream.circuit.WithLabelValues(label(host)).Set(float64(s))
		},
		Throttled: func(host, reason string) { m.downstream.throttled.WithLabelValues(label(host), reason).Inc() },
		Command:   func(host, exit string) { m.downstream.ssh.WithLabelValues(label(host), exit).Inc() },
	}
}
