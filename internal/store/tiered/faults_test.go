package tiered

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/repcache/repcache/internal/guard"
	"github.com/repcache/repcache/internal/store"
)

func TestMissedWriteIsInvalidatedBeforeTheCacheServesIt(t *testing.T) {
	cache := &down{inner: mem(t)}
	s := routed(New(cache, mem(t), Options{}), store.Route{Backup: store.SyncBackup})
	defer s.Close()
	set(t, s, "k", "v1", 0)
	set(t, s, "d", "x", 0)
	cache.off.Store(true)
	if err := set(t, s, "k", "v2", 0); err != nil {
		t.Fatalf("write with the cache down: %v", err)
	}
	if err := s.Delete(context.Background(), []byte("d"), store.DeleteOptions{}, now); err != nil {
		t.Fatalf("delete with the cache down: %v", err)
	}
	if s.inv.len() != 2 {
		t.Fatalf("%d keys remembered, want 2", s.inv.len())
	}
	cache.off.Store(false) // the cache answers again, with its old copies
	if it, err := get(s, "k"); err != nil || string(it.Value) != "v2" {
		t.Fatalf("k after the cache came back: %q, %v", it.Value, err)
	}
	if _, err := get(s, "d"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted d came back: %v", err)
	}
	if s.inv.len() != 0 {
		t.Fatalf("%d keys still remembered after they were invalidated", s.inv.len())
	}
}

// generations is an in-process Generations (the Redis one is tested
// against a real Redis in the redis package and through the binary).
type generations struct {
	mu     sync.Mutex
	g      uint64
	probes int // CacheGeneration calls: one per probe
}

func (m *generations) CacheGeneration(_ context.Context, atLeast uint64) (uint64, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.probes++
	m.g = max(m.g, atLeast)
	return m.g, false, nil
}

func (m *generations) NextCacheGeneration(_ context.Context, above uint64) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.g = max(m.g, above) + 1
	return m.g, nil
}

