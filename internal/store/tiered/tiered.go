// Package tiered combines a cache tier (the embedded store or a memcached
// pool) with an optional durable backup tier (Redis).
//
// Writes go to the cache, then to the backup as the key's map says: sync
// (the client is answered once the backup confirmed), async (answered after
// the cache write; the backup write goes through a bounded queue, flushed in
// batches, drained on shutdown, dropped and counted on overflow) or none.
// Both tiers hold the same absolute deadline. A cache miss reads the backup
// and refills the cache with the record's remaining lifetime; concurrent
// misses on one key share one backup read. When the cache is down, reads and
// writes are served by the backup; when everything is down, reads answer a
// miss (or an error, on_error: error), because Postfix handles a miss far
// better than an error.
package tiered

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/repcache/repcache/internal/store"
)

// Backup is a map's backup rule.
type Backup uint8

const (
	None  Backup = iota // the cache only
	Sync                // answered after the backup confirmed
	Async               // answered after the cache write; backup write queued
)

// ParseBackup reads a backup rule from its config name.
func ParseBackup(s string) (Backup, error) {
	switch s {
	case "none":
		return None, nil
	case "sync":
		return Sync, nil
	case "async":
		return Async, nil
	}
	return None, fmt.Errorf("unknown backup rule %q: want sync, async or none", s)
}

// Rule is what a key's map asks of the tiers.
type Rule struct {
	Backup Backup
	// FailOnBackupError answers a write whose sync backup write failed with
	// an error (on_backup_error: fail); otherwise the cache write stands and
	// the failure is counted (degrade).
	FailOnBackupError bool
}

// Batcher is implemented by backups that can apply many writes in one
// round trip (Redis pipelines).
type Batcher interface {
	ApplyBatch(ctx context.Context, ops []store.Op, now int64) []error
}

// Options configure a Store.
type Options struct {
	// Rule returns the rule for a (storage) key.
	Rule func(key []byte) Rule
	// MapOf names a key's map for metrics ("" outside every map).
	MapOf func(key []byte) string
	// ErrorOnOutage answers reads with the backend's error when no tier can
	// answer (on_error: error); by default they answer a miss.
	ErrorOnOutage bool
	QueueSize     int           // async queue capacity (default 10000)
	BatchSize     int           // async writes per batch (default 256)
	BatchTimeout  time.Duration // deadline of one async batch (default 1s)
	Logger        *slog.Logger
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
	ServedByBackup  atomic.Uint64 // requests served by the backup while the cache was down
	OutageResponses atomic.Uint64 // reads answered a miss/error because no tier answered
}

// Store implements store.Store over a cache and an optional backup.
type Store struct {
	metrics       *Metrics
	cache, backup store.Store
	o             Options
	sf            singleflight.Group
	queue         chan queued
	qmu           sync.RWMutex  // enqueue (read) vs closing the queue (write)
	applyMu       sync.Mutex    // applying a batch vs flushing the backup
	gen           atomic.Uint64 // flush generation: writes queued before a flush_all are superseded by it
	closing       bool
	done          chan struct{}
	Counts        Counters
}

var _ store.Store = (*Store)(nil)

// queued is an async backup write and the flush generation it was issued in.
type queued struct {
	op  store.Op
	gen uint64
}

