package tiered

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/repcache/repcache/internal/guard"
	"github.com/repcache/repcache/internal/store"
)

// invalidations are the keys whose writes (or deletes) may not have reached
// the cache: the cache was unreachable, or answered too late to know. Until
// each is deleted from the cache, the cache's copy may be older than what
// the backup holds and was acknowledged, so it is not served (the backup
// answers); the prober deletes them as soon as the cache answers again, and
// a request for one of them tries first. It is mcrouter's async delete log
// kept in memory and bounded: past the limit the individual keys are
// forgotten and the whole cache is declared stale instead (overflowed),
// which the prober resolves by moving the shared cache generation on.
//
// Each entry carries the sequence number of its latest miss, so a delete
// that raced with a newer miss of the same key does not clear it.
type invalidations struct {
	mu       sync.Mutex
	keys     map[string]uint64
	seq      uint64
	limit    int
	overflow uint64       // seq of the latest miss past the limit; 0: none
	n        atomic.Int64 // len(keys), plus one while overflowed: the lock-free empty check
}

func newInvalidations(limit int) *invalidations {
	return &invalidations{keys: make(map[string]uint64), limit: limit}
}

func (v *invalidations) count() {
	n := int64(len(v.keys))
	if v.overflow != 0 {
		n++
	}
	v.n.Store(n)
}

// empty reports whether nothing is remembered (the common case, no lock).
func (v *invalidations) empty() bool { return v.n.Load() == 0 }

// add remembers key; it reports whether this miss started an overflow.
func (v *invalidations) add(key []byte) (overflowStarted bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.seq++
	if _, ok := v.keys[string(key)]; ok || len(v.keys) < v.limit {
		v.keys[string(key)] = v.seq
	} else {
		overflowStarted = v.overflow == 0
		v.overflow = v.seq
	}
	v.count()
	return overflowStarted
}

func (v *invalidations) overflowed() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.overflow != 0
}

// lookup returns key's entry.
func (v *invalidations) lookup(key []byte) (seq uint64, ok bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	seq, ok = v.keys[string(key)]
	return seq, ok
}

// done forgets key once deleted from the cache, unless missed again since.
func (v *invalidations) done(key string, seq uint64) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.keys[key] == seq {
		delete(v.keys, key)
		v.count()
	}
}

// snapshot returns the entries and the sequence number they were taken at.
func (v *invalidations) snapshot() (map[string]uint64, uint64, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	keys := make(map[string]uint64, len(v.keys))
	for k, s := range v.keys {
		keys[k] = s
	}
	return keys, v.seq, v.overflow != 0
}

// clearUpTo forgets everything missed up to seq (the cache generation
// moved on after it, or the cache was flushed).
func (v *invalidations) clearUpTo(seq uint64) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for k, s := range v.keys {
		if s <= seq {
			delete(v.keys, k)
		}
	}
	if v.overflow <= seq {
		v.overflow = 0
	}
	v.count()
}

// current is the sequence number of the latest miss.
func (v *invalidations) current() uint64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.seq
}

func (v *invalidations) clear() { v.clearUpTo(v.current()) }

func (v *invalidations) len() int { return int(v.n.Load()) }

// repair deletes the remembered keys from the cache (they are read from
// the backup afterwards), or, after an overflow, moves the cache generation
// on. It stops at the first failure: the cache is still unreachable.
func (s *Store) repair(ctx context.Context, now int64) {
	if s.inv.empty() {
		return
	}
	keys, seq, overflowed := s.inv.snapshot()
	if overflowed {
		if s.o.Generations == nil {
			// A private cache with too many misses to list (cannot happen
			// with the embedded store, which does not fail): flush it.
			if err := s.cache.Flush(ctx); err == nil {
				s.inv.clearUpTo(seq)
				s.o.Logger.Warn("cache flushed: more writes missed it than could be remembered")
			}
			return
		}
		s.moveGeneration(ctx, "more writes missed the cache than could be remembered")
		return
	}
	start := time.Now()
	deleted := make([]string, 0, len(keys))
	defer func() { s.unlist(ctx, deleted) }()
	for k, sq := range keys {
		if err := s.cache.Delete(ctx, s.cacheKey([]byte(k)), store.DeleteOptions{}, now); failed(err) {
			return
		}
		s.inv.done(k, sq)
		deleted = append(deleted, k)
	}
	s.o.Logger.Info("stale cache entries invalidated", "keys", len(deleted), "took", time.Since(start).Round(time.Millisecond))
}

