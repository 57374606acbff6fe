package memory

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/repcache/repcache/internal/store"
	"github.com/repcache/repcache/internal/store/storetest"
)

func newTest(t testing.TB, o Options) *Store {
	t.Helper()
	if o.SweepInterval == 0 {
		o.SweepInterval = -1
	}
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return newTest(t, Options{MaxBytes: 8 << 20}) })
}

const now = storetest.Now

func put(t testing.TB, s *Store, key string, val []byte, deadline int64) {
	t.Helper()
	if _, err := s.Store(context.Background(), store.Set, store.Item{Key: []byte(key), Value: val, Deadline: deadline}, now); err != nil {
		t.Fatal(err)
	}
}

func TestEvictsOldestWhenFull(t *testing.T) {
	s := newTest(t, Options{MaxBytes: 1 << 20, MaxItemSize: 64 << 10})
	val := make([]byte, 1000)
	const n = 5000 // ~5 MB through a 1 MiB store
	for i := 0; i < n; i++ {
		put(t, s, fmt.Sprint("k", i), val, 0)
	}
	st := s.Stats()
	if st.Bytes > st.Capacity {
		t.Fatalf("live bytes %d exceed capacity %d", st.Bytes, st.Capacity)
	}
	if st.Evictions == 0 || st.Items+int64(st.Evictions) != n {
		t.Fatalf("items %d + evictions %d != %d writes", st.Items, st.Evictions, n)
	}
	// FIFO: the newest writes are all present, the first are gone.
	for i := n - 100; i < n; i++ {
		if _, err := s.Get(context.Background(), []byte(fmt.Sprint("k", i)), nil, now); err != nil {
			t.Fatalf("recent key k%d: %v", i, err)
		}
	}
	if _, err := s.Get(context.Background(), []byte("k0"), nil, now); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("oldest key survived: %v", err)
	}
}

func TestMixedSizesKeepRingConsistent(t *testing.T) {
	s := newTest(t, Options{MaxBytes: 256 << 10, MaxItemSize: 16 << 10})
	ctx := context.Background()
	want := map[string]int{}
	for i := 0; i < 20000; i++ {
		k := fmt.Sprint("k", i%700)
		size := (i * 7919) % (12 << 10)
		v := make([]byte, size)
		for j := range v {
			v[j] = byte(i)
		}
		put(t, s, k, v, 0)
		want[k] = i
		if i%3 == 0 {
			s.Delete(ctx, []byte(fmt.Sprint("k", (i*31)%700)), store.DeleteOptions{}, now)
			delete(want, fmt.Sprint("k", (i*31)%700))
		}
	}
	// Every present value must be the last one written (no torn or stale entry).
	for k, i := range want {
		it, err := s.Get(ctx, []byte(k), nil, now)
		if errors.Is(err, store.ErrNotFound) {
			continue // evicted
		}
		if len(it.Value) != (i*7919)%(12<<10) || (len(it.Value) > 0 && it.Value[0] != byte(i)) {
			t.Fatalf("%s: got %d bytes of %d, want write %d", k, len(it.Value), it.Value[0], i)
		}
	}
	st := s.Stats()
	if st.Items < 0 || st.Bytes < 0 || st.Bytes > st.Capacity {
		t.Fatalf("inconsistent stats %+v", st)
	}
}

func TestSweeperReclaimsExpired(t *testing.T) {
	clock := now
	s := newTest(t, Options{MaxBytes: 1 << 20, MaxItemSize: 64 << 10, SweepInterval: -1})
	for i := 0; i < 1000; i++ {
		d := int64(0)
		if i%2 == 0 {
			d = now + 10
		}
		put(t, s, fmt.Sprint("k", i), []byte("v"), d)
	}
	clock += 10
	for _, sh := range s.shards {
		for b := sh.size; b > 0; {
			b = sh.sweepSome(b, 1<<10, clock)
		}
	}
	st := s.Stats()
	if st.Items != 500 || st.Expired != 500 {
		t.Fatalf("after sweep: %+v; want 500 items, 500 expired", st)
	}
}

func TestTooSmall(t *testing.T) {
	if _, err := New(Options{MaxBytes: 1 << 20, MaxItemSize: 1 << 20}); err == nil {
		t.Fatal("a store smaller than two max-size items was accepted")
	}
}

func TestConcurrentAccess(t *testing.T) {
	s := newTest(t, Options{MaxBytes: 4 << 20, MaxItemSize: 64 << 10, SweepInterval: 1})
	ctx := context.Background()
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 5000; i++ {
				k := []byte(fmt.Sprint("k", (i*g)%300))
				switch i % 5 {
				case 0:
					s.Store(ctx, store.Set, store.Item{Key: k, Value: []byte("12"), Deadline: now + int64(i%3)}, now)
				case 1:
					s.Incr(ctx, k, store.IncrOptions{Delta: 1}, now)
				case 2:
					s.Store(ctx, store.Append, store.Item{Key: k, Value: []byte("x")}, now)
				case 3:
					s.Delete(ctx, k, store.DeleteOptions{}, now)
				default:
					s.Get(ctx, k, nil, now+1)
				}
			}
		}(g)
	}
	wg.Wait()
}

func BenchmarkGet(b *testing.B) {
	s := newTest(b, Options{MaxBytes: 256 << 20})
	val := []byte("1795673021;1;1;1;1")
	keys := make([][]byte, 100000)
	for i := range keys {
		keys[i] = []byte(fmt.Sprintf("postscreen:10.%d.%d.%d", i>>16, (i>>8)&255, i&255))
		put(b, s, string(keys[i]), val, 0)
	}
	buf := make([]byte, 0, 64)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s.Get(context.Background(), keys[i%len(keys)], buf[:0], now)
	}
}

func BenchmarkSet(b *testing.B) {
	s := newTest(b, Options{MaxBytes: 256 << 20})
	val := []byte("1795673021;1;1;1;1")
	key := []byte("postscreen:10.0.0.0")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		key[len(key)-1] = byte('0' + i%10)
		s.Store(context.Background(), store.Set, store.Item{Key: key, Value: val}, now)
	}
}

// TestOnExpireOutsideTheLocks: the sink is told of an item reclaimed on a
// read after its deadline, and may call the store itself (it is not run
// under a shard lock: calling back in would deadlock).
func TestOnExpireOutsideTheLocks(t *testing.T) {
	var s *Store
	got := make(chan string, 1)
	s, err := New(Options{MaxBytes: 8 << 20, SweepInterval: -1, OnExpire: func(key []byte) {
		s.Get(context.Background(), key, nil, 100)
		got <- string(key)
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if _, err := s.Store(ctx, store.Set, store.Item{Key: []byte("k"), Value: []byte("v"), Deadline: 50}, 10); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, []byte("k"), nil, 60); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get after the deadline: %v", err)
	}
	select {
	case k := <-got:
		if k != "k" {
			t.Fatalf("told of %q", k)
		}
	case <-time.After(10 * time.Second): // only keeps a broken build from hanging
		t.Fatal("the sink was not told")
	}
}
