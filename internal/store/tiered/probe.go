package tiered

import (
	"context"
	"errors"
	"time"

	"github.com/repcache/repcache/internal/guard"
)

// detail is err's full message for the log (a guard.Error's Error() is
// what clients read: no addresses).
func detail(err error) string {
	var ge *guard.Error
	if errors.As(err, &ge) {
		return ge.Detail()
	}
	if err == nil {
		return ""
	}
	return err.Error()
}

// outageLogEvery is how often a tier that stays down is logged again, with
// the count of calls that failed meanwhile.
const outageLogEvery = 30 * time.Second

// tierState follows one tier's probes and logs one line per change of
// state, plus a count while it stays down.
type tierState struct {
	name     string
	up       bool
	since    time.Time
	lastLog  time.Time
	errsLast uint64
}

func (t *tierState) observe(s *Store, err error, errs uint64) (changed bool) {
	now := time.Now()
	switch {
	case err != nil && t.up:
		t.up, t.since, t.lastLog, t.errsLast = false, now, now, errs
		s.o.Logger.Warn("tier unreachable", "tier", t.name, "err", detail(err))
		return true
	case err == nil && !t.up:
		s.o.Logger.Warn("tier reachable again", "tier", t.name, "down_for", now.Sub(t.since).Round(time.Millisecond),
			"failed_calls", errs-t.errsLast)
		t.up = true
		return true
	case err != nil && now.Sub(t.lastLog) >= outageLogEvery:
		s.o.Logger.Warn("tier still unreachable", "tier", t.name, "down_for", now.Sub(t.since).Round(time.Second),
			"failed_calls", errs-t.errsLast, "err", detail(err))
		t.lastLog = now
	}
	return false
}

// prober probes the tiers every ProbeInterval: readiness, the cache's
// repair once it answers again, the shared cache generation and record of
// missed writes, and the backup's loss of its data.
func (s *Store) prober(ctx context.Context) {
	defer close(s.probeDone)
	cache := tierState{name: "cache", up: true}
	backup := tierState{name: "backup", up: true}
	genSeen := false
	t := time.NewTicker(s.o.ProbeInterval)
	defer t.Stop()
	for {
		timeout := 2 * s.o.ProbeInterval
		pctx, cancel := context.WithTimeout(ctx, timeout)
		now := time.Now().Unix()
		if s.o.CachePing != nil {
			err := s.o.CachePing.Ping(pctx)
			s.cacheUp.Store(err == nil)
			cache.observe(s, err, s.Counts.CacheErrors.Load())
		}
		if s.backup != nil && s.o.BackupPing != nil {
			backup.observe(s, s.o.BackupPing.Ping(pctx), s.Counts.BackupErrors.Load())
		}
		if s.o.Generations != nil {
			g, missing, err := s.o.Generations.CacheGeneration(pctx, s.gen.Load())
			switch {
			case err != nil:
			case missing && genSeen:
				// The backup held the generation key and lost it: it
				// restarted without persistence, or its data was wiped.
				s.Counts.BackupLost.Add(1)
				s.o.Logger.Error("the backup lost its data (restarted without persistence, or wiped): records written before are gone from it; the cache still serves them until they leave it",
					"generation", g)
			default:
				genSeen = true
				s.adoptGeneration(g)
			}
		}
		s.catchUp(pctx)
		if s.cacheUp.Load() {
			s.repair(pctx, now)
		}
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Ready reports whether the cache tier answered its last probe.
func (s *Store) Ready() error {
	if !s.cacheUp.Load() {
		return &guard.Error{Backend: "cache", Class: guard.ClassUnavailable, Err: errors.New("the cache tier did not answer its last probe")}
	}
	return nil
}
