package tiered

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/repcache/repcache/internal/store"
	"github.com/repcache/repcache/internal/store/memory"
	"github.com/repcache/repcache/internal/store/storetest"
)

const now = storetest.Now

func mem(t testing.TB) *memory.Store {
	t.Helper()
	m, err := memory.New(memory.Options{MaxBytes: 8 << 20, SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func TestConformance(t *testing.T) {
	for _, b := range []store.Backup{store.SyncBackup, store.AsyncBackup, store.NoBackup} {
		storetest.Run(t, func(t *testing.T) store.Store {
			s := routed(New(mem(t), mem(t), Options{}), store.Route{Backup: b})
			t.Cleanup(func() { s.Close() })
			return s
		})
	}
}

// down is a store that can be switched off. It stands in for an outage of a
// tier in these unit tests only: the embedded store cannot fail by itself.
// The fault tests against real memcached and Redis processes live with the
// binary's tests.
// inner is embedded under its own name: a field called Store would hide the
// Store method.
type inner = store.Store

type down struct {
	inner
	off   atomic.Bool
	calls atomic.Int64
}

var errDown = errors.New("connection refused")

func (d *down) fail() error {
	d.calls.Add(1)
	if d.off.Load() {
		return errDown
	}
	return nil
}

func (d *down) Get(ctx context.Context, key, buf []byte, now int64) (store.Item, error) {
	if err := d.fail(); err != nil {
		return store.Item{}, err
	}
	return d.inner.Get(ctx, key, buf, now)
}

func (d *down) Store(ctx context.Context, mode store.Mode, it store.Item, now int64) (uint64, error) {
	if err := d.fail(); err != nil {
		return 0, err
	}
	return d.inner.Store(ctx, mode, it, now)
}

func (d *down) Delete(ctx context.Context, key []byte, o store.DeleteOptions, now int64) error {
	if err := d.fail(); err != nil {
		return err
	}
	return d.inner.Delete(ctx, key, o, now)
}

func set(t *testing.T, s store.Store, key, val string, deadline int64) error {
	t.Helper()
	_, err := s.Store(context.Background(), store.Set, store.Item{Key: []byte(key), Value: []byte(val), Deadline: deadline}, now)
	return err
}

func get(s store.Store, key string) (store.Item, error) {
	return s.Get(context.Background(), []byte(key), nil, now)
}

func TestReadThroughRefillsWithRemainingLifetime(t *testing.T) {
	cache, backup := mem(t), mem(t)
	s := routed(New(cache, backup, Options{}), store.Route{Backup: store.SyncBackup})
	defer s.Close()
	set(t, s, "k", "v", now+3600)
	cache.Flush(context.Background()) // the cache restarts empty
	it, err := get(s, "k")
	if err != nil || string(it.Value) != "v" || it.Deadline != now+3600 {
		t.Fatalf("read-through: %+v, %v", it, err)
	}
	if it, err := get(cache, "k"); err != nil || it.Deadline != now+3600 {
		t.Fatalf("cache not refilled with the record's own deadline: %+v, %v", it, err)
	}
	if s.Counts.BackupHits.Load() != 1 {
		t.Fatalf("backup hits = %d", s.Counts.BackupHits.Load())
	}
}

func TestCacheDownIsServedByBackup(t *testing.T) {
	cache := &down{inner: mem(t)}
	s := routed(New(cache, mem(t), Options{}), store.Route{Backup: store.SyncBackup})
	defer s.Close()
	set(t, s, "k", "v", 0)
	cache.off.Store(true)
	if it, err := get(s, "k"); err != nil || string(it.Value) != "v" {
		t.Fatalf("read with the cache down: %q, %v", it.Value, err)
	}
	if err := set(t, s, "k2", "v2", 0); err != nil {
		t.Fatalf("write with the cache down: %v", err)
	}
	if it, err := get(s, "k2"); err != nil || string(it.Value) != "v2" {
		t.Fatalf("read back with the cache down: %q, %v", it.Value, err)
	}
}

func TestEverythingDown(t *testing.T) {
	cache, backup := &down{inner: mem(t)}, &down{inner: mem(t)}
	cache.off.Store(true)
	backup.off.Store(true)
	for _, errorOnOutage := range []bool{false, true} {
		s := routed(New(cache, backup, Options{ErrorOnOutage: errorOnOutage}), store.Route{Backup: store.SyncBackup})
		_, err := get(s, "k")
		if errorOnOutage && !errors.Is(err, errDown) || !errorOnOutage && !errors.Is(err, store.ErrNotFound) {
			t.Errorf("on_error error=%v: read answered %v", errorOnOutage, err)
		}
		s.Close()
	}
}

func TestBackupErrorPolicy(t *testing.T) {
	backup := &down{inner: mem(t)}
	backup.off.Store(true)
	degrade := routed(New(mem(t), backup, Options{}), store.Route{Backup: store.SyncBackup})
	defer degrade.Close()
	if err := set(t, degrade, "k", "v", 0); err != nil {
		t.Fatalf("degrade: %v", err)
	}
	if degrade.Counts.DegradedWrites.Load() != 1 {
		t.Fatal("degraded write not counted")
	}
	fail := routed(New(mem(t), backup, Options{}), store.Route{Backup: store.SyncBackup, FailOnBackupError: true})
	defer fail.Close()
	if err := set(t, fail, "k", "v", 0); err == nil {
		t.Fatal("fail: write answered success with the backup down")
	}
}

func TestAsyncQueueDrainsAndDrops(t *testing.T) {
	backup := mem(t)
	s := routed(New(mem(t), backup, Options{QueueSize: 100000}), store.Route{Backup: store.AsyncBackup})
	for i := 0; i < 5000; i++ {
		set(t, s, "k"+string(rune('a'+i%26))+string(rune(i)), "v", 0)
	}
	if err := s.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := backup.Stats(); st.Items == 0 || s.Counts.AsyncWritten.Load() != 5000 {
		t.Fatalf("after drain: backup holds %d, written %d", st.Items, s.Counts.AsyncWritten.Load())
	}
	set(t, s, "late", "v", 0)
	if s.Counts.AsyncDropped.Load() != 1 {
		t.Fatalf("write after shutdown not counted as dropped: %d", s.Counts.AsyncDropped.Load())
	}

	// A full queue drops and counts instead of blocking the client.
	slow := &blocking{inner: mem(t), release: make(chan struct{})}
	q := routed(New(mem(t), slow, Options{QueueSize: 10, BatchSize: 1}), store.Route{Backup: store.AsyncBackup})
	for i := 0; i < 100; i++ {
		set(t, q, string(rune('A'+i)), "v", 0)
	}
	if q.Counts.AsyncDropped.Load() == 0 {
		t.Fatal("overflow not dropped")
	}
	close(slow.release)
	q.Close()
}

type blocking struct {
	inner
	release chan struct{}
}

func (b *blocking) Store(ctx context.Context, mode store.Mode, it store.Item, now int64) (uint64, error) {
	<-b.release
	return b.inner.Store(ctx, mode, it, now)
}

func TestConcurrentMissesShareOneBackupRead(t *testing.T) {
	backup := &counting{inner: mem(t), gate: make(chan struct{})}
	s := routed(New(mem(t), backup, Options{}), store.Route{Backup: store.SyncBackup})
	defer s.Close()
	backup.inner.Store(context.Background(), store.Set, store.Item{Key: []byte("k"), Value: []byte("v")}, now)
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); get(s, "k") }()
	}
	time.Sleep(50 * time.Millisecond) // let them pile up on the first read
	close(backup.gate)
	wg.Wait()
	if n := backup.gets.Load(); n != 1 {
		t.Fatalf("%d backup reads for 20 concurrent misses", n)
	}
}

