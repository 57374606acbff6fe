package memory

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// metrics are the embedded store's collectors, read from Stats at scrape
// time.
type metrics struct{}

// newMetrics registers s's gauges and counters on reg, once per store.
func newMetrics(reg prometheus.Registerer, s *Store) *metrics {
	f := promauto.With(reg)
	f.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "repcache", Name: "store_items",
		Help: "Items held by the embedded store (expired ones count until reclaimed)."},
		func() float64 { return float64(s.Stats().Items) })
	f.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "repcache", Name: "store_bytes",
		Help: "Bytes the embedded store's items occupy in its rings."},
		func() float64 { return float64(s.Stats().Bytes) })
	f.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "repcache", Name: "store_capacity_bytes",
		Help: "The embedded store's byte budget (cache.memory.max_bytes)."},
		func() float64 { return float64(s.Stats().Capacity) })
	f.NewCounterFunc(prometheus.CounterOpts{Namespace: "repcache", Name: "store_evictions_total",
		Help: "Live items the embedded store overwrote to make room (the oldest writes go first)."},
		func() float64 { return float64(s.Stats().Evictions) })
	if s.exp != nil {
		f.NewCounterFunc(prometheus.CounterOpts{Namespace: "repcache", Name: "store_expiry_reports_dropped_total",
			Help: "Expired items reclaimed by the embedded store but left out of repcache_expirations_total: they came faster than it could count them."},
			func() float64 { return float64(s.exp.dropped.Load()) })
	}
	return &metrics{}
}
