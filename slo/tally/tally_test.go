package tally

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	sbruntime "github.com/starbook/starbook/runtime"
)

// TestBins: every millisecond up to a year falls in the bin whose span
// holds it, bins are contiguous, and no bin is wider than RelativeError of
// its start.
func TestBins(t *testing.T) {
	for ms := int64(0); ms < 1<<20; ms++ {
		i := bin(ms)
		start := int64(0)
		if i > 0 {
			start = binEnd(i - 1)
		}
		if ms < start || ms >= binEnd(i) {
			t.Fatalf("%d ms in bin %d = [%d, %d)", ms, i, start, binEnd(i))
		}
	}
	for i := exactBins; bin(binEnd(i)) < 2000 && binEnd(i) < int64(366*24*time.Hour/time.Millisecond); i++ {
		start := binEnd(i - 1)
		if w := binEnd(i) - start; float64(w) > RelativeError*float64(start) {
			t.Fatalf("bin %d = [%d, %d) is %d wide", i, start, binEnd(i), w)
		}
	}
}

// TestQuantileBound: a histogram's nearest-rank quantile is at or above the
// exact one and within RelativeError (or 1 ms) of it, for random durations
// from a millisecond to days; merging two halves (and retracting an added
// third) gives the same histogram.
func TestQuantileBound(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for round := range 50 {
		n := 1 + r.IntN(2000)
		var all, a, b, c Histogram
		ds := make([]time.Duration, n)
		for i := range ds {
			ds[i] = time.Duration(r.ExpFloat64() * float64(time.Duration(1+round)*7*time.Minute))
			all.Add(ds[i], 1)
			if i%2 == 0 {
				a.Add(ds[i], 1)
			} else {
				b.Add(ds[i], 1)
			}
			c.Add(ds[i]*3, 1)
		}
		a.Merge(&c, 1)
		a.Merge(&b, 1)
		a.Merge(&c, -1)
		data, _ := json.Marshal(a)
		var back Histogram
		if err := json.Unmarshal(data, &back); err != nil {
			t.Fatal(err)
		}
		slices.Sort(ds)
		for _, q := range []float64{0.5, 0.9, 0.95, 0.99, 0.999, 1} {
			exact := exactPercentile(ds, q)
			for _, h := range []*Histogram{&all, &back} {
				got, ok := h.Quantile(q)
				if !ok {
					t.Fatalf("no quantile of %d values", n)
				}
				if got < exact || float64(got-exact) > RelativeError*float64(exact)+float64(time.Millisecond) {
					t.Fatalf("round %d q=%v: got %v, exact %v", round, q, got, exact)
				}
			}
		}
	}
}

// exactPercentile is slo.Percentile (not imported: slo imports tally).
func exactPercentile(sorted []time.Duration, q float64) time.Duration {
	rank := int(math.Ceil(q*float64(len(sorted)) - 1e-9))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

// TestDecode: Bucket.Decode reads what json.Marshal writes, as
// json.Unmarshal does, negative counts and empty buckets included, and
// refuses what is not a bucket.
func TestDecode(t *testing.T) {
	r := rand.New(rand.NewPCG(8, 9))
	for round := range 200 {
		var b Bucket
		for range r.IntN(30) {
			b.Add([]sbruntime.Status{"completed", "failed", "stuck", "cancelled"}[r.IntN(4)],
				time.Duration(r.ExpFloat64()*float64(time.Hour)), int64(r.IntN(5)-1))
		}
		data, err := json.Marshal(&b)
		if err != nil {
			t.Fatal(err)
		}
		var want, got Bucket
		if err := json.Unmarshal(data, &want); err != nil {
			t.Fatal(err)
		}
		got.Latency.Add(time.Hour, 7) // overwritten, not added to
		if err := got.Decode(data); err != nil {
			t.Fatalf("round %d: %s: %v", round, data, err)
		}
		if got.Successes != want.Successes || got.Failures != want.Failures || got.Cancelled != want.Cancelled ||
			!slices.Equal(trim(got.Latency.counts), trim(want.Latency.counts)) {
			t.Fatalf("round %d: %s decoded to %+v, want %+v", round, data, got, want)
		}
	}
	for _, bad := range []string{``, `[]`, `{"ok":x}`, `{"ok":1,"latency":[[1]]}`, `{"latency":[[1,2,3]]}`, `{"latency":[[-1,2]]}`, `{"ok":1`, `{"latency":[[1,2]}`} {
		var b Bucket
		if err := b.Decode([]byte(bad)); err == nil {
			t.Errorf("%q decoded to %+v", bad, b)
		}
	}
}

func trim(c []int64) []int64 {
	for len(c) > 0 && c[len(c)-1] == 0 {
		c = c[:len(c)-1]
	}
	return c
}

// FuzzBucketDecode: Decode never panics, and what it accepts it writes
// back as it read it (json.Marshal, then Decode again, gives the same).
func FuzzBucketDecode(f *testing.F) {
	for _, seed := range []string{`{"ok":3,"failed":1,"latency":[[0,1],[70,3]]}`, `{"latency":[]}`, `{"cancelled":-2,"latency":[[4095,-1]]}`, `{`, `[[`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var b Bucket
		if b.Decode(data) != nil {
			return
		}
		out, err := json.Marshal(&b)
		if err != nil {
			t.Fatal(err)
		}
		var again Bucket
		if err := again.Decode(out); err != nil {
			t.Fatalf("%q decoded, written as %s, which does not decode: %v", data, out, err)
		}
		if again.Successes != b.Successes || again.Failures != b.Failures || again.Cancelled != b.Cancelled ||
			!slices.Equal(trim(again.Latency.counts), trim(b.Latency.counts)) {
			t.Fatalf("%q: %+v, written as %s and read back as %+v", data, b, out, again)
		}
	})
}
