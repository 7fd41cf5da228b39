package slo_test

import (
	"testing"
	"time"

	"github.com/starbook/starbook/slo"
)

func TestPercentileNearestRank(t *testing.T) {
	var ds []time.Duration
	for i := 1; i <= 20; i++ {
		ds = append(ds, time.Duration(i)*time.Second)
	}
	for q, want := range map[float64]time.Duration{0.5: 10 * time.Second, 0.95: 19 * time.Second, 0.99: 20 * time.Second,
		0.999: 20 * time.Second, 0.01: time.Second} {
		if got, ok := slo.Percentile(ds, q); !ok || got != want {
			t.Errorf("p%v of 1s..20s = %v, want %v", q*100, got, want)
		}
	}
	if _, ok := slo.Percentile(nil, 0.5); ok {
		t.Error("a percentile of nothing")
	}
}
