package memory

import "github.com/prometheus/client_golang/prometheus"

// RegisterMetrics registers the embedded store's gauges and counters; they
// are read from Stats at scrape time.
func (s *Store) RegisterMetrics(reg prometheus.Registerer) {
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "repcache", Name: "store_items",
			Help: "Items held by the embedded store (expired ones count until reclaimed)."},
			func() float64 { return float64(s.Stats().Items) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "repcache", Name: "store_bytes",
			Help: "Bytes the embedded store's items occupy in its rings."},
			func() float64 { return float64(s.Stats().Bytes) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "repcache", Name: "store_capacity_bytes",
			Help: "The embedded store's byte budget (cache.memory.max_bytes)."},
			func() float64 { return float64(s.Stats().Capacity) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "repcache", Name: "store_evictions_total",
			Help: "Live items the embedded store overwrote to make room (the oldest writes go first)."},
			func() float64 { return float64(s.Stats().Evictions) }),
	)
}
