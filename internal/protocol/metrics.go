package protocol

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/repcache/repcache/internal/promcache"
)

// metrics are the protocol layer's Prometheus metrics, built once per
// handler family (NewHandler with Options.Registerer).
type metrics struct {
	commands  *promcache.Counters
	duration  *prometheus.HistogramVec
	durations map[string]prometheus.Observer // per command, resolved once: the set is fixed
}

// newMetrics creates the protocol metrics on reg.
func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	m := &metrics{
		commands: promcache.New(f.NewCounterVec(prometheus.CounterOpts{
			Namespace: "repcache", Name: "commands_total",
			Help: "Commands answered, by map of the key (other: no map; none: no key), command and status (hit, miss, stored, not_stored, exists, deleted, not_found, refused, error).",
		}, []string{"map", "command", "status"})),
		duration: f.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "repcache", Name: "request_duration_seconds",
			Help:    "Time from a command line read to its reply written to the buffer, by command.",
			Buckets: []float64{50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 1},
		}, []string{"command"}),
	}
	m.durations = map[string]prometheus.Observer{}
	for _, c := range commandNames {
		m.durations[c] = m.duration.WithLabelValues(c)
	}
	return m
}

// count records a command's outcome, labelled with the map the policy
// layer resolved for the request (read from the session's request carrier
// after the call).
func (s *Session) count(cmd string, key []byte, status string) {
	m := s.h.metrics
	if m == nil {
		return
	}
	mapName := "none"
	if key != nil {
		mapName = "other"
		if n := s.req.Route.Map; n != "" {
			mapName = n
		}
	}
	m.commands.With(mapName, cmd, status).Inc()
}

func (s *Session) observe(cmd string, start time.Time) {
	if m := s.h.metrics; m != nil {
		m.durations[cmd].Observe(time.Since(start).Seconds())
	}
}
