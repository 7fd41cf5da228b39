package quota

import (
	"fmt"

	"github.com/dustin/go-humanize"
)

// Quota bounds.
const (
	// DefaultQuota is the embedded member's quota, etcd's own default. The
	// member keeps its whole db file mapped and resident (bbolt maps it with
	// MAP_POPULATE), so the quota is also how much of a node's memory the
	// file may take: 2 GiB holds about a million retained executions
	// (100k parked ones took 110 to 230 MB) and fits the 3 GiB memory limit
	// the shipped Kubernetes manifest gives a node.
	DefaultQuota int64 = 2 << 30
	// MaxRecommended is the largest quota etcd recommends (8 GiB): a larger
	// one is allowed, and warned about.
	MaxRecommended int64 = 8 << 30
	// MinQuota is the smallest quota ParseSize takes: a fresh store with a
	// few runbooks is already a fraction of it.
	MinQuota int64 = 1 << 20
)

// ParseSize parses a quota as serve --etcd-quota takes it: a number and an
// optional unit, SI (kB, MB, GB: powers of 1000) or IEC (KiB, MiB, GiB:
// powers of 1024), case-insensitive, e.g. "64MB", "8GiB", "1.5 GB"; no
// unit is bytes. It refuses less than MinQuota.
func ParseSize(s string) (int64, error) {
	n, err := humanize.ParseBytes(s)
	if err != nil {
		return 0, fmt.Errorf("size %q: want a number and a unit, e.g. 512MiB, 2GiB or 8GB", s)
	}
	if n < uint64(MinQuota) {
		return 0, fmt.Errorf("size %q: under the minimum of %s", s, FormatSize(MinQuota))
	}
	if n > 1<<50 {
		return 0, fmt.Errorf("size %q: too large", s)
	}
	return int64(n), nil
}

// FormatSize writes n bytes for people, in IEC units (e.g. "7.5 MiB").
func FormatSize(n int64) string {
	if n < 0 {
		return "-" + humanize.IBytes(uint64(-n))
	}
	return humanize.IBytes(uint64(n))
}
