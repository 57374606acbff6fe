package policy

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/repcache/repcache/internal/ttl"
)

// Metrics are the map layer's Prometheus metrics. A reload builds a new
// Policy, so they are created once, by NewMetrics, and handed to every
// Policy through Options.Metrics.
type Metrics struct {
	lifetime     *prometheus.HistogramVec
	expiredReads *prometheus.CounterVec
	expirations  *prometheus.CounterVec
}

// NewMetrics creates the map metrics on reg, once per process.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	return &Metrics{
		lifetime: f.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "repcache", Name: "record_lifetime_seconds",
			Help:    "Lifetime given to each stored record, by map (derived from the record on postscreen and verify maps).",
			Buckets: []float64{60, 600, 3600, 6 * 3600, 86400, 3 * 86400, 7 * 86400, 14 * 86400, 31 * 86400, 60 * 86400, 90 * 86400, 180 * 86400},
		}, []string{"map"}),
		expiredReads: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: "repcache", Name: "expired_reads_total",
			Help: "Records read whose content had expired by Postfix's rules: postscreen by expired test (part = pregreet, dnsbl, ...), verify by status (part = ok, defer, bounce, todo).",
		}, []string{"map", "part"}),
		expirations: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: "repcache", Name: "expirations_total",
			Help: "Records that expired, by map and tier (cache: the embedded store, exact; backup: Redis keyspace events).",
		}, []string{"map", "tier"}),
	}
}

// addSeries creates the series of p's maps, so that dashboards show zeros
// rather than nothing.
func (m *Metrics) addSeries(p *Policy) {
	for _, mp := range p.maps {
		m.lifetime.WithLabelValues(mp.Name)
		for _, tier := range []string{"cache", "backup"} {
			m.expirations.WithLabelValues(mp.Name, tier)
		}
		switch mp.Rule.Kind {
		case ttl.Postscreen:
			for _, test := range ttl.PostscreenTests {
				m.expiredReads.WithLabelValues(mp.Name, strings.ToLower(test))
			}
		case ttl.Verify:
			for _, st := range ttl.VerifyStatuses {
				m.expiredReads.WithLabelValues(mp.Name, strings.ToLower(st))
			}
		}
	}
}

// Expired counts a record of the given storage key that expired in tier.
func (p *Policy) Expired(key []byte, tier string) {
	if p.metrics == nil {
		return
	}
	name := "other"
	if m := p.Lookup(key); m != nil {
		name = m.Name
	}
	p.metrics.expirations.WithLabelValues(name, tier).Inc()
}

func (p *Policy) observeLifetime(m *Map, seconds int64) {
	if p.metrics != nil {
		p.metrics.lifetime.WithLabelValues(m.Name).Observe(float64(seconds))
	}
}

// observeRead counts the expired parts of a record read from a typed map,
// by the rules package ttl applies to it.
func (p *Policy) observeRead(m *Map, value []byte, now int64) {
	if p.metrics == nil {
		return
	}
	switch m.Rule.Kind {
	case ttl.Postscreen:
		rec, err := ttl.ParsePostscreen(value)
		if err != nil {
			return
		}
		for i, stamp := range rec.Stamps {
			if ttl.TestExpired(stamp, now) {
				p.metrics.expiredReads.WithLabelValues(m.Name, strings.ToLower(ttl.PostscreenTests[i])).Inc()
			}
		}
	case ttl.Verify:
		rec, err := ttl.ParseVerify(value)
		if err != nil {
			return
		}
		if m.Rule.VerifyLife(rec.Status, rec.Probed, rec.Updated).Until() <= now {
			p.metrics.expiredReads.WithLabelValues(m.Name, strings.ToLower(ttl.VerifyStatuses[rec.Status])).Inc()
		}
	}
}
