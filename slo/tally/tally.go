package tally

import (
	"encoding/json"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"time"

	sbruntime "github.com/starbook/starbook/runtime"
)

// subBins is how many bins split each power of two of milliseconds from
// exactBins on: a bin is at most 1/subBins of its lower bound wide.
const (
	subBins    = 32
	subBits    = 5  // log2(subBins)
	exactBins  = 64 // durations under 64 ms have a bin per millisecond
	exactShift = 6  // log2(exactBins)
)

// RelativeError bounds how far above the exact nearest-rank duration a
// quantile of a Histogram may be (below it, never), for durations of
// exactBins ms and more; under that, the error is under a millisecond.
const RelativeError = 1.0 / subBins

// bin returns the bin of a duration of ms milliseconds (log-linear: one bin
// per millisecond under exactBins, then subBins per power of two).
func bin(ms int64) int {
	if ms < exactBins {
		return int(max(ms, 0))
	}
	e := bits.Len64(uint64(ms)) - 1 // >= exactShift
	sub := int(ms>>(e-subBits)) - subBins
	return exactBins + (e-exactShift)*subBins + sub
}

// binEnd returns the first millisecond past bin i.
func binEnd(i int) int64 {
	if i < exactBins {
		return int64(i) + 1
	}
	e := exactShift + (i-exactBins)/subBins
	sub := (i - exactBins) % subBins
	return int64(subBins+sub+1) << (e - subBits)
}

// Histogram counts durations in log-linear bins. The zero value is empty.
// Counts may go negative bin by bin while retractions are folded in before
// the runs they retract; totals are exact.
type Histogram struct {
	counts map[int]int64
}

// Add counts n (negative: retracts) durations of d.
func (h *Histogram) Add(d time.Duration, n int64) {
	if n == 0 {
		return
	}
	if h.counts == nil {
		h.counts = map[int]int64{}
	}
	i := bin(d.Milliseconds())
	if h.counts[i] += n; h.counts[i] == 0 {
		delete(h.counts, i)
	}
}

// Merge adds o's counts to h, times sign (1 or -1).
func (h *Histogram) Merge(o *Histogram, sign int64) {
	for i, n := range o.counts {
		if h.counts == nil {
			h.counts = map[int]int64{}
		}
		if h.counts[i] += sign * n; h.counts[i] == 0 {
			delete(h.counts, i)
		}
	}
}

// Count is how many durations h holds.
func (h *Histogram) Count() int64 {
	var n int64
	for _, c := range h.counts {
		n += c
	}
	return n
}

// Quantile returns the nearest-rank q-quantile of h's durations (the
// smallest at or over which a fraction q of them are), as the end of the bin
// that holds it: at most RelativeError (or 1 ms) above the exact one, never
// below. It reports false when h is empty.
func (h *Histogram) Quantile(q float64) (time.Duration, bool) {
	n := h.Count()
	if n <= 0 {
		return 0, false
	}
	// As slo.Percentile: an epsilon keeps 0.95 * 20 at rank 19.
	rank := min(max(int64(math.Ceil(q*float64(n)-1e-9)), 1), n)
	bins := h.bins()
	var seen int64
	for _, i := range bins {
		if seen += h.counts[i]; seen >= rank {
			return time.Duration(binEnd(i)) * time.Millisecond, true
		}
	}
	return time.Duration(binEnd(bins[len(bins)-1])) * time.Millisecond, true
}

func (h *Histogram) bins() []int {
	bins := make([]int, 0, len(h.counts))
	for i := range h.counts {
		bins = append(bins, i)
	}
	slices.Sort(bins)
	return bins
}

// MarshalJSON writes h as [[bin, count], ...] by bin.
func (h Histogram) MarshalJSON() ([]byte, error) {
	b := []byte{'['}
	for k, i := range h.bins() {
		if k > 0 {
			b = append(b, ',')
		}
		b = fmt.Appendf(b, "[%d,%d]", i, h.counts[i])
	}
	return append(b, ']'), nil
}

// UnmarshalJSON reads what MarshalJSON writes.
func (h *Histogram) UnmarshalJSON(data []byte) error {
	var pairs [][2]int64
	if err := json.Unmarshal(data, &pairs); err != nil {
		return fmt.Errorf("latency histogram: %w", err)
	}
	h.counts = nil
	for _, p := range pairs {
		if p[0] < 0 || p[0] > math.MaxInt32 {
			return fmt.Errorf("latency histogram: bin %d out of range", p[0])
		}
		if p[1] != 0 {
			if h.counts == nil {
				h.counts = make(map[int]int64, len(pairs))
			}
			h.counts[int(p[0])] += p[1]
		}
	}
	return nil
}

// Bucket is the runs of one runbook that ended in [Start, End), counted as
// an objective counts them: a completed run is a success, a failed or stuck
// one a failure, a cancelled one neither. Latency holds the durations
// (creation to end) of the successes and failures. Start == End is one
// run's end, exactly.
type Bucket struct {
	Start, End time.Time `json:"-"`
	Successes  int64     `json:"ok,omitempty"`
	Failures   int64     `json:"failed,omitempty"`
	Cancelled  int64     `json:"cancelled,omitempty"`
	Latency    Histogram `json:"latency"`
}

// Add counts n (negative: retracts) runs that ended with status after d;
// runs that have not ended count nowhere.
func (b *Bucket) Add(status sbruntime.Status, d time.Duration, n int64) {
	switch status {
	case sbruntime.StatusCompleted:
		b.Successes += n
	case sbruntime.StatusFailed, sbruntime.StatusStuck:
		b.Failures += n
	case sbruntime.StatusCancelled:
		b.Cancelled += n
		return
	default:
		return
	}
	b.Latency.Add(d, n)
}

// Merge adds o's counts to b, times sign (1 or -1).
func (b *Bucket) Merge(o *Bucket, sign int64) {
	b.Successes += sign * o.Successes
	b.Failures += sign * o.Failures
	b.Cancelled += sign * o.Cancelled
	b.Latency.Merge(&o.Latency, sign)
}

// Empty reports whether b counts nothing.
func (b *Bucket) Empty() bool {
	return b.Successes == 0 && b.Failures == 0 && b.Cancelled == 0 && len(b.Latency.counts) == 0
}

// In reports whether b counts in the window (at-w, at]: whether its middle
// does, so that a window's far edge is rounded to the nearest bucket
// boundary (at most half a bucket off); a run's exact end counts exactly.
func (b *Bucket) In(at time.Time, w time.Duration) bool {
	mid := b.Start.Add(b.End.Sub(b.Start) / 2)
	return mid.After(at.Add(-w)) && !mid.After(at)
}
