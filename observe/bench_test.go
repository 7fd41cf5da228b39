package observe

import (
	"testing"

	"github.com/starbook/starbook/enginetest"
)

// BenchmarkSequentialCallObserved is BenchmarkSequentialCallMem (package
// runtime) with the observer a node runs in production: metrics on, tracing
// with no exporter.
//
//	go test ./observe -run '^$' -bench SequentialCall -benchmem
func BenchmarkSequentialCallObserved(b *testing.B) {
	enginetest.BenchSequentialCalls(b, &Observer{Metrics: NewMetrics(), Tracing: NewTracing("bench", nil), Node: "bench"})
}

// BenchmarkSequentialCallMetrics is the same with metrics only.
func BenchmarkSequentialCallMetrics(b *testing.B) {
	enginetest.BenchSequentialCalls(b, &Observer{Metrics: NewMetrics(), Node: "bench"})
}
