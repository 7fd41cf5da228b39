package observe

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/starbook/starbook/quota"
)

var (
	dbBytesDesc = prometheus.NewDesc("starbook_etcd_db_bytes",
		"Size of etcd's db file, what its quota is checked against (the largest member's, as this node's storage guard last read it; only a defragmentation lowers it).", nil, nil)
	dbInUseDesc = prometheus.NewDesc("starbook_etcd_db_in_use_bytes",
		"Bytes of that db file in use: the rest is free pages a defragmentation gives back.", nil, nil)
	quotaDesc = prometheus.NewDesc("starbook_etcd_quota_bytes",
		"That member's space quota (serve --etcd-quota): past it etcd raises NOSPACE and refuses every write; starbook refuses new runs from 90% of it.", nil, nil)
	refusingDesc = prometheus.NewDesc("starbook_storage_full",
		"1 while this node refuses new runs because the store is full (90% of the quota, or etcd's NOSPACE alarm).", nil, nil)
)

// WatchStorage exports g's last reading of etcd's db size and quota.
func (m *Metrics) WatchStorage(g *quota.Guard) {
	m.Registry.MustRegister(storageCollector{g})
}

type storageCollector struct{ g *quota.Guard }

func (c storageCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- dbBytesDesc
	ch <- dbInUseDesc
	ch <- quotaDesc
	ch <- refusingDesc
}

func (c storageCollector) Collect(ch chan<- prometheus.Metric) {
	r, ok := c.g.Reading()
	if !ok {
		return
	}
	ch <- prometheus.MustNewConstMetric(dbBytesDesc, prometheus.GaugeValue, float64(r.Size))
	ch <- prometheus.MustNewConstMetric(dbInUseDesc, prometheus.GaugeValue, float64(r.InUse))
	ch <- prometheus.MustNewConstMetric(quotaDesc, prometheus.GaugeValue, float64(r.Quota))
	full := 0.0
	if c.g.Admit() != nil {
		full = 1
	}
	ch <- prometheus.MustNewConstMetric(refusingDesc, prometheus.GaugeValue, full)
}
