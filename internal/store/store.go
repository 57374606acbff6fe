// Package store defines the storage contract every cache tier implements:
// memcached's item semantics (flags, CAS uniques, absolute deadlines) without
// any wire format. The protocol layer turns requests into these calls.
package store

import (
	"context"
	"errors"
	"strconv"

	"github.com/repcache/repcache/internal/cstrconv"
)

// Item is one cache record.
type Item struct {
	Key   []byte
	Value []byte
	Flags uint32
	// Deadline is the absolute Unix time (seconds) at which the item expires;
	// 0 means never. Tiers store deadlines, never relative TTLs, so lifetimes
	// over memcached's 30-day relative limit survive every hop.
	Deadline int64
	// CAS is the item's unique version, assigned by the store on every write.
	CAS uint64
}

// Mode selects the memcached storage command semantics of Store.
type Mode uint8

const (
	Set     Mode = iota // store unconditionally
	Add                 // store only if absent
	Replace             // store only if present
	Append              // append data to an existing item, keeping its flags and deadline
	Prepend             // prepend data to an existing item, keeping its flags and deadline
	CAS                 // store only if the item's CAS unique equals Item.CAS
	// CASStale is CAS, except that a CAS older than the item's still
	// stores the value, marked stale and keeping the item's deadline (meta
	// set's I flag).
	CASStale
)

// Errors returned by stores. They map one to one onto memcached replies.
var (
	ErrNotFound   = errors.New("store: not found")   // NOT_FOUND
	ErrNotStored  = errors.New("store: not stored")  // NOT_STORED
	ErrExists     = errors.New("store: exists")      // EXISTS (CAS mismatch)
	ErrTooLarge   = errors.New("store: too large")   // SERVER_ERROR object too large for cache
	ErrNonNumeric = errors.New("store: non-numeric") // incr/decr on a value that is not a decimal number
	ErrClosed     = errors.New("store: closed")      // a call after Close (a guarded call may outlive its caller)
	// ErrUnsupported refuses a conditional or meta operation that a tier
	// does not implement; the client is told so (CLIENT_ERROR).
	ErrUnsupported = &ClientError{Msg: "not supported by this cache tier"}
)

// Store is one storage tier. Implementations are safe for concurrent use.
// now is the caller's clock in Unix seconds: an item whose Deadline is not
// after now is expired and invisible.
type Store interface {
	// Get returns the item for key. The returned Value is appended to buf
	// (which may be nil), so callers can reuse buffers. It counts as an
	// access (meta state: fetched, last access).
	Get(ctx context.Context, key []byte, buf []byte, now int64) (Item, error)
	// Touch sets a new deadline and returns the item as Get would.
	Touch(ctx context.Context, key []byte, deadline int64, buf []byte, now int64) (Item, error)
	// MetaGet is memcached's meta get in one atomic step: the read, and the
	// side effects o asks for (touch, vivify on miss, recache win, no
	// access). The Item is as it was before the call's changes (Deadline
	// before o.Touch; an item o.Vivify created has Deadline 0 and no
	// value); MetaState tells what the item's meta state was and what the
	// call did.
	MetaGet(ctx context.Context, key []byte, buf []byte, o MetaGetOptions, now int64) (Item, MetaState, error)
	// Store writes it according to mode and returns the new CAS unique.
	Store(ctx context.Context, mode Mode, it Item, now int64) (uint64, error)
	// Delete removes key, or with o.Invalidate marks it stale; ErrNotFound
	// if it was absent, ErrExists if o.MatchCAS and the CAS differs.
	Delete(ctx context.Context, key []byte, o DeleteOptions, now int64) error
	// Incr adds o.Delta (or subtracts it when o.Decr is set, stopping at 0)
	// to a decimal value, memcached style, with the conditions and side
	// effects of meta arithmetic, in one atomic step.
	Incr(ctx context.Context, key []byte, o IncrOptions, now int64) (Counter, error)
	// Flush invalidates every item.
	Flush(ctx context.Context) error
	// Close releases the store's resources.
	Close() error
}

// MetaGetOptions are the item-changing flags of memcached's meta get (mg).
// Deadlines are absolute, as everywhere in this package.
type MetaGetOptions struct {
	Touch    bool  // T: on a hit, set the deadline to Deadline
	Deadline int64 // the deadline for Touch
	// Vivify (N) creates, on a miss, an empty item with VivifyDeadline,
	// and the caller wins the right to recache it.
	Vivify         bool
	VivifyDeadline int64
	// Recache (R), when not 0: the caller wins when the item has a
	// deadline before Recache and nobody won it already.
	Recache int64
	// RecacheAfterTouch compares the touched deadline with Recache
	// (memcached applies mg's flags in request order: T before R).
	RecacheAfterTouch bool
	NoBump            bool // u: the read does not count as an access
	// Peek marks the server's own look at an item (me, the lookup a
	// watched set reports), not a client's read: it is not bumped and not
	// counted as a lookup.
	Peek bool
}

// Plain reports whether o asks for nothing but an optional touch, what a
// tier without per-item meta state can serve.
func (o MetaGetOptions) Plain() bool { return !o.Vivify && o.Recache == 0 }

// MetaState is the per-item state memcached's meta commands report, as it
// was before the call, and what the call did to it.
type MetaState struct {
	Fetched    bool  // h: the item had been read before
	LastAccess int64 // l, me la: Unix seconds of the last access (or the write)
	Stale      bool  // X: invalidated (meta delete I, meta set I)
	TokenSent  bool  // Z: another client has won the recache already
	Won        bool  // W: this call won the recache
	Created    bool  // Vivify created the item
}

