// Package tiered combines a cache tier (the embedded store or a memcached
// pool) with an optional durable backup tier (Redis).
//
// Writes go to the cache, then to the backup as the request's route says
// (store.RouteFrom): sync (the client is answered once the backup
// confirmed), async (answered after the cache write; the backup write waits
// in a bounded queue and is retried until it lands) or none. Both tiers
// hold the same absolute deadline. A cache miss reads the backup and
// refills the cache with the record's remaining lifetime; concurrent misses
// on one key share one backup read.
//
// A write that could not reach the cache is remembered (invalidations.go)
// and its key deleted from the cache before the cache serves it again; if
// too many were missed, the cache generation moves on (every key of the
// shared cache carries it), so nothing written before is served. When the
// cache is down, reads and writes are served by the backup; when everything
// is down, reads answer a miss (or an error, on_error: error), because
// Postfix handles a miss far better than an error.
package tiered

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"

	"github.com/repcache/repcache/internal/backoff"
	"github.com/repcache/repcache/internal/guard"
	"github.com/repcache/repcache/internal/store"
)

// Generations keeps the cache generation where every instance sharing the
// cache sees it (in the backup).
type Generations interface {
	// CacheGeneration returns the generation in force, first raising the
	// stored one to atLeast when it is lower (a backup that lost it must
	// not take the instances back to an older generation). missing reports
	// that the backup did not hold it.
	CacheGeneration(ctx context.Context, atLeast uint64) (gen uint64, missing bool, err error)
	// NextCacheGeneration stores and returns a generation above both the
	// stored one and above.
	NextCacheGeneration(ctx context.Context, above uint64) (uint64, error)
}

// MissLog is the record of cache writes that missed, shared by every
// instance on one cache tier (kept in the backup), so that while one
// instance cannot reach the cache the others stop serving the cache's copy
// of what it wrote, instead of serving it until that instance is back.
// The delivery of announcements (the instances' Remote* methods) is the
// caller's wiring.
type MissLog interface {
	// AnnounceMissed lists key and tells the other instances; listed is
	// false when limit keys are listed already.
	AnnounceMissed(ctx context.Context, key []byte, limit int) (listed bool, err error)
	// MissedWrites returns the listed keys (an instance that starts, or
	// missed announcements, catches up with them).
	MissedWrites(ctx context.Context) ([]string, error)
	// ClearMissed unlists keys once they were deleted from the cache.
	ClearMissed(ctx context.Context, keys []string) error
	// AnnounceGeneration unlists every key and tells the other instances
	// that generation g is in force.
	AnnounceGeneration(ctx context.Context, g uint64) error
}

// Options configure a Store.
type Options struct {
	// ErrorOnOutage answers reads with the backend's error when no tier can
	// answer (on_error: error); by default they answer a miss.
	ErrorOnOutage bool
	QueueSize     int           // async writes that may wait (default 10000)
	QueueBytes    int64         // bytes (keys and values) they may hold (default 64 MiB)
	BatchSize     int           // async writes per batch (default 256)
	BatchTimeout  time.Duration // deadline of one async batch (default 1s)
	// Retry spaces the retries of async writes that failed (default 10ms
	// doubling up to 1s).
	Retry backoff.Policy
	// InvalidationLimit bounds the keys remembered for invalidation in the
	// cache (default 100000); beyond it the cache generation moves on.
	InvalidationLimit int
	// Generations keeps the shared cache's generation and MissLog the
	// shared record of missed writes (nil: the cache is private to this
	// process, as the embedded store is, and needs neither).
	Generations Generations
	MissLog     MissLog
	// CachePing and BackupPing probe the tiers in the background, every
	// ProbeInterval (default 1s), so readiness and recovery do not wait for
	// client traffic. Nil: not probed.
	CachePing, BackupPing guard.Pinger
	ProbeInterval         time.Duration
	// Registerer gets the tiers' metrics (nil: not registered); Maps are
	// the map names to create series for up front.
	Registerer prometheus.Registerer
	Maps       []string
	Logger     *slog.Logger
}

