package quota

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	sbruntime "github.com/starbook/starbook/runtime"
)

// fakeEtcd answers Status from sizes set by the test.
type fakeEtcd struct {
	mu       sync.Mutex
	size     map[string]int64 // by endpoint
	quota    int64            // reported (0: an etcd before 3.6)
	alarm    map[uint64]bool  // NOSPACE by member
	disarmed []uint64
	reads    int
}

func (f *fakeEtcd) Endpoints() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var eps []string
	for ep := range f.size {
		eps = append(eps, ep)
	}
	return eps
}

func memberOf(ep string) uint64 { return uint64(len(ep)) }

func (f *fakeEtcd) Status(_ context.Context, ep string) (*clientv3.StatusResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	st := &clientv3.StatusResponse{Header: &etcdserverpb.ResponseHeader{MemberId: memberOf(ep)},
		DbSize: f.size[ep], DbSizeInUse: f.size[ep] / 2, DbSizeQuota: f.quota}
	for m := range f.alarm {
		st.Errors = append(st.Errors, (&etcdserverpb.AlarmMember{MemberID: m, Alarm: etcdserverpb.AlarmType_NOSPACE}).String())
	}
	return st, nil
}

func (f *fakeEtcd) AlarmList(context.Context) (*clientv3.AlarmResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	resp := &clientv3.AlarmResponse{}
	for m := range f.alarm {
		resp.Alarms = append(resp.Alarms, &etcdserverpb.AlarmMember{MemberID: m, Alarm: etcdserverpb.AlarmType_NOSPACE})
	}
	return resp, nil
}

func (f *fakeEtcd) AlarmDisarm(_ context.Context, m *clientv3.AlarmMember) (*clientv3.AlarmResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.alarm, m.MemberID)
	f.disarmed = append(f.disarmed, m.MemberID)
	return &clientv3.AlarmResponse{}, nil
}

func (f *fakeEtcd) set(ep string, size int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.size[ep] = size
}

func TestGuard(t *testing.T) {
	const mb = 1 << 20
	for _, tc := range []struct {
		name     string
		sizes    map[string]int64
		reported int64 // the quota etcd reports
		declared int64 // --etcd-quota
		alarm    bool
		disarm   bool
		full     bool
		want     string // in the refusal
		disarmed int
	}{
		{name: "room", sizes: map[string]int64{"a": 89 * mb}, reported: 100 * mb},
		{name: "at 90%", sizes: map[string]int64{"a": 90 * mb}, reported: 100 * mb, full: true,
			want: "etcd's db file is 90 MiB of its 100 MiB quota (90%; new runs are refused from 90%)"},
		{name: "declared quota when etcd reports none", sizes: map[string]int64{"a": 60 * mb}, declared: 64 * mb, full: true,
			want: "60 MiB of its 64 MiB quota"},
		{name: "reported quota wins over the declared", sizes: map[string]int64{"a": 60 * mb}, reported: 1 << 30, declared: 64 * mb},
		{name: "etcd's default without either", sizes: map[string]int64{"a": 1900 * mb}, full: true, want: "of its 2.0 GiB quota"},
		{name: "the fullest member counts", sizes: map[string]int64{"a": 10 * mb, "bb": 95 * mb, "ccc": 20 * mb}, reported: 100 * mb, full: true,
			want: "95 MiB of its 100 MiB"},
		{name: "alarm", sizes: map[string]int64{"a": 10 * mb}, reported: 100 * mb, alarm: true, full: true,
			want: "etcd raised its NOSPACE alarm"},
		{name: "alarm disarmed once under", sizes: map[string]int64{"a": 10 * mb}, reported: 100 * mb, alarm: true, disarm: true,
			disarmed: 1},
		{name: "alarm kept while over", sizes: map[string]int64{"a": 95 * mb}, reported: 100 * mb, alarm: true, disarm: true, full: true,
			want: "NOSPACE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeEtcd{size: tc.sizes, quota: tc.reported, alarm: map[uint64]bool{}}
			if tc.alarm {
				for ep := range tc.sizes {
					f.alarm[memberOf(ep)] = true
				}
			}
			g := New(Config{Client: f, Quota: tc.declared, Disarm: tc.disarm})
			if err := g.Admit(); err != nil {
				t.Fatalf("before any reading: %v", err)
			}
			if _, err := g.Refresh(context.Background()); err != nil {
				t.Fatal(err)
			}
			err := g.Admit()
			if !tc.full {
				if err != nil {
					t.Fatalf("Admit: %v", err)
				}
			} else {
				if !errors.Is(err, sbruntime.ErrStorageFull) {
					t.Fatalf("Admit = %v, want ErrStorageFull", err)
				}
				for _, s := range []string{tc.want, "Runs in flight go on", "serve --retention", "starbook store free", "alarm disarm", "serve --etcd-quota"} {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("refusal %q\nlacks %q", err, s)
					}
				}
			}
			if len(f.disarmed) != tc.disarmed {
				t.Errorf("disarmed %v, want %d", f.disarmed, tc.disarmed)
			}
		})
	}
}

func TestGuardNoticesNoSpace(t *testing.T) {
	f := &fakeEtcd{size: map[string]int64{"a": 1 << 20}, quota: 100 << 20, alarm: map[uint64]bool{}}
	g := New(Config{Client: f})
	if _, err := g.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if g.Noticed(errors.New("some other error")) || g.Admit() != nil {
		t.Fatal("another error made the guard refuse")
	}
	if !g.Noticed(fmt.Errorf("checkpoint: %w", rpctypes.ErrNoSpace)) {
		t.Fatal("NOSPACE not recognised")
	}
	if err := g.Admit(); err == nil || !strings.Contains(err.Error(), "NOSPACE") {
		t.Fatalf("after NOSPACE, Admit = %v", err)
	}
}

func TestIsNoSpace(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{rpctypes.ErrNoSpace, true},
		{rpctypes.ErrGRPCNoSpace, true},
		{fmt.Errorf("record x: %w", rpctypes.ErrNoSpace), true},
		{errors.New("release 01J: etcdserver: mvcc: database space exceeded"), true},
		{rpctypes.ErrTooManyRequests, false},
		{context.DeadlineExceeded, false},
	} {
		if got := IsNoSpace(tc.err); got != tc.want {
			t.Errorf("IsNoSpace(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// TestGuardRun: the guard reads at start and at each interval of its clock.
func TestGuardRun(t *testing.T) {
	f := &fakeEtcd{size: map[string]int64{"a": 1 << 20}, quota: 100 << 20, alarm: map[uint64]bool{}}
	tick := make(chan time.Time)
	var asked sync.WaitGroup
	asked.Add(1)
	var once sync.Once
	g := New(Config{Client: f, Interval: time.Hour, After: func(d time.Duration) <-chan time.Time {
		if d != time.Hour {
			t.Errorf("waits %s, want the interval", d)
		}
		once.Do(asked.Done)
		return tick
	}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); g.Run(ctx) }()
	asked.Wait() // read once, waiting for the tick
	if err := g.Admit(); err != nil {
		t.Fatal(err)
	}
	f.set("a", 99<<20)
	tick <- time.Now()
	// Run reads, then waits again: once it asks for the next tick, the
	// reading is in.
	tick <- time.Now()
	if err := g.Admit(); !errors.Is(err, sbruntime.ErrStorageFull) {
		t.Fatalf("after a read at 99%%: Admit = %v", err)
	}
	cancel()
	<-done
}
