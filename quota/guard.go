package quota

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	sbruntime "github.com/starbook/starbook/runtime"
)

// DefaultFullAt is the fraction of the quota from which a Guard refuses new
// starts: the last tenth is left to the runs in flight, their steps and
// ends, and to the dead letters of what is refused.
const DefaultFullAt = 0.9

// Client is what a Guard reads of etcd: each endpoint's Status, and the
// alarms it may disarm. *clientv3.Client is one.
type Client interface {
	Endpoints() []string
	Status(ctx context.Context, endpoint string) (*clientv3.StatusResponse, error)
	AlarmList(ctx context.Context) (*clientv3.AlarmResponse, error)
	AlarmDisarm(ctx context.Context, m *clientv3.AlarmMember) (*clientv3.AlarmResponse, error)
}

// Config configures a Guard. Zero fields take the defaults.
type Config struct {
	Client Client
	// Quota is the declared quota (serve --etcd-quota). A member that
	// reports its quota (etcd 3.6 and later, Status.DbSizeQuota) is judged
	// by what it reports; an older one by Quota, or DefaultQuota.
	Quota int64
	// FullAt is the fraction of the quota from which starts are refused
	// (default DefaultFullAt).
	FullAt float64
	// Interval between reads of the members' Status (default 5s).
	Interval time.Duration
	// After waits between reads (default time.After): tests drive it.
	After func(time.Duration) <-chan time.Time
	// Disarm lets the guard disarm a NOSPACE alarm of a member it read once
	// that member's db file is back under FullAt (after a defragmentation).
	// For the embedded member only: an external cluster's alarms are its
	// operators'.
	Disarm bool
	Logger *slog.Logger
	Now    func() time.Time
}

// Reading is what a Guard last read of the members.
type Reading struct {
	// Size is the largest member's db file (etcd's Status.DbSize, what its
	// quota is checked against), InUse the bytes of that file in use, and
	// Quota that member's quota.
	Size, InUse, Quota int64
	// Alarm is true while a member has a NOSPACE alarm raised (or a write
	// met etcd's NOSPACE since the last read).
	Alarm bool
	At    time.Time
}

// Ratio is Size over Quota.
func (r Reading) Ratio() float64 {
	if r.Quota <= 0 {
		return 0
	}
	return float64(r.Size) / float64(r.Quota)
}

// Guard refuses new starts while the store is nearly full. Run keeps its
// reading fresh; Admit is cheap (a lock and a comparison).
type Guard struct {
	cfg Config

	mu       sync.Mutex
	last     Reading
	read     bool // last holds a reading
	full     bool // as of the last reading or a NOSPACE noticed
	warnedOf int64
}

