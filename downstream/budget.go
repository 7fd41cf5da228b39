package downstream

import (
	"sync"
	"time"
)

// budgetBuckets is the resolution of a retry budget's window.
const budgetBuckets = 10

// retryBudget counts first requests and retries to one host over a sliding
// window of budgetBuckets buckets.
type retryBudget struct {
	mu      sync.Mutex
	width   time.Duration // of a bucket
	buckets [budgetBuckets]struct {
		epoch           int64 // the bucket's index since the zero time; stale when old
		firsts, retries int64
	}
}

func newRetryBudget(window time.Duration) *retryBudget {
	return &retryBudget{width: max(window/budgetBuckets, time.Millisecond)}
}

func (b *retryBudget) bucket(now time.Time) int {
	epoch := now.UnixNano() / int64(b.width)
	i := int(epoch % budgetBuckets)
	if bk := &b.buckets[i]; bk.epoch != epoch {
		bk.epoch, bk.firsts, bk.retries = epoch, 0, 0
	}
	return i
}

// sums returns the first requests and retries of the window ending at now.
func (b *retryBudget) sums(now time.Time) (firsts, retries int64) {
	epoch := now.UnixNano() / int64(b.width)
	for _, bk := range b.buckets {
		if epoch-bk.epoch < budgetBuckets {
			firsts += bk.firsts
			retries += bk.retries
		}
	}
	return firsts, retries
}

// first counts a first request.
func (b *retryBudget) first(now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buckets[b.bucket(now)].firsts++
}

// take counts a retry if retries would stay within ratio of first requests.
func (b *retryBudget) take(now time.Time, ratio float64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	i := b.bucket(now)
	firsts, retries := b.sums(now)
	if float64(retries+1) > ratio*float64(firsts)+1e-9 {
		return false
	}
	b.buckets[i].retries++
	return true
}