// unlist takes keys deleted from the cache off the shared record.
func (s *Store) unlist(ctx context.Context, keys []string) {
	if s.o.MissLog != nil && len(keys) > 0 {
		if err := s.o.MissLog.ClearMissed(ctx, keys); err != nil {
			s.Counts.BackupErrors.Add(1) // listed a while longer: other instances delete them once more
		}
	}
}

// catchUp adopts the shared record's keys: those missed while this
// instance was not subscribed (it started later, or Redis was down). The
// record can hold InvalidationLimit keys, megabytes, so it is read at
// every probe only until a subscription carries the announcements, then
// once after each (re)subscription.
func (s *Store) catchUp(ctx context.Context) {
	if s.o.MissLog == nil || s.subscribed.Load() && !s.catchUpDue.Swap(false) {
		return
	}
	keys, err := s.o.MissLog.MissedWrites(ctx)
	if err != nil {
		s.catchUpDue.Store(true)
		return
	}
	for _, k := range keys {
		if _, ok := s.inv.lookup([]byte(k)); !ok {
			s.inv.add([]byte(k))
		}
	}
}

// moveGeneration moves the shared cache generation on (why says what
// forced it), so that nothing the cache held before is served by any
// instance, and tells the others at once.
func (s *Store) moveGeneration(ctx context.Context, why string) {
	g, err := s.o.Generations.NextCacheGeneration(ctx, s.gen.Load())
	if err != nil {
		s.o.Logger.Warn("cannot move the cache generation on; the cache stays bypassed for backed-up maps", "err", detail(err))
		return
	}
	s.generationMoved(g)
	s.Counts.GenerationBumps.Add(1)
	if s.o.MissLog != nil {
		if err := s.o.MissLog.AnnounceGeneration(ctx, g); err != nil {
			s.Counts.BackupErrors.Add(1) // the others read it with their next probe
		}
	}
	s.o.Logger.Warn("cache generation moved on: "+why+", so nothing the cache held before is served", "generation", g)
}

// generationMoved puts generation g in force; what was remembered before
// refers to older generations, which are no longer read.
func (s *Store) generationMoved(g uint64) {
	seq := s.inv.current()
	if s.adoptGeneration(g) {
		s.inv.clearUpTo(seq)
	}
}

// adoptGeneration puts generation g in force (never an older one) and
// reports whether it was newer.
func (s *Store) adoptGeneration(g uint64) bool {
	for {
		cur := s.gen.Load()
		if g <= cur {
			return false
		}
		if s.gen.CompareAndSwap(cur, g) {
			return true
		}
	}
}

// GuardedMissLog makes m's calls on the request path (announcing, clearing,
// moving the generation) through g, the guard of the backup that keeps the
// record: while the backup's breaker is open they fail at once rather than
// cost each write one more backup timeout, and their failures count toward
// opening it. A call from the probe (a repair's clear, which can list many
// keys) has the probe's deadline instead of the per-call one; the probe's
// read of the record goes to m directly.
func GuardedMissLog(g *guard.Guard, m MissLog) MissLog { return guardedMissLog{g: g, m: m} }

type guardedMissLog struct {
	g *guard.Guard
	m MissLog
}

func (l guardedMissLog) AnnounceMissed(ctx context.Context, key []byte, limit int) (listed bool, err error) {
	err = l.g.Do(ctx, "announce", func(ctx context.Context) (err error) {
		listed, err = l.m.AnnounceMissed(ctx, key, limit)
		return err
	})
	return listed, err
}

func (l guardedMissLog) MissedWrites(ctx context.Context) ([]string, error) {
	return l.m.MissedWrites(ctx)
}

func (l guardedMissLog) ClearMissed(ctx context.Context, keys []string) error {
	return l.g.Do(ctx, "clear_missed", func(ctx context.Context) error { return l.m.ClearMissed(ctx, keys) })
}

func (l guardedMissLog) AnnounceGeneration(ctx context.Context, g uint64) error {
	return l.g.Do(ctx, "announce", func(ctx context.Context) error { return l.m.AnnounceGeneration(ctx, g) })
}
