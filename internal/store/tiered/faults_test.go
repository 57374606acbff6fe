package tiered

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

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
	mu sync.Mutex
	g  uint64
}

func (m *generations) CacheGeneration(_ context.Context, atLeast uint64) (uint64, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.g = max(m.g, atLeast)
	return m.g, false, nil
}

func (m *generations) NextCacheGeneration(_ context.Context, above uint64) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.g = max(m.g, above) + 1
	return m.g, nil
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