// New combines cache and backup (which may be nil). The caller owns both
// and closes them after Close.
func New(cache, backup store.Store, o Options) *Store {
	if o.Rule == nil {
		o.Rule = func([]byte) Rule { return Rule{} }
	}
	if o.QueueSize <= 0 {
		o.QueueSize = 10000
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 256
	}
	if o.BatchTimeout <= 0 {
		o.BatchTimeout = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Store{cache: cache, backup: backup, o: o, done: make(chan struct{})}
	if backup != nil {
		s.queue = make(chan queued, o.QueueSize)
		go s.flusher()
	} else {
		close(s.done)
	}
	return s
}

func (s *Store) rule(key []byte) Rule {
	if s.backup == nil {
		return Rule{}
	}
	return s.o.Rule(key)
}

// failed reports whether err is a backend failure rather than an answer.
func failed(err error) bool { return err != nil && !isAnswer(err) }

// outage answers a read no tier could serve.
func (s *Store) outage(err error) error {
	s.Counts.OutageResponses.Add(1)
	if s.o.ErrorOnOutage {
		return err
	}
	return store.ErrNotFound
}

// Get implements store.Store with read-through.
func (s *Store) Get(ctx context.Context, key, buf []byte, now int64) (store.Item, error) {
	it, err := s.cache.Get(ctx, key, buf, now)
	if err == nil {
		s.lookup(key, "cache", "hit")
	}
	if err == nil || !errors.Is(err, store.ErrNotFound) && !failed(err) {
		return it, err
	}
	s.lookup(key, "cache", "miss")
	cacheDown := failed(err)
	if cacheDown {
		s.Counts.CacheErrors.Add(1)
	}
	if s.rule(key).Backup == None {
		if cacheDown {
			return store.Item{}, s.outage(err)
		}
		return store.Item{}, store.ErrNotFound
	}
	bit, berr := s.readBackup(ctx, key, now, !cacheDown)
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
		return store.Item{}, s.outage(err)
	default:
		return store.Item{}, store.ErrNotFound // the cache answered a miss; the backup could not add to it
	}
}