// New returns a guard over cfg.Client.
func New(cfg Config) *Guard {
	if cfg.FullAt <= 0 || cfg.FullAt > 1 {
		cfg.FullAt = DefaultFullAt
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 5 * time.Second
	}
	if cfg.After == nil {
		cfg.After = time.After
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Guard{cfg: cfg}
}

// Run reads the members' Status now and every Interval until ctx is done.
// A failed read keeps the last reading (etcd unreachable refuses writes by
// itself) and is logged.
func (g *Guard) Run(ctx context.Context) {
	for {
		if _, err := g.Refresh(ctx); err != nil && ctx.Err() == nil {
			g.cfg.Logger.Warn("read etcd's db size", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-g.cfg.After(g.cfg.Interval):
		}
	}
}

// Refresh reads every endpoint's Status and the alarms, disarms what
// Config.Disarm allows, and returns the new reading.
func (g *Guard) Refresh(ctx context.Context) (Reading, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	r := Reading{At: g.cfg.Now()}
	under := map[uint64]bool{} // members read whose file is back under FullAt
	var errs []error
	read := 0
	for _, ep := range g.cfg.Client.Endpoints() {
		st, err := g.cfg.Client.Status(ctx, ep)
		if err != nil {
			errs = append(errs, fmt.Errorf("status of %s: %w", ep, err))
			continue
		}
		read++
		q := st.DbSizeQuota
		if q <= 0 {
			q = g.cfg.Quota
		}
		if q <= 0 {
			q = DefaultQuota
		}
		g.checkDeclared(st.DbSizeQuota)
		if float64(st.DbSize) < g.cfg.FullAt*float64(q) && st.Header != nil {
			under[st.Header.MemberId] = true
		}
		if read == 1 || float64(st.DbSize)/float64(q) > r.Ratio() {
			r.Size, r.InUse, r.Quota = st.DbSize, st.DbSizeInUse, q
		}
		for _, e := range st.Errors {
			if strings.Contains(e, etcdserverpb.AlarmType_NOSPACE.String()) {
				r.Alarm = true
			}
		}
	}
	if read == 0 {
		return Reading{}, errors.Join(errs...)
	}
	if r.Alarm && g.cfg.Disarm {
		disarmed, err := g.disarm(ctx, under)
		if err != nil {
			errs = append(errs, err)
		} else if disarmed {
			r.Alarm = false
		}
	}
	g.set(r)
	return r, errors.Join(errs...)
}

// checkDeclared warns once when the quota a member reports is not the
// declared one.
func (g *Guard) checkDeclared(reported int64) {
	if reported <= 0 || g.cfg.Quota <= 0 || reported == g.cfg.Quota {
		return
	}
	g.mu.Lock()
	warn := g.warnedOf != reported
	g.warnedOf = reported
	g.mu.Unlock()
	if warn {
		g.cfg.Logger.Warn("etcd reports another quota than --etcd-quota: the guard uses etcd's",
			"reported", FormatSize(reported), "declared", FormatSize(g.cfg.Quota))
	}
}

// disarm disarms the NOSPACE alarms of the members in under; it reports
// whether no NOSPACE alarm is left.
func (g *Guard) disarm(ctx context.Context, under map[uint64]bool) (bool, error) {
	alarms, err := g.cfg.Client.AlarmList(ctx)
	if err != nil {
		return false, fmt.Errorf("list etcd alarms: %w", err)
	}
	left := false
	for _, a := range alarms.Alarms {
		if a.Alarm != etcdserverpb.AlarmType_NOSPACE {
			continue
		}
		if !under[a.MemberID] {
			left = true
			continue
		}
		if _, err := g.cfg.Client.AlarmDisarm(ctx, &clientv3.AlarmMember{MemberID: a.MemberID, Alarm: a.Alarm}); err != nil {
			return false, fmt.Errorf("disarm etcd's NOSPACE alarm: %w", err)
		}
		g.cfg.Logger.Info("etcd's NOSPACE alarm disarmed: its db file is back under the guard's threshold",
			"member", fmt.Sprintf("%x", a.MemberID))
	}
	return !left, nil
}

// set records r and logs when the store becomes full or has room again.
func (g *Guard) set(r Reading) {
	full := r.Alarm || r.Ratio() >= g.cfg.FullAt
	g.mu.Lock()
	was := g.full
	g.last, g.read, g.full = r, true, full
	g.mu.Unlock()
	switch {
	case full && !was:
		g.cfg.Logger.Error("storage full: new runs are refused", "err", g.fullError(r).Error())
	case !full && was:
		g.cfg.Logger.Info("storage has room again: new runs are accepted",
			"db_size", FormatSize(r.Size), "quota", FormatSize(r.Quota))
	}
}

// Reading returns the last reading, and false before the first.
func (g *Guard) Reading() (Reading, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.last, g.read
}

// Admit returns nil while new runs may start, or a *FullError.
func (g *Guard) Admit() error {
	if g == nil {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.full {
		return nil
	}
	return g.fullError(g.last)
}

// Noticed tells the guard of a write's error: etcd's NOSPACE makes it refuse
// starts at once, before its next read. It reports whether err was NOSPACE.
func (g *Guard) Noticed(err error) bool {
	if !IsNoSpace(err) {
		return false
	}
	if g == nil {
		return true
	}
	g.mu.Lock()
	was := g.full
	g.last.Alarm, g.full = true, true
	r := g.last
	g.mu.Unlock()
	if !was {
		g.cfg.Logger.Error("storage full: new runs are refused", "err", g.fullError(r).Error())
	}
	return true
}

func (g *Guard) fullError(r Reading) *FullError {
	return &FullError{Size: r.Size, InUse: r.InUse, Quota: r.Quota, Alarm: r.Alarm, FullAt: g.cfg.FullAt}
}

// FullError is a start refused because the store is nearly full. It
// unwraps to runtime.ErrStorageFull (the API answers 507).
type FullError struct {
	Size, InUse, Quota int64
	Alarm              bool // etcd raised NOSPACE
	FullAt             float64
}

func (e *FullError) Error() string {
	var b strings.Builder
	b.WriteString("storage full: ")
	if e.Quota > 0 {
		fmt.Fprintf(&b, "etcd's db file is %s of its %s quota (%.0f%%; new runs are refused from %.0f%%)",
			FormatSize(e.Size), FormatSize(e.Quota), 100*float64(e.Size)/float64(e.Quota), 100*e.FullAt)
	}
	if e.Alarm {
		if e.Quota > 0 {
			b.WriteString(", and ")
		}
		b.WriteString("etcd raised its NOSPACE alarm (it refuses every write)")
	}
	b.WriteString(". Runs in flight go on. " + Remedy)
	return b.String()
}

func (e *FullError) Unwrap() error { return sbruntime.ErrStorageFull }

// Remedy says how to free space; every refusal and NOSPACE log line ends
// with it.
const Remedy = "To free space: delete what ended sooner (serve --retention), then run " +
	"`starbook store free` (compacts etcd's history, defragments its db file and disarms the NOSPACE alarm; " +
	"with etcdctl: compact, defrag, alarm disarm), or raise the quota (serve --etcd-quota)."

// IsNoSpace reports whether err is etcd refusing a write for its quota
// ("etcdserver: mvcc: database space exceeded"), however it was wrapped or
// carried (a gRPC status, clientv3's error, text).
func IsNoSpace(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, rpctypes.ErrNoSpace) {
		return true
	}
	return strings.Contains(err.Error(), rpctypes.ErrorDesc(rpctypes.ErrGRPCNoSpace))
}