// Counters report what the tiers did beyond plain hits and misses.
type Counters struct {
	CacheErrors     atomic.Uint64 // cache calls that failed (not misses)
	BackupErrors    atomic.Uint64 // backup calls that failed, async ones included
	BackupHits      atomic.Uint64 // cache misses answered by the backup
	BackupMisses    atomic.Uint64 // cache misses the backup did not have either
	DegradedWrites  atomic.Uint64 // sync backup writes that failed and were let through
	AsyncDropped    atomic.Uint64 // async backup writes dropped: queue full or shutting down
	AsyncWritten    atomic.Uint64 // async backup writes applied
	AsyncRetries    atomic.Uint64 // async batches retried after a failure
	ServedByBackup  atomic.Uint64 // requests served by the backup while the cache could not
	OutageResponses atomic.Uint64 // reads answered a miss/error because no tier answered
	BackupLost      atomic.Uint64 // times the backup was found to have lost its data
	GenerationBumps atomic.Uint64 // cache generations this process started
}

// Store implements store.Store over a cache and an optional backup.
type Store struct {
	metrics       *metrics
	cache, backup store.Store
	o             Options
	sf            singleflight.Group
	q             *queue
	inv           *invalidations
	gen           atomic.Uint64 // the cache generation in force (0: keys as they are)
	cacheUp       atomic.Bool   // the last cache probe answered
	// The shared record of missed writes is read at every probe until the
	// announcements reach this instance, then once per (re)subscription:
	// the announcements carry what follows (see RemoteSubscribed).
	subscribed, catchUpDue atomic.Bool
	applyMu                sync.Mutex    // applying a batch vs flushing the backup
	flushGen               atomic.Uint64 // writes queued before a flush_all are superseded by it
	degrading              atomic.Bool   // in a degrade episode (sync backup writes failing)
	degradedAtStart        atomic.Uint64
	stopProbe              context.CancelFunc
	probeDone              chan struct{}
	Counts                 Counters
}

var _ store.Store = (*Store)(nil)

