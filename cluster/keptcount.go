package cluster

import "sync"

// Counting an execution's kept signals of one name is a range over their
// keys: in a storm, a group's parked run holds thousands, and counting them
// for every delivery cost more than the delivery (22% of all CPU with 20
// groups of 1,000). A store counts them once in a while and adds what it
// keeps itself meanwhile.

// keptCounts holds, per execution and signal name, the kept signals as this
// store last counted them and how many it kept since.
type keptCounts struct {
	mu sync.Mutex
	m  map[string]keptCount
}

type keptCount struct{ counted, since int }

// maxKeptCounts bounds the estimates held: past it, they are all dropped.
const maxKeptCounts = 10_000

// recountEvery is how many keeps of its own a store adds to a count before
// it counts again: between counts, each other node sending to the same
// execution may keep as many unseen, so the bound is soft by that much per
// node (5%).
func recountEvery(bound int) int { return max(1, bound/20) }

func keptKey(id, name string) string { return id + "/" + name }

// estimate returns the kept signals of name for execution id, and true, if
// it is recent enough to decide on the bound with: fewer than recountEvery
// keeps since the count, and that far below the bound. Else the caller
// counts.
func (c *keptCounts) estimate(id, name string, bound int) (int, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k, ok := c.m[keptKey(id, name)]
	every := recountEvery(bound)
	if !ok || k.since >= every || k.counted+k.since+every >= bound {
		return 0, false
	}
	return k.counted + k.since, true
}

// counted records a count of the kept signals of name for execution id.
func (c *keptCounts) counted(id, name string, n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxKeptCounts {
		c.m = map[string]keptCount{}
	}
	c.m[keptKey(id, name)] = keptCount{counted: n}
}

// kept adds n signals of name kept for execution id since its count.
func (c *keptCounts) kept(id, name string, n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	key := keptKey(id, name)
	if k, ok := c.m[key]; ok {
		k.since += n
		c.m[key] = k
	}
}
