package server

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/repcache/repcache/internal/protocol"
)

// RegisterMetrics registers the connection metrics, read from c at scrape
// time.
func RegisterMetrics(reg prometheus.Registerer, c *protocol.Counters) {
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "repcache", Name: "connections_current",
			Help: "Client connections open now."},
			func() float64 { return float64(c.CurrConnections.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "repcache", Name: "connections_total",
			Help: "Client connections accepted, refused ones included."},
			func() float64 { return float64(c.TotalConnections.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "repcache", Name: "connections_rejected_total",
			Help: "Client connections refused over limits.max_connections."},
			func() float64 { return float64(c.RejectedConnections.Load()) }),
	)
}
