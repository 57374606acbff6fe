// Package memory is repcache's embedded store: a byte-bounded, sharded,
// log-structured cache kept outside the Go heap.
//
// Each shard appends entries to a ring buffer (anonymous mmap) and indexes
// them in a pointer-free open-addressing table (8 bytes a slot), so the
// garbage collector has nothing to scan however many records are held. When the ring is full
// the oldest entries are overwritten (FIFO eviction); deletes and overwrites
// leave dead space that the ring reclaims as it wraps. Expired entries are
// dropped when read, when the ring wraps over them, and by a sweeper that
// walks each ring a slice at a time: no operation scans the whole cache.
package memory

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/repcache/repcache/internal/store"
)

// Entry layout in a ring: size u32 | klen u16 | flags u32 | deadline u32 |
// cas u64 | last access u32 | meta state u8 | key | value. klen 0 marks
// padding up to the ring's end.
const (
	hdrSize    = 27
	offKlen    = 4
	offFlags   = 6
	offDead    = 10
	offCAS     = 14
	offAtime   = 22
	offState   = 26
	minPadding = 6 // bytes needed to write a padding marker
	maxShards  = 1024
	maxShard   = 1<<31 - 1 // index slots hold 32-bit ring offsets
)

// Meta state bits (memcached's ITEM_FETCHED, ITEM_STALE, ITEM_TOKEN_SENT).
const (
	stateFetched   = 1 << iota // read at least once
	stateStale                 // invalidated: readers are told X
	stateTokenSent             // a reader has won the recache (W); others are told Z
)

// Options configures a Store.
type Options struct {
	MaxBytes    int64 // total ring capacity (required)
	MaxItemSize int   // largest item, memcached accounting (default 1 MiB)
	// SweepInterval is how often the expiry sweeper runs (default 1s; <0 disables it).
	SweepInterval time.Duration
	// SweepPasses is how many intervals one full pass over a ring takes
	// (default 600: with 1s intervals, every expired item is reclaimed
	// within 10 minutes for well under 1% of a CPU at 10M items).
	SweepPasses int
	Now         func() int64 // sweeper clock, Unix seconds (default time.Now)
	// OnExpire is told the key of every item reclaimed after its deadline
	// (for metrics), from a goroutine of the store's, never under its
	// locks; keys reclaimed faster than it takes them are counted
	// (repcache_store_expiry_reports_dropped_total) instead.
	OnExpire func(key []byte)
	// Registerer receives the store's metrics (nil: none).
	Registerer prometheus.Registerer
}

// Store is the embedded store. It implements store.Store.
type Store struct {
	shards  []*shard
	mask    uint64
	seed    maphash.Seed
	cas     atomic.Uint64
	maxItem int
	stop    chan struct{}
	done    chan struct{}
	closed  atomic.Bool
	exp     *expiries // nil: no OnExpire
}

var (
	_ store.Store         = (*Store)(nil)
	_ store.StatsReporter = (*Store)(nil)
)

type shard struct {
	exp        *expiries
	mu         sync.Mutex
	seed       maphash.Seed
	index      index // live entries by key
	ring       []byte
	size       uint64
	head, tail uint64 // logical positions; head-tail <= size
	sweep      uint64 // sweeper cursor
	items      int64
	bytes      int64
	evictions  uint64
	expired    uint64
	classes    [store.SlabClasses + 1]store.ClassStats
	scratch    []byte
}