// DeleteOptions are the conditions and variants of memcached's meta delete.
type DeleteOptions struct {
	// MatchCAS deletes only an item whose CAS unique is CAS (meta delete's
	// C; C0 matches no item, as in memcached).
	MatchCAS bool
	CAS      uint64
	// Invalidate (I) keeps the item but marks it stale, gives it a new CAS
	// unique and lets the next reader win its recache.
	Invalidate bool
	Touch      bool  // with Invalidate: set the deadline to Deadline
	Deadline   int64 // the deadline for Touch
}

// Plain reports whether o is a plain delete.
func (o DeleteOptions) Plain() bool { return o == DeleteOptions{} }

// IncrOptions are the arithmetic and conditions of incr/decr and meta
// arithmetic (ma).
type IncrOptions struct {
	Delta uint64
	Decr  bool
	CAS   uint64 // when not 0, only an item with this CAS unique (else ErrExists)
	// Vivify (N) creates a missing item holding Initial, with
	// VivifyDeadline, instead of answering ErrNotFound.
	Vivify         bool
	Initial        uint64
	VivifyDeadline int64
	Touch          bool  // T: on success, set an existing item's deadline to Deadline
	Deadline       int64 // the deadline for Touch
}

// Plain reports whether o is classic incr/decr (no CAS, vivify or touch).
func (o IncrOptions) Plain() bool { return o.CAS == 0 && !o.Vivify && !o.Touch }

// Counter is what Incr leaves: the new number, the item's new CAS unique,
// its deadline before o.Touch (0 for an item Vivify created), and whether
// Vivify created it.
type Counter struct {
	Value    uint64
	CAS      uint64
	Deadline int64
	Created  bool
}

// ItemSize is memcached's accounting of an item's size (48-byte header, CAS,
// key with its NUL, flags when non-zero, data with CRLF). An item whose size
// exceeds the item size limit is refused "object too large", exactly at the
// byte where memcached 1.6 refuses it.
func ItemSize(keyLen, valueLen int, flags uint32) int {
	n := 48 + 8 + keyLen + 1 + valueLen + 2
	if flags != 0 {
		n += 4
	}
	return n
}

// Stats is a snapshot of a store's own counters, for stores that keep them.
type Stats struct {
	Items     int64  // live (not yet reclaimed) items
	Bytes     int64  // bytes those items occupy
	Capacity  int64  // byte budget
	Evictions uint64 // live items dropped to make room
	Expired   uint64 // items reclaimed after their deadline passed
	// Classes counts items by the slab class memcached would keep them in
	// (see SlabClass), for memcached's "stats slabs" and "stats items";
	// index 0 is unused.
	Classes [SlabClasses + 1]ClassStats
}

// ClassStats are one slab class's counters.
type ClassStats struct {
	Items     int64  // live items
	Requested int64  // their ItemSize total (memcached's mem_requested)
	Evicted   uint64 // live items dropped to make room
	Reclaimed uint64 // expired items reclaimed
}

// SlabClasses is the number of slab classes of memcached 1.6's defaults.
const SlabClasses = 40

// slabSizes are the chunk sizes of memcached 1.6's default slab classes
// (-n 48 -f 1.25, 1 MiB items: 96 bytes growing by 1.25, 8-byte aligned,
// up to the 512 KiB chunk limit; larger items are chunked, headed in the
// last class).
var slabSizes = func() (z [SlabClasses + 1]int) {
	const chunkMax = 512 << 10
	size := 96
	for c := 1; c < SlabClasses; c++ {
		z[c] = size
		size = int(float64(size) * 1.25)
		if r := size % 8; r != 0 {
			size += 8 - r
		}
	}
	z[SlabClasses] = chunkMax
	return z
}()

// SlabChunk is the chunk size of slab class c (1..SlabClasses).
func SlabChunk(c int) int { return slabSizes[c] }

// SlabClass is the slab class (1..SlabClasses) and chunk size memcached 1.6
// would keep an item of size bytes (ItemSize) in.
func SlabClass(size int) (class, chunk int) {
	for c := 1; c < SlabClasses; c++ {
		if size <= slabSizes[c] {
			return c, slabSizes[c]
		}
	}
	return SlabClasses, slabSizes[SlabClasses]
}

// StatsReporter is implemented by stores that can report Stats.

// StatsReporter is implemented by stores that can report Stats.
type StatsReporter interface {
	Stats() Stats
}

// ClientError is a request refused for what it asked (a record that does not
// parse, a write to a read-only listener, ...). It is answered
// "CLIENT_ERROR <message>", and nothing is stored.
type ClientError struct{ Msg string }

func (e *ClientError) Error() string { return e.Msg }

// KeyLimiter is implemented by stores that accept keys longer than the
// protocol's default limit for some keys (by storing them under a digest).
type KeyLimiter interface {
	MaxKeyLength(key []byte) int
}

// Op is one write of a batch: a record written with Set semantics, or a
// deletion of Item.Key.
type Op struct {
	Delete bool
	Item   Item
}

// Incremented applies memcached's incr/decr to a stored value: the value
// must be a decimal number as memcached parses it; incr wraps at 2^64, decr
// stops at 0. It returns the new number and the new value, padded with
// spaces to the old length when shorter, as memcached rewrites it in place.
func Incremented(old []byte, delta uint64, decr bool) (uint64, []byte, error) {
	if len(old) == 0 {
		return 0, nil, ErrNonNumeric
	}
	v, ok := cstrconv.ParseUint64(old)
	if !ok {
		return 0, nil, ErrNonNumeric
	}
	switch {
	case !decr:
		v += delta
	case delta > v:
		v = 0
	default:
		v -= delta
	}
	res := strconv.AppendUint(make([]byte, 0, max(20, len(old))), v, 10)
	for len(res) < len(old) {
		res = append(res, ' ')
	}
	return v, res, nil
}
