package tally

import (
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strconv"
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
	counts []int64 // by bin, up to the highest bin counted
}

func (h *Histogram) grow(n int) {
	if old := len(h.counts); n > old {
		h.counts = slices.Grow(h.counts, n-old)[:n]
		clear(h.counts[old:])
	}
}

// Add counts n (negative: retracts) durations of d.
func (h *Histogram) Add(d time.Duration, n int64) {
	if n == 0 {
		return
	}
	i := bin(d.Milliseconds())
	h.grow(i + 1)
	h.counts[i] += n
}

// Merge adds o's counts to h, times sign (1 or -1).
func (h *Histogram) Merge(o *Histogram, sign int64) {
	h.grow(len(o.counts))
	for i, n := range o.counts {
		h.counts[i] += sign * n
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
	var seen int64
	last := 0
	for i, c := range h.counts {
		if c == 0 {
			continue
		}
		if last = i; seen+c >= rank {
			return time.Duration(binEnd(i)) * time.Millisecond, true
		}
		seen += c
	}
	return time.Duration(binEnd(last)) * time.Millisecond, true
}

// MarshalJSON writes h as [[bin, count], ...] by bin, the bins counted.
func (h Histogram) MarshalJSON() ([]byte, error) {
	b := []byte{'['}
	for i, c := range h.counts {
		if c == 0 {
			continue
		}
		if len(b) > 1 {
			b = append(b, ',')
		}
		b = append(strconv.AppendInt(append(strconv.AppendInt(append(b, '['), int64(i), 10), ','), c, 10), ']')
	}
	return append(b, ']'), nil
}

// maxBin bounds the bins a decoded histogram may name: a year's bin is
// about 1,000.
const maxBin = 1 << 12

// UnmarshalJSON reads what MarshalJSON writes. It parses by hand: an SLO
// read decodes hundreds of these, and encoding/json's reflection was most
// of its cost.
func (h *Histogram) UnmarshalJSON(data []byte) error {
	bad := func(why string) error { return fmt.Errorf("latency histogram %.40q: %s", data, why) }
	h.counts = h.counts[:0]
	var ints [2]int64
	k, depth := 0, 0
	for i := 0; i < len(data); i++ {
		switch c := data[i]; {
		case c == '[':
			if depth++; depth > 2 {
				return bad("nested too deep")
			}
			k = 0
		case c == ']':
			if depth == 2 {
				if k != 2 {
					return bad("want [bin, count] pairs")
				}
				if ints[0] < 0 || ints[0] >= maxBin {
					return bad("bin out of range")
				}
				h.grow(int(ints[0]) + 1)
				h.counts[ints[0]] += ints[1]
			}
			depth--
		case c == ',' || c == ' ' || c == '\n' || c == '\t' || c == '\r':
		case c == '-' || c >= '0' && c <= '9':
			j := i + 1
			for j < len(data) && data[j] >= '0' && data[j] <= '9' {
				j++
			}
			n, err := strconv.ParseInt(string(data[i:j]), 10, 64)
			if err != nil || depth != 2 || k == 2 {
				return bad("want [bin, count] pairs")
			}
			ints[k], k, i = n, k+1, j-1
		default:
			return bad("unexpected character")
		}
	}
	if depth != 0 {
		return bad("unbalanced brackets")
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
	return b.Successes == 0 && b.Failures == 0 && b.Cancelled == 0 && !slices.ContainsFunc(b.Latency.counts, func(c int64) bool { return c != 0 })
}

// In reports whether b counts in the window (at-w, at]: whether its middle
// does, so that a window's far edge is rounded to the nearest bucket
// boundary (at most half a bucket off); a run's exact end counts exactly.
func (b *Bucket) In(at time.Time, w time.Duration) bool {
	mid := b.Start.Add(b.End.Sub(b.Start) / 2)
	return mid.After(at.Add(-w)) && !mid.After(at)
}

// Decode reads b from what json.Marshal(b) wrote, by hand (see
// Histogram.UnmarshalJSON): {"ok":N,"failed":N,"cancelled":N,"latency":[...]},
// any of them left out. Start and End are left as they are.
func (b *Bucket) Decode(data []byte) error {
	bad := func(why string) error { return fmt.Errorf("bucket %.60q: %s", data, why) }
	b.Successes, b.Failures, b.Cancelled = 0, 0, 0
	b.Latency.counts = b.Latency.counts[:0]
	i := skipSpace(data, 0)
	if i == len(data) || data[i] != '{' {
		return bad("want an object")
	}
	for i = skipSpace(data, i+1); i < len(data) && data[i] != '}'; i = skipSpace(data, i) {
		if data[i] == ',' {
			i = skipSpace(data, i+1)
		}
		if i == len(data) || data[i] != '"' {
			return bad("want a key")
		}
		end := slices.Index(data[i+1:], '"')
		if end < 0 {
			return bad("unterminated key")
		}
		key := string(data[i+1 : i+1+end])
		i = skipSpace(data, i+2+end)
		if i == len(data) || data[i] != ':' {
			return bad("want ':'")
		}
		i = skipSpace(data, i+1)
		if key == "latency" {
			j, depth := i, 0
			for ; j < len(data); j++ {
				if data[j] == '[' {
					depth++
				} else if data[j] == ']' {
					if depth--; depth == 0 {
						break
					}
				}
			}
			if j == len(data) {
				return bad("unterminated latency")
			}
			if err := b.Latency.UnmarshalJSON(data[i : j+1]); err != nil {
				return err
			}
			i = j + 1
			continue
		}
		j := i
		for j < len(data) && (data[j] == '-' || data[j] >= '0' && data[j] <= '9') {
			j++
		}
		n, err := strconv.ParseInt(string(data[i:j]), 10, 64)
		if err != nil {
			return bad("want an integer for " + key)
		}
		switch key {
		case "ok":
			b.Successes = n
		case "failed":
			b.Failures = n
		case "cancelled":
			b.Cancelled = n
		}
		i = j
	}
	if i == len(data) {
		return bad("unterminated object")
	}
	return nil
}

func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\n' || data[i] == '\t' || data[i] == '\r') {
		i++
	}
	return i
}
