package policy

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/repcache/repcache/internal/ttl"
)

// Metrics are the map layer's Prometheus metrics.
type Metrics struct {
	lifetime     *prometheus.HistogramVec
	expiredReads *prometheus.CounterVec
	expirations  *prometheus.CounterVec
}

// NewMetrics creates and registers the map metrics, with a series per
// configured map so that dashboards show zeros rather than nothing.
func (p *Policy) NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		lifetime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "repcache", Name: "record_lifetime_seconds",
			Help:    "Lifetime given to each stored record, by map (derived from the record on postscreen and verify maps).",
			Buckets: []float64{60, 600, 3600, 6 * 3600, 86400, 3 * 86400, 7 * 86400, 14 * 86400, 31 * 86400, 60 * 86400, 90 * 86400, 180 * 86400},
		}, []string{"map"}),
		expiredReads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "repcache", Name: "expired_reads_total",
			Help: "Records read whose content had expired by Postfix's rules: postscreen by expired test (part = pregreet, dnsbl, ...), verify by status (part = ok, defer, bounce, todo).",
		}, []string{"map", "part"}),
		expirations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "repcache", Name: "expirations_total",
			Help: "Records that expired, by map and tier (cache: the embedded store, exact; backup: Redis keyspace events).",
		}, []string{"map", "tier"}),
	}
	reg.MustRegister(m.lifetime, m.expiredReads, m.expirations)
	p.adoptMetrics(m)
	return m
}

// adoptMetrics makes p record into m (a reloaded policy keeps the metrics of
// the one it replaces) and creates the series of its maps.
func (p *Policy) adoptMetrics(m *Metrics) {
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
	p.metrics = m
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

// observeRead counts the expired parts of a record read from a typed map.
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
			if stamp > 1 && int64(stamp) < now {
				p.metrics.expiredReads.WithLabelValues(m.Name, strings.ToLower(ttl.PostscreenTests[i])).Inc()
			}
		}
	case ttl.Verify:
		rec, err := ttl.ParseVerify(value)
		if err != nil {
			return
		}
		expire := m.Rule.NegativeExpire
		if rec.Status == 0 {
			expire = m.Rule.PositiveExpire
		}
		if rec.Updated+int64(expire.Seconds()) < now && rec.Probed+ttl.ProbeTTL < now {
			p.metrics.expiredReads.WithLabelValues(m.Name, strings.ToLower(ttl.VerifyStatuses[rec.Status])).Inc()
		}
	}
}