// New combines cache and backup (which may be nil). The caller owns both
// and closes them after Close.
func New(cache, backup store.Store, o Options) *Store {
	if o.QueueSize <= 0 {
		o.QueueSize = 10000
	}
	if o.QueueBytes <= 0 {
		o.QueueBytes = 64 << 20
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 256
	}
	if o.BatchTimeout <= 0 {
		o.BatchTimeout = time.Second
	}
	if o.Retry.Base <= 0 {
		o.Retry = backoff.Policy{Base: 10 * time.Millisecond, Max: time.Second}
	}
	if o.InvalidationLimit <= 0 {
		o.InvalidationLimit = 100000
	}
	if o.ProbeInterval <= 0 {
		o.ProbeInterval = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Store{cache: cache, backup: backup, o: o, inv: newInvalidations(o.InvalidationLimit), probeDone: make(chan struct{})}
	s.cacheUp.Store(true)
	s.q = newQueue(s, o.QueueSize, o.QueueBytes)
	if o.Registerer != nil {
		s.metrics = newMetrics(o.Registerer, s, o.Maps)
	}
	if backup != nil {
		go s.q.flusher()
	} else {
		s.q.closeNow()
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.stopProbe = cancel
	go s.prober(ctx)
	return s
}

// route is ctx's route; without a backup every key is cache-only.
func (s *Store) route(ctx context.Context) store.Route {
	if s.backup == nil {
		return store.Route{}
	}
	return store.RouteFrom(ctx)
}

// failed reports whether err is a backend failure rather than an answer.
func failed(err error) bool { return guard.Failed(err) }

// cacheKey is key under the cache generation in force. Generation 0 keeps
// keys as they are; later ones prefix a control byte no client key can
// hold (the memcached tier stores such keys encoded), so no client key
// collides with a generation's.
func (s *Store) cacheKey(key []byte) []byte {
	g := s.gen.Load()
	if g == 0 {
		return key
	}
	b := make([]byte, 0, len(key)+24)
	b = append(b, 0x01, 'g')
	b = strconv.AppendUint(b, g, 10)
	b = append(b, 0x01)
	return append(b, key...)
}

// cacheUsable reports whether the cache may serve key for a request with
// route r: not while key is remembered as missed (unless it can be deleted
// from the cache now), nor, for backed-up keys, while the generation is due
// to move on.
func (s *Store) cacheUsable(ctx context.Context, r store.Route, key []byte, now int64) bool {
	if r.Backup == store.NoBackup || s.inv.empty() {
		return true
	}
	if s.inv.overflowed() {
		return false
	}
	seq, listed := s.inv.lookup(key)
	if !listed {
		return true
	}
	if err := s.cache.Delete(ctx, s.cacheKey(key), store.DeleteOptions{}, now); failed(err) {
		s.Counts.CacheErrors.Add(1)
		return false
	}
	s.inv.done(string(key), seq)
	s.unlist(ctx, []string{string(key)})
	return true
}

// missed remembers that a write of key may not have reached the cache, and
// tells the other instances before the write is acknowledged (the backup
// is asked next anyway). If the shared record is full, the generation
// moves on at once: no instance serves anything cached before.
func (s *Store) missed(ctx context.Context, r store.Route, key []byte) {
	s.Counts.CacheErrors.Add(1)
	if r.Backup == store.NoBackup {
		return
	}
	if s.inv.add(key) {
		s.o.Logger.Warn("too many cache writes missed to remember each: the cache generation will move on once the cache answers",
			"limit", s.o.InvalidationLimit)
	}
	if s.o.MissLog == nil {
		return
	}
	listed, err := s.o.MissLog.AnnounceMissed(ctx, key, s.o.InvalidationLimit)
	switch {
	case err != nil:
		s.Counts.BackupErrors.Add(1) // the others learn of it when this instance repairs it
	case !listed:
		s.moveGeneration(ctx, "more writes missed the cache, across the instances, than can be listed")
	}
}

// RemoteMiss is told of a key whose write another instance (or this one)
// could not make in the cache: until it is deleted from the cache, the
// cache's copy is not served.
func (s *Store) RemoteMiss(key string) { s.inv.add([]byte(key)) }

// RemoteGeneration is told of a cache generation an instance moved on to.
func (s *Store) RemoteGeneration(g uint64) { s.generationMoved(g) }

// RemoteSubscribed is told that the announcements reach this instance from
// now on (the subscription started, or came back after a gap): what was
// announced before is read from the shared record once, at the next probe.
func (s *Store) RemoteSubscribed() {
	s.catchUpDue.Store(true)
	s.subscribed.Store(true)
}

// outage answers a read no tier could serve.
func (s *Store) outage(err error) error {
	s.Counts.OutageResponses.Add(1)
	if s.o.ErrorOnOutage {
		return err
	}
	return store.ErrNotFound
}

// Get implements store.Store with read-through. It is the client's read:
// the only one counted in the hit ratio.
func (s *Store) Get(ctx context.Context, key, buf []byte, now int64) (store.Item, error) {
	return s.get(ctx, s.route(ctx), key, buf, now, true)
}

func (s *Store) get(ctx context.Context, r store.Route, key, buf []byte, now int64, count bool) (store.Item, error) {
	var err error
	if s.cacheUsable(ctx, r, key, now) {
		var it store.Item
		it, err = s.cache.Get(ctx, s.cacheKey(key), buf, now)
		if err == nil {
			s.lookup(count, r, "cache", "hit")
			it.Key = key
			return it, nil
		}
		if !errors.Is(err, store.ErrNotFound) && !failed(err) {
			return it, err
		}
	} else {
		err = errCacheSkipped
	}
	s.lookup(count, r, "cache", "miss")
	cacheDown := failed(err)
	if cacheDown && err != errCacheSkipped {
		s.Counts.CacheErrors.Add(1)
	}
	if r.Backup == store.NoBackup {
		if cacheDown {
			return store.Item{}, s.outage(err)
		}
		return store.Item{}, store.ErrNotFound
	}
	if r.Backup == store.AsyncBackup && !cacheDown && s.q.behind(key) {
		return store.Item{}, store.ErrNotFound // the cache has the latest write (a delete); the backup is behind
	}
	bit, berr := s.readBackup(ctx, r, key, now, !cacheDown, count)
	switch {
	case berr == nil:
		if cacheDown {
			s.Counts.ServedByBackup.Add(1)
		}
		bit.Key, bit.Value = key, append(buf, bit.Value...)
		return bit, nil
	case errors.Is(berr, store.ErrNotFound):
		return store.Item{}, store.ErrNotFound
	case cacheDown:
		return store.Item{}, s.outage(berr)
	default:
		return store.Item{}, store.ErrNotFound // the cache answered a miss; the backup could not add to it
	}
}

// errCacheSkipped stands for the cache's answer when it was not asked (its
// copy of the key may be stale): the backup answers, as in an outage.
var errCacheSkipped = &guard.Error{Backend: "cache", Class: guard.ClassUnavailable, Err: errors.New("cache copy not trusted until invalidated")}

// readBackup reads key from the backup, once for all concurrent callers,
// and refills the cache with the record's own deadline.
func (s *Store) readBackup(ctx context.Context, r store.Route, key []byte, now int64, refill, count bool) (store.Item, error) {
	v, err, _ := s.sf.Do(string(key), func() (any, error) {
		it, err := s.backup.Get(ctx, key, nil, now)
		switch {
		case err == nil:
			s.lookup(count, r, "backup", "hit")
			s.Counts.BackupHits.Add(1)
			if refill {
				it.Key = s.cacheKey(key)
				if _, err := s.cache.Store(ctx, store.Set, it, now); failed(err) {
					s.Counts.CacheErrors.Add(1)
				}
				it.Key = key
			}
		case errors.Is(err, store.ErrNotFound):
			s.lookup(count, r, "backup", "miss")
			s.Counts.BackupMisses.Add(1)
		default:
			s.Counts.BackupErrors.Add(1)
		}
		return it, err
	})
	it, _ := v.(store.Item)
	return it, err
}

// warm makes sure a conditional write sees a record that only the backup
// still holds (after a cache restart). It is not a client read: it is not
// counted in the hit ratio.
func (s *Store) warm(ctx context.Context, r store.Route, key []byte, now int64) {
	if r.Backup != store.NoBackup {
		s.get(ctx, r, key, nil, now, false)
	}
}

// invalidate deletes key from the cache after a write the backup refused,
// so that the cache keeps no trace of it; if the cache cannot be reached
// either, the key is remembered.
func (s *Store) invalidate(ctx context.Context, r store.Route, key []byte, now int64) {
	if err := s.cache.Delete(ctx, s.cacheKey(key), store.DeleteOptions{}, now); failed(err) {
		s.missed(ctx, r, key)
	}
}

// Store implements store.Store.
func (s *Store) Store(ctx context.Context, mode store.Mode, it store.Item, now int64) (uint64, error) {
	r := s.route(ctx)
	if mode == store.CASStale && r.Backup != store.NoBackup {
		return 0, store.ErrUnsupported // the backup would get the value without its stale mark
	}
	if mode != store.Set {
		s.warm(ctx, r, it.Key, now)
	}
	if !s.cacheUsable(ctx, r, it.Key, now) {
		return s.storeBackupOnly(ctx, mode, it, now, errCacheSkipped)
	}
	key := it.Key
	it.Key = s.cacheKey(key)
	cas, err := s.cache.Store(ctx, mode, it, now)
	it.Key = key
	if failed(err) {
		s.missed(ctx, r, key)
		if r.Backup == store.NoBackup {
			return cas, err
		}
		return s.storeBackupOnly(ctx, mode, it, now, err)
	}
	if r.Backup == store.NoBackup || err != nil {
		return cas, err
	}
	final := it
	if mode == store.Append || mode == store.Prepend {
		if final, err = s.cache.Get(ctx, s.cacheKey(key), nil, now); err != nil {
			return cas, nil // gone already (expired or evicted): nothing to back up
		}
		final.Key = key
	}
	if err := s.replicate(ctx, r, store.Op{Item: final}, now); err != nil {
		s.invalidate(ctx, r, key, now)
		return 0, err
	}
	return cas, nil
}

// storeBackupOnly serves a write with the backup alone (the cache failed
// with cerr, or cannot be trusted with the key).
func (s *Store) storeBackupOnly(ctx context.Context, mode store.Mode, it store.Item, now int64, cerr error) (uint64, error) {
	bcas, berr := s.backup.Store(ctx, mode, it, now)
	if failed(berr) {
		s.Counts.BackupErrors.Add(1)
		return 0, cerr
	}
	s.Counts.ServedByBackup.Add(1)
	return bcas, berr
}

// replicate applies op to the backup as the route says. It fails only for
// a sync write the backup refused under on_backup_error: fail.
func (s *Store) replicate(ctx context.Context, r store.Route, op store.Op, now int64) error {
	if store.Expired(op.Item.Deadline, now) {
		op.Delete = true // stored already expired: the backup must not keep an older version
	}
	if r.Backup == store.AsyncBackup {
		s.q.push(op)
		return nil
	}
	var err error
	if op.Delete {
		err = s.backup.Delete(ctx, op.Item.Key, store.DeleteOptions{}, now)
	} else {
		_, err = s.backup.Store(ctx, store.Set, op.Item, now)
	}
	s.backupWrite("sync", !failed(err), 1)
	if !failed(err) {
		s.degradeEnded()
		return nil
	}
	s.Counts.BackupErrors.Add(1)
	if r.FailOnBackupError {
		return err
	}
	s.degraded(err)
	return nil
}

// degraded counts a sync backup write let through without the backup, and
// logs the start of a degrade episode (once, not per write).
func (s *Store) degraded(err error) {
	s.Counts.DegradedWrites.Add(1)
	if s.degrading.CompareAndSwap(false, true) {
		s.degradedAtStart.Store(s.Counts.DegradedWrites.Load() - 1)
		s.o.Logger.Error("sync backup writes failing: acknowledged from the cache alone (on_backup_error: degrade) until the backup takes them again",
			"err", detail(err))
	}
}

// degradeEnded logs the end of a degrade episode at the first sync backup
// write that succeeds again.
func (s *Store) degradeEnded() {
	if s.degrading.Load() && s.degrading.CompareAndSwap(true, false) {
		s.o.Logger.Warn("sync backup writes succeed again", "degraded_writes", s.Counts.DegradedWrites.Load()-s.degradedAtStart.Load())
	}
}

// Delete implements store.Store: both tiers forget the key. Conditional
// and invalidating deletes go to a cache-only key's cache as they are;
// across two tiers they are not implemented yet.
func (s *Store) Delete(ctx context.Context, key []byte, o store.DeleteOptions, now int64) error {
	r := s.route(ctx)
	if !o.Plain() && r.Backup != store.NoBackup {
		return store.ErrUnsupported
	}
	var err error
	if s.cacheUsable(ctx, r, key, now) {
		err = s.cache.Delete(ctx, s.cacheKey(key), o, now)
	} else {
		err = errCacheSkipped
	}
	if failed(err) && err != errCacheSkipped {
		s.missed(ctx, r, key)
	}
	if r.Backup == store.NoBackup {
		return err
	}
	if failed(err) {
		berr := s.backup.Delete(ctx, key, o, now)
		if failed(berr) {
			s.Counts.BackupErrors.Add(1)
			return err
		}
		s.Counts.ServedByBackup.Add(1)
		return berr
	}
	if r.Backup == store.AsyncBackup {
		s.q.push(store.Op{Delete: true, Item: store.Item{Key: key}})
		return err
	}
	berr := s.backup.Delete(ctx, key, o, now)
	s.backupWrite("sync", !failed(berr), 1)
	if failed(berr) {
		s.Counts.BackupErrors.Add(1)
		if r.FailOnBackupError {
			return berr
		}
		s.degraded(berr)
		return err
	}
	s.degradeEnded()
	if errors.Is(err, store.ErrNotFound) {
		return berr // found in the backup only: still deleted
	}
	return err
}

// Touch implements store.Store on both tiers.
func (s *Store) Touch(ctx context.Context, key []byte, deadline int64, buf []byte, now int64) (store.Item, error) {
	r := s.route(ctx)
	s.warm(ctx, r, key, now)
	var (
		it  store.Item
		err error
	)
	if s.cacheUsable(ctx, r, key, now) {
		it, err = s.cache.Touch(ctx, s.cacheKey(key), deadline, buf, now)
		it.Key = key
	} else {
		err = errCacheSkipped
	}
	if failed(err) && err != errCacheSkipped {
		s.missed(ctx, r, key)
	}
	if r.Backup == store.NoBackup || err != nil && !failed(err) {
		return it, err
	}
	if failed(err) {
		bit, berr := s.backup.Touch(ctx, key, deadline, buf, now)
		if failed(berr) {
			s.Counts.BackupErrors.Add(1)
			return store.Item{}, err
		}
		s.Counts.ServedByBackup.Add(1)
		return bit, berr
	}
	full := it
	full.Value = append([]byte(nil), it.Value...)
	if err := s.replicate(ctx, r, store.Op{Item: full}, now); err != nil {
		s.invalidate(ctx, r, key, now)
		return store.Item{}, err
	}
	return it, nil
}

// MetaGet implements store.Store for the options that need no per-item
// meta state (store.PlainMetaGet); the others are refused for now. A key
// kept in the cache tier only goes to the cache as it is. It counts as a
// client read, as Get does, unless it is a Peek.
func (s *Store) MetaGet(ctx context.Context, key, buf []byte, o store.MetaGetOptions, now int64) (store.Item, store.MetaState, error) {
	r := s.route(ctx)
	if r.Backup == store.NoBackup {
		it, st, err := s.cache.MetaGet(ctx, s.cacheKey(key), buf, o, now)
		it.Key = key
		switch {
		case err == nil:
			s.lookup(!o.Peek, r, "cache", "hit")
		case errors.Is(err, store.ErrNotFound):
			s.lookup(!o.Peek, r, "cache", "miss")
		case failed(err):
			s.Counts.CacheErrors.Add(1)
		}
		return it, st, err
	}
	if o.Peek {
		return store.PlainMetaGet(ctx, uncounted{s}, key, buf, o, now)
	}
	return store.PlainMetaGet(ctx, s, key, buf, o, now)
}

// uncounted reads through s without counting a client read.
type uncounted struct{ s *Store }

func (u uncounted) Get(ctx context.Context, key, buf []byte, now int64) (store.Item, error) {
	return u.s.get(ctx, u.s.route(ctx), key, buf, now, false)
}

func (u uncounted) Touch(ctx context.Context, key []byte, deadline int64, buf []byte, now int64) (store.Item, error) {
	return u.s.Touch(ctx, key, deadline, buf, now)
}

// Incr implements store.Store: the cache computes, the result is backed up.
// Meta arithmetic's conditions (CAS, vivify, touch) go to a cache-only
// key's cache as they are; across two tiers they are not implemented yet.
func (s *Store) Incr(ctx context.Context, key []byte, o store.IncrOptions, now int64) (store.Counter, error) {
	r := s.route(ctx)
	if !o.Plain() && r.Backup != store.NoBackup {
		return store.Counter{}, store.ErrUnsupported
	}
	s.warm(ctx, r, key, now)
	var (
		v   store.Counter
		err error
	)
	if s.cacheUsable(ctx, r, key, now) {
		v, err = s.cache.Incr(ctx, s.cacheKey(key), o, now)
	} else {
		err = errCacheSkipped
	}
	if failed(err) && err != errCacheSkipped {
		s.missed(ctx, r, key)
	}
	if r.Backup == store.NoBackup || err != nil && !failed(err) {
		return v, err
	}
	if failed(err) {
		bv, berr := s.backup.Incr(ctx, key, o, now)
		if failed(berr) {
			s.Counts.BackupErrors.Add(1)
			return store.Counter{}, err
		}
		s.Counts.ServedByBackup.Add(1)
		return bv, berr
	}
	it, gerr := s.cache.Get(ctx, s.cacheKey(key), nil, now)
	if gerr != nil {
		return v, nil
	}
	it.Key = key
	if err := s.replicate(ctx, r, store.Op{Item: it}, now); err != nil {
		s.invalidate(ctx, r, key, now)
		return store.Counter{}, err
	}
	return v, nil
}

// Flush implements store.Store on both tiers.
func (s *Store) Flush(ctx context.Context) error {
	err := s.cache.Flush(ctx)
	if s.backup != nil {
		// Writes still queued were issued before the flush: they must not
		// land after it. A batch being applied finishes first.
		s.applyMu.Lock()
		s.flushGen.Add(1)
		berr := s.backup.Flush(ctx)
		s.applyMu.Unlock()
		if berr != nil {
			s.Counts.BackupErrors.Add(1)
			err = errors.Join(err, berr)
		}
	}
	if err == nil {
		s.inv.clear() // nothing left in the cache to be stale
	}
	return err
}

// Close drains the async queue (for at most ten batch timeouts: what is
// left is dropped and counted), stops the background work. It does not
// close the tiers.
func (s *Store) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*s.o.BatchTimeout)
	defer cancel()
	return s.Drain(ctx)
}

// Drain is Close with the caller's deadline.
func (s *Store) Drain(ctx context.Context) error {
	s.stopProbe()
	<-s.probeDone
	return s.q.drain(ctx)
}

// Stats passes the cache tier's statistics through.
func (s *Store) Stats() store.Stats {
	if r, ok := s.cache.(store.StatsReporter); ok {
		return r.Stats()
	}
	return store.Stats{}
}