type counting struct {
	inner
	gets atomic.Int64
	gate chan struct{}
}

func (c *counting) Get(ctx context.Context, key, buf []byte, now int64) (store.Item, error) {
	c.gets.Add(1)
	select {
	case <-c.gate:
	case <-ctx.Done(): // a hung peer: the client's socket deadline fires
		return store.Item{}, ctx.Err()
	}
	return c.inner.Get(ctx, key, buf, now)
}

// route is a Store serving every request under one route, as the policy
// layer sets it in the request carrier.
type route struct {
	*tiers
	r store.Route
}

type tiers = Store // embedded under its own name: a field called Store would hide the Store method

func routed(s *Store, r store.Route) *route { return &route{s, r} }

func (s *route) ctx(ctx context.Context) context.Context {
	return store.NewContext(ctx, &store.Request{Route: s.r})
}

func (s *route) Get(ctx context.Context, key, buf []byte, now int64) (store.Item, error) {
	return s.tiers.Get(s.ctx(ctx), key, buf, now)
}

func (s *route) Touch(ctx context.Context, key []byte, deadline int64, buf []byte, now int64) (store.Item, error) {
	return s.tiers.Touch(s.ctx(ctx), key, deadline, buf, now)
}

func (s *route) Store(ctx context.Context, mode store.Mode, it store.Item, now int64) (uint64, error) {
	return s.tiers.Store(s.ctx(ctx), mode, it, now)
}

func (s *route) Delete(ctx context.Context, key []byte, o store.DeleteOptions, now int64) error {
	return s.tiers.Delete(s.ctx(ctx), key, o, now)
}

func (s *route) Incr(ctx context.Context, key []byte, o store.IncrOptions, now int64) (store.Counter, error) {
	return s.tiers.Incr(s.ctx(ctx), key, o, now)
}

func (s *route) MetaGet(ctx context.Context, key, buf []byte, o store.MetaGetOptions, now int64) (store.Item, store.MetaState, error) {
	return s.tiers.MetaGet(s.ctx(ctx), key, buf, o, now)
}
