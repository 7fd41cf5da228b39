package starbook

import (
	"context"
	"time"
)

// StorageKeeper is the optional part of a Service that reports the store's
// space (etcd's db file against its quota) and frees it.
type StorageKeeper interface {
	// StoreSpace reads the space now.
	StoreSpace(ctx context.Context) (*StoreSpace, error)
	// FreeStore compacts etcd's history, defragments every member and
	// disarms the NOSPACE alarm of those back under the threshold; it
	// blocks each member's reads and writes while it defragments it.
	FreeStore(ctx context.Context) (*StoreSpace, error)
}

// StoreSpace is the store's space as a node's storage guard reads it.
type StoreSpace struct {
	// DBBytes is the largest member's db file (what etcd's quota is checked
	// against), InUse the bytes of it in use, Quota that member's quota.
	DBBytes int64 `json:"db_bytes"`
	InUse   int64 `json:"db_in_use_bytes"`
	Quota   int64 `json:"quota_bytes"`
	// Alarm is true while etcd's NOSPACE alarm is raised.
	Alarm bool `json:"nospace_alarm,omitempty"`
	// Refusal, while new runs are refused, says why and what to do.
	Refusal string    `json:"refusal,omitempty"`
	At      time.Time `json:"at"`
	// Freed is what FreeStore did.
	Freed *StoreFreed `json:"freed,omitempty"`
}

// StoreFreed is what a FreeStore did.
type StoreFreed struct {
	Compacted int64             `json:"compacted_to_revision"`
	Members   []StoreMemberFree `json:"members"`
	Disarmed  int               `json:"alarms_disarmed"`
	// StillFull lists the members whose db file is still over the
	// threshold: delete more (a shorter serve --retention) or raise the
	// quota.
	StillFull []string `json:"still_full,omitempty"`
}

// StoreMemberFree is one member's db file before and after a FreeStore.
type StoreMemberFree struct {
	Endpoint string        `json:"endpoint"`
	Before   int64         `json:"before_bytes"`
	After    int64         `json:"after_bytes"`
	InUse    int64         `json:"in_use_bytes"`
	Quota    int64         `json:"quota_bytes"`
	Took     time.Duration `json:"took_ns"`
}