// New allocates the rings and starts the expiry sweeper.
func New(o Options) (*Store, error) {
	if o.MaxItemSize <= 0 {
		o.MaxItemSize = 1 << 20
	}
	if o.Now == nil {
		o.Now = func() int64 { return time.Now().Unix() }
	}
	if o.SweepInterval == 0 {
		o.SweepInterval = time.Second
	}
	if o.SweepPasses <= 0 {
		o.SweepPasses = 600
	}
	// Shards give lock parallelism; each must still hold several of the
	// largest items so one big write does not flush a whole shard.
	n := 1
	for n < 64 && o.MaxBytes/int64(n*2) >= int64(4*o.MaxItemSize) || n < maxShards && o.MaxBytes/int64(n) > maxShard {
		n *= 2
	}
	per := o.MaxBytes / int64(n)
	if per > maxShard {
		return nil, fmt.Errorf("memory store: max_bytes %d is too large (at most %d)", o.MaxBytes, int64(maxShards)*maxShard)
	}
	if per < int64(2*o.MaxItemSize) {
		return nil, fmt.Errorf("memory store: max_bytes %d is too small for max item size %d (need at least %d)", o.MaxBytes, o.MaxItemSize, 2*o.MaxItemSize)
	}
	s := &Store{mask: uint64(n - 1), seed: maphash.MakeSeed(), maxItem: o.MaxItemSize, stop: make(chan struct{}), done: make(chan struct{})}
	if o.OnExpire != nil {
		s.exp = newExpiries(o.OnExpire)
	}
	for i := 0; i < n; i++ {
		ring, err := allocRing(int(per))
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("memory store: allocate %d bytes: %w", per, err)
		}
		s.shards = append(s.shards, &shard{seed: s.seed, index: newIndex(), ring: ring, size: uint64(per), exp: s.exp})
	}
	if o.Registerer != nil {
		newMetrics(o.Registerer, s)
	}
	if o.SweepInterval > 0 {
		go s.sweeper(o.SweepInterval, o.SweepPasses, o.Now)
	} else {
		close(s.done)
	}
	return s, nil
}

func (s *Store) shardFor(key []byte) (*shard, uint64) {
	h := maphash.Bytes(s.seed, key)
	return s.shards[h&s.mask], h
}

func clampDeadline(d int64) uint32 { return uint32(store.ClampDeadline(d)) }

func expired(deadline uint32, now int64) bool { return store.Expired(int64(deadline), now) }

