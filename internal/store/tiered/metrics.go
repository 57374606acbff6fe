package tiered

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"
)

// Metrics are the tiers' Prometheus metrics.
type Metrics struct {
	lookups      *prometheus.CounterVec
	backupWrites *prometheus.CounterVec
}

// NewMetrics registers the tiers' metrics for s; maps are the map names to
// create series for up front.
func (s *Store) NewMetrics(reg prometheus.Registerer, maps []string) *Metrics {
	m := &Metrics{
		lookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "repcache", Name: "lookups_total",
			Help: "Reads per tier and result, by map: the hit ratio per map and tier (backup lookups happen on cache misses).",
		}, []string{"map", "tier", "result"}),
		backupWrites: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "repcache", Name: "backup_writes_total",
			Help: "Writes to the backup tier, by mode (sync, async) and result (ok, error).",
		}, []string{"mode", "result"}),
	}
	reg.MustRegister(m.lookups, m.backupWrites,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "repcache", Name: "backup_queue_length",
			Help: "Async backup writes waiting to be written."}, func() float64 { return float64(s.QueueLen()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "repcache", Name: "backup_dropped_total",
			Help: "Async backup writes dropped: queue full or shutting down."}, func() float64 { return float64(s.Counts.AsyncDropped.Load()) }),
	)
	for _, name := range append(maps, "other") {
		for _, tier := range []string{"cache", "backup"} {
			m.lookups.WithLabelValues(name, tier, "hit")
			m.lookups.WithLabelValues(name, tier, "miss")
		}
	}
	for _, mode := range []string{"sync", "async"} {
		m.backupWrites.WithLabelValues(mode, "ok")
		m.backupWrites.WithLabelValues(mode, "error")
	}
	s.metrics = m
	return m
}

func (s *Store) lookup(key []byte, tier, result string) {
	if s.metrics == nil {
		return
	}
	name := "other"
	if s.o.MapOf != nil {
		if n := s.o.MapOf(key); n != "" {
			name = n
		}
	}
	s.metrics.lookups.WithLabelValues(name, tier, result).Inc()
}

func (s *Store) backupWrite(mode string, ok bool, n int) {
	if s.metrics == nil || n == 0 {
		return
	}
	result := "ok"
	if !ok {
		result = "error"
	}
	s.metrics.backupWrites.WithLabelValues(mode, result).Add(float64(n))
}

// GuardMetrics are the backends' Prometheus metrics, shared by the guards.
type GuardMetrics struct {
	duration *prometheus.HistogramVec
	errors   *prometheus.CounterVec
	up       *prometheus.GaugeVec
	breaker  *prometheus.GaugeVec
}

// NewGuardMetrics creates and registers the backend metrics.
func NewGuardMetrics(reg prometheus.Registerer) *GuardMetrics {
	m := &GuardMetrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "repcache", Name: "backend_request_duration_seconds",
			Help:    "Duration of calls to a backend, by backend and operation.",
			Buckets: []float64{100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 1},
		}, []string{"backend", "operation"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "repcache", Name: "backend_errors_total",
			Help: "Backend calls that failed (timeouts, refused connections, malformed replies, open breaker); misses are not errors.",
		}, []string{"backend"}),
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "repcache", Name: "backend_up",
			Help: "1 while the backend answers (its circuit breaker is not open), else 0.",
		}, []string{"backend"}),
		breaker: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "repcache", Name: "backend_breaker_state",
			Help: "Circuit breaker state per backend: 0 closed, 1 half-open (probing), 2 open (calls fail at once).",
		}, []string{"backend"}),
	}
	reg.MustRegister(m.duration, m.errors, m.up, m.breaker)
	return m
}

// WithMetrics makes g record into m.
func (g *Guard) WithMetrics(m *GuardMetrics) *Guard {
	g.metrics = m
	m.errors.WithLabelValues(g.name)
	g.setState(g.cb.State())
	return g
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
	if err != nil && !isAnswer(err) {
		g.metrics.errors.WithLabelValues(g.name).Inc()
	}
}
