package quota

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Freed is what Free did to one member.
type Freed struct {
	Endpoint      string
	Before, After int64 // its db file's size
	InUse         int64 // bytes in use after
	Quota         int64
	Took          time.Duration // defragmenting it
}

// FreeResult is what Free did.
type FreeResult struct {
	Compacted int64 // the revision etcd's history was compacted to
	Members   []Freed
	Disarmed  int // NOSPACE alarms disarmed
	// Full lists the members still at or over fullAt of their quota after
	// defragmenting: their alarms were left raised.
	Full []string
}

// Free makes room in etcd: it compacts the history up to the current
// revision (watchers behind it list again), defragments every endpoint one
// at a time (each blocks its member's reads and writes while it runs: about a
// second per 200 MB), then disarms the NOSPACE alarms of the members whose
// db file is now under fullAt of their quota (DefaultFullAt when 0). Deleting
// what takes the space is retention's job (serve --retention): Free gives
// back what deletes and compaction freed.
func Free(ctx context.Context, cli *clientv3.Client, quota int64, fullAt float64) (*FreeResult, error) {
	if fullAt <= 0 || fullAt > 1 {
		fullAt = DefaultFullAt
	}
	eps := cli.Endpoints()
	if len(eps) == 0 {
		return nil, errors.New("free etcd: no endpoint")
	}
	st, err := cli.Status(ctx, eps[0])
	if err != nil {
		return nil, fmt.Errorf("free etcd: status of %s: %w", eps[0], err)
	}
	res := &FreeResult{Compacted: st.Header.Revision}
	// A compaction is no write: etcd takes it under the NOSPACE alarm.
	if _, err := cli.Compact(ctx, res.Compacted, clientv3.WithCompactPhysical()); err != nil && !errors.Is(err, rpctypes.ErrCompacted) {
		return nil, fmt.Errorf("free etcd: compact to revision %d: %w", res.Compacted, err)
	}
	under := map[uint64]bool{}
	for _, ep := range eps {
		before, err := cli.Status(ctx, ep)
		if err != nil {
			return res, fmt.Errorf("free etcd: status of %s: %w", ep, err)
		}
		start := time.Now()
		if _, err := cli.Defragment(ctx, ep); err != nil {
			return res, fmt.Errorf("free etcd: defragment %s: %w", ep, err)
		}
		took := time.Since(start)
		after, err := cli.Status(ctx, ep)
		if err != nil {
			return res, fmt.Errorf("free etcd: status of %s: %w", ep, err)
		}
		q := after.DbSizeQuota
		if q <= 0 {
			q = quota
		}
		if q <= 0 {
			q = DefaultQuota
		}
		res.Members = append(res.Members, Freed{Endpoint: ep, Before: before.DbSize, After: after.DbSize,
			InUse: after.DbSizeInUse, Quota: q, Took: took})
		if float64(after.DbSize) < fullAt*float64(q) {
			under[after.Header.MemberId] = true
		} else {
			res.Full = append(res.Full, ep)
		}
	}
	alarms, err := cli.AlarmList(ctx)
	if err != nil {
		return res, fmt.Errorf("free etcd: list alarms: %w", err)
	}
	for _, a := range alarms.Alarms {
		if a.Alarm != etcdserverpb.AlarmType_NOSPACE || !under[a.MemberID] {
			continue
		}
		if _, err := cli.AlarmDisarm(ctx, &clientv3.AlarmMember{MemberID: a.MemberID, Alarm: a.Alarm}); err != nil {
			return res, fmt.Errorf("free etcd: disarm NOSPACE of member %x: %w", a.MemberID, err)
		}
		res.Disarmed++
	}
	return res, nil
}