// readBackup reads key from the backup, once for all concurrent callers,
// and refills the cache with the record's own deadline.
func (s *Store) readBackup(ctx context.Context, key []byte, now int64, refill bool) (store.Item, error) {
	v, err, _ := s.sf.Do(string(key), func() (any, error) {
		it, err := s.backup.Get(ctx, key, nil, now)
		switch {
		case err == nil:
			s.lookup(key, "backup", "hit")
			s.Counts.BackupHits.Add(1)
			if refill {
				it.Key = key
				if _, err := s.cache.Store(ctx, store.Set, it, now); failed(err) {
					s.Counts.CacheErrors.Add(1)
				}
			}
		case errors.Is(err, store.ErrNotFound):
			s.lookup(key, "backup", "miss")
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
// still holds (after a cache restart).
func (s *Store) warm(ctx context.Context, key []byte, now int64) {
	if s.rule(key).Backup != None {
		s.Get(ctx, key, nil, now)
	}
}

// Store implements store.Store.
func (s *Store) Store(ctx context.Context, mode store.Mode, it store.Item, now int64) (uint64, error) {
	r := s.rule(it.Key)
	if mode == store.CASStale && r.Backup != None {
		return 0, store.ErrUnsupported // the backup would get the value without its stale mark
	}
	if mode != store.Set {
		s.warm(ctx, it.Key, now)
	}
	cas, err := s.cache.Store(ctx, mode, it, now)
	if r.Backup == None || err != nil && !failed(err) {
		if failed(err) {
			s.Counts.CacheErrors.Add(1)
		}
		return cas, err
	}
	if failed(err) {
		// The cache is down: the backup serves the write on its own.
		s.Counts.CacheErrors.Add(1)
		bcas, berr := s.backup.Store(ctx, mode, it, now)
		if berr == nil || !failed(berr) {
			s.Counts.ServedByBackup.Add(1)
			return bcas, berr
		}
		s.Counts.BackupErrors.Add(1)
		return 0, err
	}
	final := it
	if mode == store.Append || mode == store.Prepend {
		if final, err = s.cache.Get(ctx, it.Key, nil, now); err != nil {
			return cas, nil // gone already (expired or evicted): nothing to back up
		}
	}
	return cas, s.replicate(ctx, r, store.Op{Item: final}, now)
}

// replicate applies op to the backup as the rule says.
func (s *Store) replicate(ctx context.Context, r Rule, op store.Op, now int64) error {
	if op.Item.Deadline != 0 && op.Item.Deadline <= now {
		op.Delete = true // stored already expired: the backup must not keep an older version
	}
	if r.Backup == Async {
		s.enqueue(op)
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
		return nil
	}
	s.Counts.BackupErrors.Add(1)
	if r.FailOnBackupError {
		return fmt.Errorf("backup write failed: %w", err)
	}
	s.Counts.DegradedWrites.Add(1)
	return nil
}

func (s *Store) enqueue(op store.Op) {
	op.Item.Key = append([]byte(nil), op.Item.Key...)
	op.Item.Value = append([]byte(nil), op.Item.Value...)
	s.qmu.RLock()
	defer s.qmu.RUnlock()
	if s.closing {
		s.Counts.AsyncDropped.Add(1)
		return
	}
	select {
	case s.queue <- queued{op, s.gen.Load()}:
	default:
		s.Counts.AsyncDropped.Add(1)
	}
}

// QueueLen is the number of async backup writes waiting.
func (s *Store) QueueLen() int { return len(s.queue) }

// flusher applies queued backup writes in batches until the queue is closed.
func (s *Store) flusher() {
	defer close(s.done)
	batch := make([]queued, 0, s.o.BatchSize)
	ops := make([]store.Op, 0, s.o.BatchSize)
	for q := range s.queue {
		batch = append(batch[:0], q)
	fill:
		for len(batch) < s.o.BatchSize {
			select {
			case q, ok := <-s.queue:
				if !ok {
					break fill
				}
				batch = append(batch, q)
			default:
				break fill
			}
		}
		s.applyMu.Lock()
		ops = ops[:0]
		for _, q := range batch {
			if q.gen == s.gen.Load() { // older ones were wiped by a flush_all
				ops = append(ops, q.op)
			}
		}
		if len(ops) > 0 {
			s.apply(ops)
		}
		s.applyMu.Unlock()
	}
}

func (s *Store) apply(batch []store.Op) {
	ctx, cancel := context.WithTimeout(context.Background(), s.o.BatchTimeout)
	defer cancel()
	now := time.Now().Unix()
	var errs []error
	if b, ok := s.backup.(Batcher); ok {
		errs = b.ApplyBatch(ctx, batch, now)
	} else {
		errs = make([]error, len(batch))
		for i, op := range batch {
			if op.Delete {
				errs[i] = s.backup.Delete(ctx, op.Item.Key, store.DeleteOptions{}, now)
			} else {
				_, errs[i] = s.backup.Store(ctx, store.Set, op.Item, now)
			}
		}
	}
	failures := 0
	for _, err := range errs {
		if failed(err) {
			failures++
		}
	}
	s.Counts.AsyncWritten.Add(uint64(len(batch) - failures))
	s.backupWrite("async", true, len(batch)-failures)
	s.backupWrite("async", false, failures)
	if failures > 0 {
		s.Counts.BackupErrors.Add(uint64(failures))
		s.o.Logger.Warn("async backup writes failed", "failed", failures, "batch", len(batch), "err", firstFailure(errs))
	}
}

func firstFailure(errs []error) error {
	for _, err := range errs {
		if failed(err) {
			return err
		}
	}
	return nil
}

// Delete implements store.Store: both tiers forget the key. Conditional
// and invalidating deletes go to a cache-only key's cache as they are;
// across two tiers they are not implemented yet.
func (s *Store) Delete(ctx context.Context, key []byte, o store.DeleteOptions, now int64) error {
	r := s.rule(key)
	if !o.Plain() && r.Backup != None {
		return store.ErrUnsupported
	}
	err := s.cache.Delete(ctx, key, o, now)
	if r.Backup == None {
		return err
	}
	if failed(err) {
		s.Counts.CacheErrors.Add(1)
		berr := s.backup.Delete(ctx, key, o, now)
		if failed(berr) {
			s.Counts.BackupErrors.Add(1)
			return err
		}
		s.Counts.ServedByBackup.Add(1)
		return berr
	}
	if r.Backup == Async {
		s.enqueue(store.Op{Delete: true, Item: store.Item{Key: key}})
		return err
	}
	berr := s.backup.Delete(ctx, key, o, now)
	if failed(berr) {
		s.Counts.BackupErrors.Add(1)
		if r.FailOnBackupError {
			return fmt.Errorf("backup delete failed: %w", berr)
		}
		s.Counts.DegradedWrites.Add(1)
		return err
	}
	if errors.Is(err, store.ErrNotFound) {
		return berr // found in the backup only: still deleted
	}
	return err
}

// MetaGet implements store.Store for the options that need no per-item
// meta state (store.PlainMetaGet); the others are refused for now.
// A key kept in the cache tier only goes to the cache as it is.
func (s *Store) MetaGet(ctx context.Context, key, buf []byte, o store.MetaGetOptions, now int64) (store.Item, store.MetaState, error) {
	if s.rule(key).Backup == None {
		it, st, err := s.cache.MetaGet(ctx, key, buf, o, now)
		if failed(err) {
			s.Counts.CacheErrors.Add(1)
		}
		return it, st, err
	}
	return store.PlainMetaGet(ctx, s, key, buf, o, now)
}

// Touch implements store.Store on both tiers.
func (s *Store) Touch(ctx context.Context, key []byte, deadline int64, buf []byte, now int64) (store.Item, error) {
	r := s.rule(key)
	s.warm(ctx, key, now)
	it, err := s.cache.Touch(ctx, key, deadline, buf, now)
	if r.Backup == None || err != nil && !failed(err) {
		return it, err
	}
	if failed(err) {
		s.Counts.CacheErrors.Add(1)
		bit, berr := s.backup.Touch(ctx, key, deadline, buf, now)
		if failed(berr) {
			s.Counts.BackupErrors.Add(1)
			return store.Item{}, err
		}
		s.Counts.ServedByBackup.Add(1)
		return bit, berr
	}
	full := it
	full.Key, full.Value = key, append([]byte(nil), it.Value...)
	return it, s.replicate(ctx, r, store.Op{Item: full}, now)
}

// Incr implements store.Store: the cache computes, the result is backed up.
// Meta arithmetic's conditions (CAS, vivify, touch) go to a cache-only
// key's cache as they are; across two tiers they are not implemented yet.
func (s *Store) Incr(ctx context.Context, key []byte, o store.IncrOptions, now int64) (store.Counter, error) {
	r := s.rule(key)
	if !o.Plain() && r.Backup != None {
		return store.Counter{}, store.ErrUnsupported
	}
	s.warm(ctx, key, now)
	v, err := s.cache.Incr(ctx, key, o, now)
	if r.Backup == None || err != nil && !failed(err) {
		return v, err
	}
	if failed(err) {
		s.Counts.CacheErrors.Add(1)
		bv, berr := s.backup.Incr(ctx, key, o, now)
		if failed(berr) {
			s.Counts.BackupErrors.Add(1)
			return store.Counter{}, err
		}
		s.Counts.ServedByBackup.Add(1)
		return bv, berr
	}
	it, gerr := s.cache.Get(ctx, key, nil, now)
	if gerr != nil {
		return v, nil
	}
	return v, s.replicate(ctx, r, store.Op{Item: it}, now)
}

// Flush implements store.Store on both tiers.
func (s *Store) Flush(ctx context.Context) error {
	err := s.cache.Flush(ctx)
	if s.backup != nil {
		// Writes still queued were issued before the flush: they must not
		// land after it. A batch being applied finishes first.
		s.applyMu.Lock()
		s.gen.Add(1)
		berr := s.backup.Flush(ctx)
		s.applyMu.Unlock()
		if berr != nil {
			s.Counts.BackupErrors.Add(1)
			err = errors.Join(err, berr)
		}
	}
	return err
}

// Close drains the async queue (until ctx ends; what is left is dropped and
// counted) and stops the flusher. It does not close the tiers.
func (s *Store) Close() error { return s.Drain(context.Background()) }

// Drain is Close with a deadline.
func (s *Store) Drain(ctx context.Context) error {
	s.qmu.Lock()
	already := s.closing
	s.closing = true
	if !already && s.queue != nil {
		close(s.queue)
	}
	s.qmu.Unlock()
	if already {
		<-s.done
		return nil
	}
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		n := len(s.queue)
		s.Counts.AsyncDropped.Add(uint64(n))
		return fmt.Errorf("backup queue not drained: %d writes left: %w", n, ctx.Err())
	}
}

// Stats passes the cache tier's statistics through.
func (s *Store) Stats() store.Stats {
	if r, ok := s.cache.(store.StatsReporter); ok {
		return r.Stats()
	}
	return store.Stats{}
}
