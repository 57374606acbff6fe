package tiered

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/repcache/repcache/internal/promcache"
	"github.com/repcache/repcache/internal/store"
)

// metrics are the tiers' Prometheus metrics.
type metrics struct {
	lookups      *promcache.Counters
	backupWrites *prometheus.CounterVec
}

// newMetrics registers the tiers' metrics for s; maps are the map names to
// create series for up front.
func newMetrics(reg prometheus.Registerer, s *Store, maps []string) *metrics {
	f := promauto.With(reg)
	m := &metrics{
		lookups: promcache.New(f.NewCounterVec(prometheus.CounterOpts{
			Namespace: "repcache", Name: "lookups_total",
			Help: "Client reads per tier and result, by map: the hit ratio per map and tier (backup lookups happen on cache misses).",
		}, []string{"map", "tier", "result"})),
		backupWrites: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: "repcache", Name: "backup_writes_total",
			Help: "Writes to the backup tier, by mode (sync, async) and result (ok, error).",
		}, []string{"mode", "result"}),
	}
	gauge := func(name, help string, v func() float64) {
		f.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "repcache", Name: name, Help: help}, v)
	}
	counter := func(name, help string, v func() uint64) {
		f.NewCounterFunc(prometheus.CounterOpts{Namespace: "repcache", Name: name, Help: help}, func() float64 { return float64(v()) })
	}
	gauge("backup_queue_length", "Async backup writes waiting to be written.", func() float64 { return float64(s.q.length()) })
	gauge("backup_queue_bytes", "Bytes of the async backup writes queued or being written.", func() float64 { return float64(s.q.size()) })
	counter("backup_dropped_total", "Async backup writes dropped: queue full or shutting down.", s.Counts.AsyncDropped.Load)
	counter("backup_retries_total", "Async backup batches retried after a failure.", s.Counts.AsyncRetries.Load)
	counter("backup_degraded_writes_total", "Sync backup writes that failed and were let through (on_backup_error: degrade).", s.Counts.DegradedWrites.Load)
	counter("backup_lost_total", "Times the backup was found to have lost its data (restarted without persistence, or wiped).", s.Counts.BackupLost.Load)
	counter("served_by_backup_total", "Requests the backup served alone because the cache could not.", s.Counts.ServedByBackup.Load)
	counter("outage_responses_total", "Reads answered a miss (or an error, on_error: error) because no tier answered.", s.Counts.OutageResponses.Load)
	gauge("cache_invalidations_pending", "Keys whose writes missed the cache, not yet deleted from it (1 more while the cache generation is due to move on).",
		func() float64 { return float64(s.inv.len()) })
	gauge("cache_generation", "The shared cache generation in force: it moves on when more writes missed the cache than could be remembered.",
		func() float64 { return float64(s.gen.Load()) })
	counter("cache_generation_bumps_total", "Cache generations this process started.", s.Counts.GenerationBumps.Load)
	gauge("cache_ready", "1 while the cache tier answers its background probe, else 0.", func() float64 {
		if s.cacheUp.Load() {
			return 1
		}
		return 0
	})
	for _, name := range append(maps, "other") {
		for _, tier := range []string{"cache", "backup"} {
			m.lookups.With(name, tier, "hit")
			m.lookups.With(name, tier, "miss")
		}
	}
	for _, mode := range []string{"sync", "async"} {
		m.backupWrites.WithLabelValues(mode, "ok")
		m.backupWrites.WithLabelValues(mode, "error")
	}
	return m
}

// lookup counts a client read (count) of route r in tier.
func (s *Store) lookup(count bool, r store.Route, tier, result string) {
	if s.metrics == nil || !count {
		return
	}
	name := r.Map
	if name == "" {
		name = "other"
	}
	s.metrics.lookups.With(name, tier, result).Inc()
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
