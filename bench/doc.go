// Package bench measures starbook against its floor, in one process and one
// run: every figure sits next to the raw cost of a fenced etcd checkpoint txn
// measured on the same embedded etcd (fsync on), because the disk's fsync
// latency swings by 2x from one hour to the next on the machines we run on.
//
// RunScale (starbook bench --scale) measures growth instead: a fresh node
// process per size, loaded with that many ended executions, its pages, store
// size, memory and restart compared between sizes as ratios.
package bench
