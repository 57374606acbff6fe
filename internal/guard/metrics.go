package guard

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/sony/gobreaker/v2"
)

// Metrics are the backends' Prometheus metrics, shared by every Guard of a
// process (one series per backend label), so they are built once, by
// NewMetrics, and handed to each Guard through Options.
type Metrics struct {
	duration *prometheus.HistogramVec
	errors   *prometheus.CounterVec
	up       *prometheus.GaugeVec
	breaker  *prometheus.GaugeVec
}

// NewMetrics creates and registers the backend metrics.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	return &Metrics{
		duration: f.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "repcache", Name: "backend_request_duration_seconds",
			Help:    "Duration of calls to a backend, by backend and operation.",
			Buckets: []float64{100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 1},
		}, []string{"backend", "operation"}),
		errors: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: "repcache", Name: "backend_errors_total",
			Help: "Backend calls that failed (timeouts, refused connections, malformed replies, open breaker); misses are not errors.",
		}, []string{"backend"}),
		up: f.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "repcache", Name: "backend_up",
			Help: "1 while the backend answers (its circuit breaker is not open), else 0.",
		}, []string{"backend"}),
		breaker: f.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "repcache", Name: "backend_breaker_state",
			Help: "Circuit breaker state per backend: 0 closed, 1 half-open (probing), 2 open (calls fail at once).",
		}, []string{"backend"}),
	}
}

func (g *Guard) setState(st gobreaker.State) {
	if g.metrics == nil {
		return
	}
	up := 1.0
	if st == gobreaker.StateOpen {
		up = 0
	}
	g.metrics.up.WithLabelValues(g.name).Set(up)
	g.metrics.breaker.WithLabelValues(g.name).Set(float64(st))
}

func (g *Guard) observe(op string, start time.Time, err error) {
	if g.metrics == nil {
		return
	}
	g.metrics.duration.WithLabelValues(g.name, op).Observe(time.Since(start).Seconds())
	if Failed(err) {
		g.metrics.errors.WithLabelValues(g.name).Inc()
	}
}