// Get implements store.Store.
func (s *Store) Get(_ context.Context, key, buf []byte, now int64) (store.Item, error) {
	sh, h := s.shardFor(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.ring == nil {
		return store.Item{}, store.ErrClosed
	}
	p, ok := sh.lookup(h, key, now)
	if !ok {
		return store.Item{}, store.ErrNotFound
	}
	it := sh.item(p, key, buf)
	sh.bump(p, now)
	return it, nil
}

// MetaGet implements store.Store.
func (s *Store) MetaGet(_ context.Context, key, buf []byte, o store.MetaGetOptions, now int64) (store.Item, store.MetaState, error) {
	sh, h := s.shardFor(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.ring == nil {
		return store.Item{}, store.MetaState{}, store.ErrClosed
	}
	p, ok := sh.lookup(h, key, now)
	if !ok {
		if !o.Vivify {
			return store.Item{}, store.MetaState{}, store.ErrNotFound
		}
		// An empty stub whose creator wins the recache; its Item is the
		// stub as created (memcached links it with exptime 0 first).
		deadline := clampDeadline(o.VivifyDeadline)
		cas := s.cas.Add(1)
		it := store.Item{Key: key, Value: buf, CAS: cas}
		st := store.MetaState{Created: true, Won: true, LastAccess: now}
		if !expired(deadline, now) {
			state := byte(stateTokenSent)
			if !o.NoBump {
				state |= stateFetched
			}
			sh.put(h, key, 0, deadline, cas, state, nil, nil, now)
		}
		return it, st, nil
	}
	it := sh.item(p, key, buf)
	state := sh.ring[p+offState]
	st := store.MetaState{
		Fetched:    state&stateFetched != 0,
		LastAccess: int64(binary.LittleEndian.Uint32(sh.ring[p+offAtime:])),
		Stale:      state&stateStale != 0,
		TokenSent:  state&stateTokenSent != 0,
	}
	deadline := it.Deadline
	if o.Touch && o.RecacheAfterTouch {
		deadline = int64(clampDeadline(o.Deadline))
	}
	// A stale item's first reader wins too (memcached: X without Z gives W).
	st.Won = !st.TokenSent && (st.Stale || deadline != 0 && deadline < o.Recache)
	if st.Won {
		sh.ring[p+offState] |= stateTokenSent
	}
	if !o.NoBump {
		sh.bump(p, now)
	}
	if o.Touch {
		d := clampDeadline(o.Deadline)
		binary.LittleEndian.PutUint32(sh.ring[p+offDead:], d)
		if expired(d, now) {
			sh.expire(h, p)
		}
	}
	return it, st, nil
}

// Touch implements store.Store.
func (s *Store) Touch(_ context.Context, key []byte, deadline int64, buf []byte, now int64) (store.Item, error) {
	sh, h := s.shardFor(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.ring == nil {
		return store.Item{}, store.ErrClosed
	}
	p, ok := sh.lookup(h, key, now)
	if !ok {
		return store.Item{}, store.ErrNotFound
	}
	binary.LittleEndian.PutUint32(sh.ring[p+offDead:], clampDeadline(deadline))
	it := sh.item(p, key, buf)
	sh.bump(p, now)
	// A touch into the past answers with the item once, as memcached does,
	// and the item is gone from then on.
	if expired(clampDeadline(deadline), now) {
		sh.expire(h, p)
	}
	return it, nil
}

// Store implements store.Store.
func (s *Store) Store(_ context.Context, mode store.Mode, it store.Item, now int64) (uint64, error) {
	sh, h := s.shardFor(it.Key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.ring == nil {
		return 0, store.ErrClosed
	}
	p, exists := sh.lookup(h, it.Key, now)
	deadline := clampDeadline(it.Deadline)
	flags := it.Flags
	var state byte
	var prefix, suffix []byte
	switch mode {
	case store.Add:
		if exists {
			return 0, store.ErrNotStored
		}
	case store.Replace:
		if !exists {
			return 0, store.ErrNotStored
		}
	case store.CAS:
		if !exists {
			return 0, store.ErrNotFound
		}
		if binary.LittleEndian.Uint64(sh.ring[p+offCAS:]) != it.CAS {
			return 0, store.ErrExists
		}
	case store.CASStale:
		if !exists {
			return 0, store.ErrNotFound
		}
		switch old := binary.LittleEndian.Uint64(sh.ring[p+offCAS:]); {
		case it.CAS == old:
		case it.CAS != 0 && it.CAS < old:
			// An older version still lands, but stale, with the item's
			// deadline, and a recache already won stays won.
			deadline = binary.LittleEndian.Uint32(sh.ring[p+offDead:])
			state = stateStale | sh.ring[p+offState]&stateTokenSent
		default:
			return 0, store.ErrExists
		}
	case store.Append, store.Prepend:
		if !exists {
			return 0, store.ErrNotStored
		}
		// A non-zero CAS makes append/prepend conditional (meta "ms ... MA C<cas>").
		if it.CAS != 0 && binary.LittleEndian.Uint64(sh.ring[p+offCAS:]) != it.CAS {
			return 0, store.ErrExists
		}
		old := sh.value(p)
		if store.ItemSize(len(it.Key), len(old)+len(it.Value), flags) > s.maxItem {
			return 0, store.ErrNotStored // memcached: the combined item cannot be allocated
		}
		// Copy the old value out: reserving room may overwrite it.
		sh.scratch = append(sh.scratch[:0], old...)
		flags = binary.LittleEndian.Uint32(sh.ring[p+offFlags:])
		deadline = binary.LittleEndian.Uint32(sh.ring[p+offDead:])
		if mode == store.Append {
			prefix, suffix = sh.scratch, it.Value
		} else {
			prefix, suffix = it.Value, sh.scratch
		}
	}
	if prefix == nil && suffix == nil {
		prefix = it.Value
	}
	if hdrSize+len(it.Key)+len(prefix)+len(suffix) > int(sh.size) {
		return 0, store.ErrTooLarge
	}
	cas := s.cas.Add(1)
	if exists {
		sh.remove(h, p)
	}
	if expired(deadline, now) {
		return cas, nil // stored already expired: memcached answers STORED and nobody sees it
	}
	sh.put(h, it.Key, flags, deadline, cas, state, prefix, suffix, now)
	return cas, nil
}

// Delete implements store.Store.
func (s *Store) Delete(_ context.Context, key []byte, o store.DeleteOptions, now int64) error {
	sh, h := s.shardFor(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.ring == nil {
		return store.ErrClosed
	}
	p, ok := sh.lookup(h, key, now)
	if !ok {
		return store.ErrNotFound
	}
	if o.MatchCAS && binary.LittleEndian.Uint64(sh.ring[p+offCAS:]) != o.CAS {
		return store.ErrExists
	}
	if !o.Invalidate {
		sh.remove(h, p)
		return nil
	}
	// Kept, stale, with a new CAS unique; the next reader wins its recache.
	sh.ring[p+offState] = sh.ring[p+offState]&^stateTokenSent | stateStale
	binary.LittleEndian.PutUint64(sh.ring[p+offCAS:], s.cas.Add(1))
	if o.Touch {
		binary.LittleEndian.PutUint32(sh.ring[p+offDead:], clampDeadline(o.Deadline))
	}
	return nil
}

// Incr implements store.Store with memcached's rules: the value must be a
// decimal of at most 20 digits; incr wraps at 2^64, decr stops at 0; a
// shorter result is padded with spaces in place, a longer one re-stored.
func (s *Store) Incr(_ context.Context, key []byte, o store.IncrOptions, now int64) (store.Counter, error) {
	sh, h := s.shardFor(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.ring == nil {
		return store.Counter{}, store.ErrClosed
	}
	p, ok := sh.lookup(h, key, now)
	if !ok {
		if !o.Vivify {
			return store.Counter{}, store.ErrNotFound
		}
		sh.scratch = strconv.AppendUint(sh.scratch[:0], o.Initial, 10)
		cas := s.cas.Add(1)
		if deadline := clampDeadline(o.VivifyDeadline); !expired(deadline, now) {
			sh.put(h, key, 0, deadline, cas, 0, sh.scratch, nil, now)
		}
		return store.Counter{Value: o.Initial, CAS: cas, Created: true}, nil
	}
	old := sh.value(p)
	if len(old) > 0 && o.CAS != 0 && binary.LittleEndian.Uint64(sh.ring[p+offCAS:]) != o.CAS {
		return store.Counter{}, store.ErrExists // memcached checks the CAS after emptiness, before the digits
	}
	v, res, err := store.Incremented(old, o.Delta, o.Decr)
	if err != nil {
		return store.Counter{}, err
	}
	c := store.Counter{Value: v, CAS: s.cas.Add(1), Deadline: int64(binary.LittleEndian.Uint32(sh.ring[p+offDead:]))}
	deadline := uint32(c.Deadline)
	if o.Touch {
		deadline = clampDeadline(o.Deadline)
	}
	if len(res) == len(old) {
		copy(old, res)
		binary.LittleEndian.PutUint64(sh.ring[p+offCAS:], c.CAS)
		binary.LittleEndian.PutUint32(sh.ring[p+offDead:], deadline)
		return c, nil
	}
	flags := binary.LittleEndian.Uint32(sh.ring[p+offFlags:])
	state := sh.ring[p+offState]
	sh.remove(h, p)
	sh.put(h, key, flags, deadline, c.CAS, state, res, nil, now)
	return c, nil
}

// Flush implements store.Store.
func (s *Store) Flush(context.Context) error {
	s.cas.Add(1) // memcached consumes a CAS unique on flush; keeps uniques in step with it
	for _, sh := range s.shards {
		sh.mu.Lock()
		if sh.ring == nil {
			sh.mu.Unlock()
			return store.ErrClosed
		}
		sh.index.clear()
		sh.tail, sh.sweep = sh.head, sh.head
		sh.items, sh.bytes = 0, 0
		for c := range sh.classes {
			sh.classes[c].Items, sh.classes[c].Requested = 0, 0
		}
		sh.mu.Unlock()
	}
	return nil
}

// Stats implements store.StatsReporter.
func (s *Store) Stats() store.Stats {
	var st store.Stats
	for _, sh := range s.shards {
		sh.mu.Lock()
		st.Items += sh.items
		st.Bytes += sh.bytes
		st.Capacity += int64(sh.size)
		st.Evictions += sh.evictions
		st.Expired += sh.expired
		for c := range sh.classes {
			st.Classes[c].Items += sh.classes[c].Items
			st.Classes[c].Requested += sh.classes[c].Requested
			st.Classes[c].Evicted += sh.classes[c].Evicted
			st.Classes[c].Reclaimed += sh.classes[c].Reclaimed
		}
		sh.mu.Unlock()
	}
	return st
}

// Close stops the sweeper and unmaps the rings.
func (s *Store) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	close(s.stop)
	<-s.done
	if s.exp != nil {
		s.exp.close()
	}
	var errs []error
	for _, sh := range s.shards {
		sh.mu.Lock()
		errs = append(errs, freeRing(sh.ring))
		sh.index.free()
		sh.ring = nil
		sh.mu.Unlock()
	}
	return errors.Join(errs...)
}

func (s *Store) sweeper(every time.Duration, passes int, now func() int64) {
	defer close(s.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			for _, sh := range s.shards {
				// Small locked batches keep request latency flat.
				budget := sh.size/uint64(passes) + 1
				for budget > 0 {
					select {
					case <-s.stop:
						return
					default:
					}
					sh.mu.Lock()
					budget = sh.sweepSome(budget, 64<<10, now())
					sh.mu.Unlock()
				}
			}
		}
	}
}

// lookup returns the ring offset of key's live entry, reclaiming it if it
// has expired.
func (sh *shard) lookup(h uint64, key []byte, now int64) (int, bool) {
	x := &sh.index
	h32 := hash32(h)
	for i := x.home(h32); x.slots[i] != 0; i = (i + 1) & x.mask {
		s := x.slots[i]
		if slotHash(s) != h32 {
			continue
		}
		p := int(slotOff(s))
		klen := int(binary.LittleEndian.Uint16(sh.ring[p+offKlen:]))
		if !bytes.Equal(sh.ring[p+hdrSize:p+hdrSize+klen], key) {
			continue // another key with the same hash bits
		}
		if expired(binary.LittleEndian.Uint32(sh.ring[p+offDead:]), now) {
			sh.expire(h, p)
			return 0, false
		}
		return p, true
	}
	return 0, false
}

func (sh *shard) value(p int) []byte {
	size := int(binary.LittleEndian.Uint32(sh.ring[p:]))
	klen := int(binary.LittleEndian.Uint16(sh.ring[p+offKlen:]))
	return sh.ring[p+hdrSize+klen : p+size]
}

func (sh *shard) item(p int, key, buf []byte) store.Item {
	return store.Item{
		Key:      key,
		Value:    append(buf, sh.value(p)...),
		Flags:    binary.LittleEndian.Uint32(sh.ring[p+offFlags:]),
		Deadline: int64(binary.LittleEndian.Uint32(sh.ring[p+offDead:])),
		CAS:      binary.LittleEndian.Uint64(sh.ring[p+offCAS:]),
	}
}

// expire reclaims the expired entry at p.
func (sh *shard) expire(h uint64, p int) {
	sh.expired++
	sh.class(p).Reclaimed++
	if sh.exp != nil {
		klen := int(binary.LittleEndian.Uint16(sh.ring[p+offKlen:]))
		sh.exp.add(sh.ring[p+hdrSize : p+hdrSize+klen])
	}
	sh.remove(h, p)
}

// itemSize is memcached's size of the entry at p (store.ItemSize).
func (sh *shard) itemSize(p int) int {
	size := int(binary.LittleEndian.Uint32(sh.ring[p:]))
	klen := int(binary.LittleEndian.Uint16(sh.ring[p+offKlen:]))
	return store.ItemSize(klen, size-hdrSize-klen, binary.LittleEndian.Uint32(sh.ring[p+offFlags:]))
}

// class is the counters of the slab class memcached would keep the entry
// at p in.
func (sh *shard) class(p int) *store.ClassStats {
	c, _ := store.SlabClass(sh.itemSize(p))
	return &sh.classes[c]
}

func (sh *shard) remove(h uint64, p int) {
	cs := sh.class(p)
	cs.Items--
	cs.Requested -= int64(sh.itemSize(p))
	sh.index.remove(hash32(h), uint32(p))
	sh.items--
	sh.bytes -= int64(binary.LittleEndian.Uint32(sh.ring[p:]))
}

// bump records a read the way memcached's segmented LRU does: the first
// read marks the item fetched, later ones move its last access time.
func (sh *shard) bump(p int, now int64) {
	if sh.ring[p+offState]&stateFetched == 0 {
		sh.ring[p+offState] |= stateFetched
		return
	}
	binary.LittleEndian.PutUint32(sh.ring[p+offAtime:], uint32(now))
}

func (sh *shard) put(h uint64, key []byte, flags, deadline uint32, cas uint64, state byte, v1, v2 []byte, now int64) {
	n := uint64(hdrSize + len(key) + len(v1) + len(v2))
	pos := sh.reserve(n, now)
	p := int(pos % sh.size)
	b := sh.ring[p : p+int(n)]
	binary.LittleEndian.PutUint32(b, uint32(n))
	binary.LittleEndian.PutUint16(b[offKlen:], uint16(len(key)))
	binary.LittleEndian.PutUint32(b[offFlags:], flags)
	binary.LittleEndian.PutUint32(b[offDead:], deadline)
	binary.LittleEndian.PutUint64(b[offCAS:], cas)
	binary.LittleEndian.PutUint32(b[offAtime:], uint32(now))
	b[offState] = state
	off := hdrSize
	off += copy(b[off:], key)
	off += copy(b[off:], v1)
	copy(b[off:], v2)
	sh.index.insert(hash32(h), uint32(p))
	size := store.ItemSize(len(key), len(v1)+len(v2), flags)
	c, _ := store.SlabClass(size)
	sh.classes[c].Items++
	sh.classes[c].Requested += int64(size)
	sh.items++
	sh.bytes += int64(n)
}

// reserve makes room for n contiguous bytes at the head, evicting from the
// tail, and returns their logical position.
func (sh *shard) reserve(n uint64, now int64) uint64 {
	if p := sh.head % sh.size; p+n > sh.size {
		pad := sh.size - p
		for sh.head+pad-sh.tail > sh.size {
			sh.evictOne(now)
		}
		if pad >= minPadding {
			binary.LittleEndian.PutUint32(sh.ring[p:], uint32(pad))
			binary.LittleEndian.PutUint16(sh.ring[p+offKlen:], 0)
		}
		sh.head += pad
	}
	for sh.head+n-sh.tail > sh.size {
		sh.evictOne(now)
	}
	pos := sh.head
	sh.head += n
	return pos
}

// entryAt decodes the entry at logical position pos: its length, and
// whether it is the live entry of its key (with that key's hash).
func (sh *shard) entryAt(pos uint64) (length uint64, h uint64, live bool) {
	p := pos % sh.size
	if sh.size-p < minPadding {
		return sh.size - p, 0, false
	}
	length = uint64(binary.LittleEndian.Uint32(sh.ring[p:]))
	klen := uint64(binary.LittleEndian.Uint16(sh.ring[p+offKlen:]))
	if klen == 0 {
		return length, 0, false
	}
	h = maphash.Bytes(sh.seed, sh.ring[p+hdrSize:p+hdrSize+klen])
	return length, h, sh.index.has(hash32(h), uint32(p))
}

func (sh *shard) evictOne(now int64) {
	length, h, live := sh.entryAt(sh.tail)
	if live {
		p := int(sh.tail % sh.size)
		if expired(binary.LittleEndian.Uint32(sh.ring[p+offDead:]), now) {
			sh.expire(h, p)
		} else {
			sh.evictions++
			sh.class(p).Evicted++
			sh.remove(h, p)
		}
	}
	sh.tail += length
}

// sweepSome walks up to limit bytes (and at most budget) from the sweep
// cursor, reclaiming expired entries, and returns the budget left.
func (sh *shard) sweepSome(budget, limit uint64, now int64) uint64 {
	if sh.sweep < sh.tail || sh.sweep >= sh.head {
		sh.sweep = sh.tail
	}
	if sh.sweep == sh.head {
		return 0
	}
	walked := uint64(0)
	for sh.sweep < sh.head && walked < limit && walked < budget {
		length, h, live := sh.entryAt(sh.sweep)
		if live {
			p := int(sh.sweep % sh.size)
			if expired(binary.LittleEndian.Uint32(sh.ring[p+offDead:]), now) {
				sh.expire(h, p)
			}
		}
		sh.sweep += length
		walked += length
	}
	if sh.sweep >= sh.head || walked >= budget {
		return 0
	}
	return budget - walked
}
