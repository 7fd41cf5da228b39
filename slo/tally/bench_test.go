package tally

import (
	"encoding/json"
	"math/rand/v2"
	"testing"
	"time"
)

// BenchmarkDecodeMerge: what an SLO read spends on a 30-day window of busy
// hourly rollups (966 buckets of 70 runs): decode each, merge them, one
// percentile.
func BenchmarkDecodeMerge(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	var vals [][]byte
	for range 966 {
		var bk Bucket
		for range 70 {
			bk.Add("completed", time.Duration(r.ExpFloat64()*float64(2*time.Minute)), 1)
		}
		v, _ := json.Marshal(&bk)
		vals = append(vals, v)
	}
	for b.Loop() {
		var total Bucket
		for _, v := range vals {
			var bk Bucket
			if err := bk.Decode(v); err != nil {
				b.Fatal(err)
			}
			total.Merge(&bk, 1)
		}
		total.Latency.Quantile(0.95)
	}
}