// waitProbes returns once n more probes began: the probe before the last
// of them has done all its work.
func (m *generations) waitProbes(t *testing.T, n int) {
	t.Helper()
	m.mu.Lock()
	want := m.probes + n
	m.mu.Unlock()
	deadline := time.Now().Add(10 * time.Second) // a hang guard only
	for {
		m.mu.Lock()
		got := m.probes
		m.mu.Unlock()
		if got >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d probes ran", got-want+n, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// missLog is an in-process MissLog (the Redis one is tested against a real
// Redis in the redis package and through the binary). hang makes every
// call but the read wait for its context to end, as a hung Redis does.
type missLog struct {
	mu           sync.Mutex
	keys         []string
	reads, calls int
	failReads    int // the next reads that fail
	hang         bool
}

func (m *missLog) call(ctx context.Context) error {
	m.mu.Lock()
	m.calls++
	hang := m.hang
	m.mu.Unlock()
	if hang {
		<-ctx.Done()
		return ctx.Err()
	}
	return nil
}

func (m *missLog) AnnounceMissed(ctx context.Context, key []byte, limit int) (bool, error) {
	return true, m.call(ctx)
}

func (m *missLog) MissedWrites(context.Context) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reads++
	if m.failReads > 0 {
		m.failReads--
		return nil, errors.New("redis down")
	}
	return m.keys, nil
}

func (m *missLog) ClearMissed(ctx context.Context, keys []string) error { return m.call(ctx) }

func (m *missLog) AnnounceGeneration(ctx context.Context, g uint64) error { return m.call(ctx) }

func (m *missLog) count() (reads, calls int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.reads, m.calls
}

// The shared record of missed writes is read at every probe until the
// announcements reach the instance, then once per (re)subscription, and
// again after a read that failed.
func TestMissedWritesReadOncePerSubscription(t *testing.T) {
	gens, ml := &generations{}, &missLog{keys: []string{"k"}}
	s := New(mem(t), mem(t), Options{Generations: gens, MissLog: ml, ProbeInterval: time.Millisecond})
	defer s.Close()
	gens.waitProbes(t, 4)
	if reads, _ := ml.count(); reads < 3 {
		t.Fatalf("%d reads of the record in 3 probes without a subscription, want one per probe", reads)
	}
	if _, calls := ml.count(); calls == 0 { // repair deletes it from the cache and unlists it
		t.Fatal("the record's key was not adopted")
	}
	s.RemoteSubscribed()
	gens.waitProbes(t, 5)
	settled, _ := ml.count()
	gens.waitProbes(t, 5)
	if reads, _ := ml.count(); reads != settled {
		t.Fatalf("%d reads of the record while subscribed and caught up, want 0", reads-settled)
	}
	ml.mu.Lock()
	ml.failReads = 1
	ml.mu.Unlock()
	s.RemoteSubscribed() // a gap in the subscription: read once more (the first read fails: twice)
	gens.waitProbes(t, 5)
	if reads, _ := ml.count(); reads != settled+2 {
		t.Fatalf("%d reads after a resubscription whose first read failed, want 2", reads-settled)
	}
}

// Announcing a missed write goes through the backup's breaker: with the
// backup hung, only the calls it takes to open the breaker wait for it.
func TestAnnouncementsGoThroughTheBackupBreaker(t *testing.T) {
	ml := &missLog{hang: true}
	g := guard.New("redis", mem(t), guard.Options{Timeout: 5 * time.Millisecond, FailuresToOpen: 2, OpenFor: time.Hour})
	gl := GuardedMissLog(g, ml)
	ctx := context.Background()
	for range 3 {
		if _, err := gl.AnnounceMissed(ctx, []byte("k"), 10); !guard.Failed(err) {
			t.Fatalf("announce to a hung backup: %v", err)
		}
	}
	if err := gl.ClearMissed(ctx, []string{"k"}); !errors.Is(err, guard.ErrUnavailable) {
		t.Fatalf("clear with the breaker open: %v, want unavailable", err)
	}
	if err := gl.AnnounceGeneration(ctx, 2); !errors.Is(err, guard.ErrUnavailable) {
		t.Fatalf("generation announce with the breaker open: %v, want unavailable", err)
	}
	if _, calls := ml.count(); calls != 2 {
		t.Fatalf("%d calls reached the hung backup, want the 2 that opened the breaker", calls)
	}
	if _, err := gl.MissedWrites(ctx); err != nil {
		t.Fatalf("the probe's read is not refused by the breaker: %v", err)
	}
}

func TestOverflowMovesTheGenerationOn(t *testing.T) {
	cache := &down{inner: mem(t)}
	gens := &generations{}
	s := routed(New(cache, mem(t), Options{InvalidationLimit: 2, Generations: gens}), store.Route{Backup: store.SyncBackup})
	defer s.Close()
	for i := range 5 {
		set(t, s, fmt.Sprint("k", i), "v1", 0)
	}
	cache.off.Store(true)
	for i := range 5 {
		set(t, s, fmt.Sprint("k", i), "v2", 0)
	}
	if !s.inv.overflowed() {
		t.Fatal("5 misses with a limit of 2 did not overflow")
	}
	cache.off.Store(false)
	// Until the generation moves on, nothing of the cache is served.
	if it, _ := get(s, "k4"); string(it.Value) != "v2" {
		t.Fatalf("k4 before the generation moved: %q", it.Value)
	}
	s.repair(context.Background(), now)
	if s.gen.Load() != 1 || !s.inv.empty() {
		t.Fatalf("after repair: generation %d, %d pending", s.gen.Load(), s.inv.len())
	}
	for i := range 5 {
		if it, err := get(s, fmt.Sprint("k", i)); err != nil || string(it.Value) != "v2" {
			t.Fatalf("k%d in generation 1: %q, %v", i, it.Value, err)
		}
	}
}

func TestRefusedSyncWriteLeavesNoTrace(t *testing.T) {
	cache, backup := mem(t), &down{inner: mem(t)}
	s := routed(New(cache, backup, Options{}), store.Route{Backup: store.SyncBackup, FailOnBackupError: true})
	defer s.Close()
	set(t, s, "k", "v1", 0)
	backup.off.Store(true)
	if err := set(t, s, "k", "v2", 0); err == nil {
		t.Fatal("a write the backup refused was acknowledged")
	}
	if it, err := get(cache, "k"); err == nil {
		t.Fatalf("the cache kept %q", it.Value)
	}
	backup.off.Store(false)
	if it, err := get(s, "k"); err != nil || string(it.Value) != "v1" {
		t.Fatalf("after the refused write: %q, %v", it.Value, err)
	}
}

func TestAsyncWritesRetriedUntilTheBackupReturns(t *testing.T) {
	backup := &down{inner: mem(t)}
	backup.off.Store(true)
	s := routed(New(mem(t), backup, Options{}), store.Route{Backup: store.AsyncBackup})
	for i := range 500 {
		set(t, s, fmt.Sprint("k", i), "v", 0)
	}
	for s.Counts.AsyncRetries.Load() < 3 {
		time.Sleep(time.Millisecond) // a few failed attempts
	}
	backup.off.Store(false)
	if err := s.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d := s.Counts.AsyncDropped.Load(); d != 0 {
		t.Fatalf("%d writes dropped", d)
	}
	for i := range 500 {
		if _, err := get(backup.inner, fmt.Sprint("k", i)); err != nil {
			t.Fatalf("k%d not in the backup: %v", i, err)
		}
	}
}

func TestQueueBoundedInBytes(t *testing.T) {
	backup := &down{inner: mem(t)}
	backup.off.Store(true)
	s := routed(New(mem(t), backup, Options{QueueBytes: 10 << 10}), store.Route{Backup: store.AsyncBackup})
	defer s.Drain(canceled())
	big := string(make([]byte, 4<<10))
	for i := range 10 {
		set(t, s, fmt.Sprint("k", i), big, 0)
	}
	if d := s.Counts.AsyncDropped.Load(); d < 7 {
		t.Fatalf("%d of 10 4KiB writes dropped with a 10KiB queue", d)
	}
}

func canceled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

func TestWarmIsNotAClientRead(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := routed(New(mem(t), mem(t), Options{Registerer: reg, Maps: []string{"m"}}), store.Route{Map: "m", Backup: store.SyncBackup})
	defer s.Close()
	if _, err := s.Store(context.Background(), store.Add, store.Item{Key: []byte("k"), Value: []byte("v")}, now); err != nil {
		t.Fatal(err)
	}
	if n := lookups(t, reg, "miss"); n != 0 {
		t.Fatalf("add counted %v cache misses", n)
	}
	get(s, "k")
	if n := lookups(t, reg, "hit"); n != 1 {
		t.Fatalf("a client read counted %v cache hits", n)
	}
}

// A meta get is a client read on either route; a Peek (me, the lookup a
// watched set reports) is not.
func TestMetaGetCountsUnlessPeek(t *testing.T) {
	for _, r := range []store.Route{{Map: "m", Backup: store.SyncBackup}, {Map: "m", Backup: store.NoBackup}} {
		reg := prometheus.NewRegistry()
		s := routed(New(mem(t), mem(t), Options{Registerer: reg, Maps: []string{"m"}}), r)
		set(t, s, "k", "v", 0)
		ctx := context.Background()
		for _, key := range []string{"k", "absent"} {
			if _, _, err := s.MetaGet(ctx, []byte(key), nil, store.MetaGetOptions{NoBump: true, Peek: true}, now); key == "k" && err != nil {
				t.Fatal(err)
			}
		}
		if hits, misses := lookups(t, reg, "hit"), lookups(t, reg, "miss"); hits+misses != 0 {
			t.Fatalf("backup %v: peeks counted %v hits, %v misses", r.Backup, hits, misses)
		}
		for _, key := range []string{"k", "absent"} {
			s.MetaGet(ctx, []byte(key), nil, store.MetaGetOptions{NoBump: true}, now)
		}
		if hits, misses := lookups(t, reg, "hit"), lookups(t, reg, "miss"); hits != 1 || misses != 1 {
			t.Fatalf("backup %v: a meta get hit and miss counted %v hits, %v misses", r.Backup, hits, misses)
		}
		s.Close()
	}
}

// lookups is repcache_lookups_total{map="m",tier="cache",result=result}.
func lookups(t *testing.T, reg *prometheus.Registry, result string) float64 {
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "repcache_lookups_total" {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				want := map[string]string{"map": "m", "tier": "cache", "result": result}[l.GetName()]
				if l.GetValue() != want {
					continue metric
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no lookups series for %s", result)
	return 0
}
