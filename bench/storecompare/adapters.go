package main

import (
	"errors"
	"time"
	"unsafe"

	"github.com/VictoriaMetrics/fastcache"
	"github.com/allegro/bigcache/v3"
	"github.com/coocood/freecache"
	"github.com/dgraph-io/ristretto/v2"
	"github.com/maypok86/otter/v2"
	"github.com/maypok86/otter/v2/stats"
)

// ustr views b as a string without copying; only for calls that do not
// retain the key (lookups, or libraries that copy/hash the key).
func ustr(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

func ttlSeconds(deadline, now int64) int {
	if deadline == 0 {
		return 0
	}
	return int(max(deadline-now, 1))
}

// ---------------------------------------------------------------- freecache

type freecacheA struct {
	c   *freecache.Cache
	enc []byte
}

func init() {
	register(factory{
		name:   "freecache",
		module: "github.com/coocood/freecache",
		notes:  "freecache.NewCache(budget) (ring buffers preallocated on the Go heap, 256 segments; max entry = budget/1024); value = flags+CAS+deadline+data; native TTL = deadline-now (uint32 seconds); GetWithBuf",
		new: func(n int, budget int64) (adapter, error) {
			return &freecacheA{c: freecache.NewCache(int(budget)), enc: make([]byte, 0, 256)}, nil
		},
	})
}

func (a *freecacheA) set(key []byte, flags uint32, cas uint64, deadline int64, data []byte, now int64) error {
	a.enc = encode(a.enc[:0], flags, cas, deadline, data)
	return a.c.Set(key, a.enc, ttlSeconds(deadline, now))
}

func (a *freecacheA) get(key, buf []byte, now int64) ([]byte, bool) {
	v, err := a.c.GetWithBuf(key, buf)
	return v, err == nil
}
func (a *freecacheA) settle()          {}
func (a *freecacheA) evictions() int64 { return a.c.EvacuateCount() }
func (a *freecacheA) close()           {}

// ---------------------------------------------------------------- fastcache

type fastcacheA struct {
	c   *fastcache.Cache
	n   int
	enc []byte
}

func init() {
	register(factory{
		name:   "fastcache",
		module: "github.com/VictoriaMetrics/fastcache",
		notes:  "fastcache.New(budget) (512 buckets of 64 KiB chunks, mmap'd off-heap); no TTL, so deadline lives only in the value and is checked on read; Set limit key+value < 64 KiB (SetBig for larger); Get(dst,k)",
		new: func(n int, budget int64) (adapter, error) {
			return &fastcacheA{c: fastcache.New(int(budget)), n: n, enc: make([]byte, 0, 256)}, nil
		},
	})
}

// fastcacheBig is the largest key+value Set stores; larger values need
// SetBig/GetBig, which split them into 64 KiB sub-entries.
const fastcacheBig = 64*1024 - 4 - 1

func (a *fastcacheA) set(key []byte, flags uint32, cas uint64, deadline int64, data []byte, now int64) error {
	a.enc = encode(a.enc[:0], flags, cas, deadline, data)
	if len(key)+len(a.enc) >= fastcacheBig {
		a.c.SetBig(key, a.enc)
		return nil
	}
	a.c.Set(key, a.enc)
	return nil
}

func (a *fastcacheA) get(key, buf []byte, now int64) ([]byte, bool) {
	v, ok := a.c.HasGet(buf, key)
	if !ok || len(v)-len(buf) != 16 {
		return v, ok
	}
	// A 16-byte value is SetBig's metadata (ours are >= 20 bytes): read the
	// sub-entries.
	v = a.c.GetBig(buf, key)
	return v, len(v) > len(buf)
}
func (a *fastcacheA) settle() {}
func (a *fastcacheA) evictions() int64 {
	var s fastcache.Stats
	a.c.UpdateStats(&s)
	// fastcache counts evicted bytes, not entries: report entries missing
	// from its index (all phase sets overwrite loaded keys).
	return int64(a.n) - int64(s.EntriesCount)
}
func (a *fastcacheA) close() { a.c.Reset() }

// ----------------------------------------------------------------- bigcache

type bigcacheA struct {
	c       *bigcache.BigCache
	enc     []byte
	removed *int64
}

func init() {
	register(factory{
		name:   "bigcache",
		module: "github.com/allegro/bigcache/v3",
		notes:  "Shards=1024, LifeWindow=100 years (global; per-item deadline lives in the value and is checked on read), CleanWindow=0, MaxEntriesInWindow=N, MaxEntrySize=80, HardMaxCacheSize=budget MiB; Get copies out (allocates)",
		new: func(n int, budget int64) (adapter, error) {
			cfg := bigcache.Config{
				Shards:             1024,
				LifeWindow:         100 * 365 * 24 * time.Hour,
				CleanWindow:        0,
				MaxEntriesInWindow: n,
				MaxEntrySize:       80,
				HardMaxCacheSize:   int(budget >> 20),
				Verbose:            false,
			}
			removed := new(int64)
			cfg.OnRemoveWithReason = func(string, []byte, bigcache.RemoveReason) { *removed++ }
			cfg = cfg.OnRemoveFilterSet(bigcache.Expired, bigcache.NoSpace)
			c, err := bigcache.NewBigCache(cfg)
			if err != nil {
				return nil, err
			}
			return &bigcacheA{c: c, enc: make([]byte, 0, 256), removed: removed}, nil
		},
	})
}

func (a *bigcacheA) set(key []byte, flags uint32, cas uint64, deadline int64, data []byte, now int64) error {
	a.enc = encode(a.enc[:0], flags, cas, deadline, data)
	return a.c.Set(ustr(key), a.enc) // bigcache copies key and value into its queue
}

func (a *bigcacheA) get(key, buf []byte, now int64) ([]byte, bool) {
	v, err := a.c.Get(ustr(key))
	if err != nil {
		return nil, false
	}
	return append(buf, v...), true
}
func (a *bigcacheA) settle()          {}
func (a *bigcacheA) evictions() int64 { return *a.removed }
func (a *bigcacheA) close()           { _ = a.c.Close() }

// ---------------------------------------------------------------- ristretto

type ristrettoA struct {
	c *ristretto.Cache[string, []byte]
}

func init() {
	register(factory{
		name:   "ristretto",
		module: "github.com/dgraph-io/ristretto/v2",
		notes:  "Cache[string,[]byte], NumCounters=10×N, MaxCost=budget, cost=len(key)+len(value) plus internal cost, BufferItems=64, Metrics on (eviction count); SetWithTTL(deadline-now), dropped async Sets retried, Wait() after load; stores only the 128-bit key hash, not the key",
		new: func(n int, budget int64) (adapter, error) {
			c, err := ristretto.NewCache(&ristretto.Config[string, []byte]{
				NumCounters: int64(n) * 10,
				MaxCost:     budget,
				BufferItems: 64,
				Metrics:     true,
			})
			if err != nil {
				return nil, err
			}
			return &ristrettoA{c: c}, nil
		},
	})
}

func (a *ristrettoA) set(key []byte, flags uint32, cas uint64, deadline int64, data []byte, now int64) error {
	v := encode(make([]byte, 0, hdrLen+len(data)), flags, cas, deadline, data)
	ttl := time.Duration(ttlSeconds(deadline, now)) * time.Second
	// Ristretto only hashes the key, so an unsafe view is fine. Set is
	// asynchronous and drops under buffer pressure: retry like a server
	// that must not lose writes would have to.
	for tries := 0; !a.c.SetWithTTL(ustr(key), v, int64(len(key)+len(v)), ttl); tries++ {
		if tries > 1000 {
			return errors.New("ristretto kept dropping the Set")
		}
		time.Sleep(10 * time.Microsecond)
	}
	return nil
}

func (a *ristrettoA) get(key, buf []byte, now int64) ([]byte, bool) {
	v, ok := a.c.Get(ustr(key))
	if !ok {
		return nil, false
	}
	return append(buf, v...), true
}
func (a *ristrettoA) settle()          { a.c.Wait() }
func (a *ristrettoA) evictions() int64 { return int64(a.c.Metrics.KeysEvicted()) }
func (a *ristrettoA) close()           { a.c.Close() }

// -------------------------------------------------------------------- otter

type otterA struct {
	c   *otter.Cache[string, []byte]
	rec *stats.Counter
}

func init() {
	register(factory{
		name:   "otter",
		module: "github.com/maypok86/otter/v2",
		notes:  "Cache[string,[]byte], MaximumWeight=budget, Weigher=len(key)+len(value)+64, InitialCapacity=N, ExpiryWritingFunc(deadline from value - now), stats.Counter; value = flags+CAS+deadline+data in one []byte",
		new: func(n int, budget int64) (adapter, error) {
			rec := stats.NewCounter()
			c, err := otter.New(&otter.Options[string, []byte]{
				MaximumWeight:   uint64(budget),
				InitialCapacity: n,
				StatsRecorder:   rec,
				Weigher: func(k string, v []byte) uint32 {
					return uint32(len(k) + len(v) + 64)
				},
				ExpiryCalculator: otter.ExpiryWritingFunc(func(e otter.Entry[string, []byte]) time.Duration {
					d := int64(le64(e.Value[12:20]))
					if d == 0 {
						return 100 * 365 * 24 * time.Hour
					}
					return time.Until(time.Unix(d, 0))
				}),
			})
			if err != nil {
				return nil, err
			}
			return &otterA{c: c, rec: rec}, nil
		},
	})
}

func le64(b []byte) uint64 {
	return uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
		uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
}

func (a *otterA) set(key []byte, flags uint32, cas uint64, deadline int64, data []byte, now int64) error {
	v := encode(make([]byte, 0, hdrLen+len(data)), flags, cas, deadline, data)
	a.c.Set(string(key), v) // otter retains the key: it must be a real string
	return nil
}

func (a *otterA) get(key, buf []byte, now int64) ([]byte, bool) {
	v, ok := a.c.GetIfPresent(ustr(key))
	if !ok {
		return nil, false
	}
	return append(buf, v...), true
}
func (a *otterA) settle()          { a.c.CleanUp() }
func (a *otterA) evictions() int64 { return int64(a.rec.Snapshot().Evictions) }
func (a *otterA) close()           { a.c.StopAllGoroutines() }
