package server

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// metrics are the server's collectors: the connection counts, read at
// scrape time.
type metrics struct{}

// newMetrics registers the connection metrics of s on reg, once per server.
func newMetrics(reg prometheus.Registerer, s *Server) *metrics {
	f := promauto.With(reg)
	f.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "repcache", Name: "connections_current",
		Help: "Client connections open now."},
		func() float64 { return float64(s.curr.Load()) })
	f.NewCounterFunc(prometheus.CounterOpts{Namespace: "repcache", Name: "connections_total",
		Help: "Client connections accepted, refused ones included."},
		func() float64 { return float64(s.total.Load()) })
	f.NewCounterFunc(prometheus.CounterOpts{Namespace: "repcache", Name: "connections_rejected_total",
		Help: "Client connections refused over limits.max_connections."},
		func() float64 { return float64(s.rejected.Load()) })
	return &metrics{}
}
