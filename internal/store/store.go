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
)

// Errors returned by stores. They map one to one onto memcached replies.
var (
	ErrNotFound   = errors.New("store: not found")   // NOT_FOUND
	ErrNotStored  = errors.New("store: not stored")  // NOT_STORED
	ErrExists     = errors.New("store: exists")      // EXISTS (CAS mismatch)
	ErrTooLarge   = errors.New("store: too large")   // SERVER_ERROR object too large for cache
	ErrNonNumeric = errors.New("store: non-numeric") // incr/decr on a value that is not a decimal number
	ErrClosed     = errors.New("store: closed")      // a call after Close (a guarded call may outlive its caller)
)

// Store is one storage tier. Implementations are safe for concurrent use.
// now is the caller's clock in Unix seconds: an item whose Deadline is not
// after now is expired and invisible.
type Store interface {
	// Get returns the item for key. The returned Value is appended to buf
	// (which may be nil), so callers can reuse buffers.
	Get(ctx context.Context, key []byte, buf []byte, now int64) (Item, error)
	// Touch sets a new deadline and returns the item as Get would.
	Touch(ctx context.Context, key []byte, deadline int64, buf []byte, now int64) (Item, error)
	// Store writes it according to mode and returns the new CAS unique.
	Store(ctx context.Context, mode Mode, it Item, now int64) (uint64, error)
	// Delete removes key; ErrNotFound if it was absent.
	Delete(ctx context.Context, key []byte, now int64) error
	// Incr adds delta (or subtracts it when decr is set, stopping at 0) to a
	// decimal value, memcached style, and returns the new value.
	Incr(ctx context.Context, key []byte, delta uint64, decr bool, now int64) (uint64, error)
	// Flush invalidates every item.
	Flush(ctx context.Context) error
	// Close releases the store's resources.
	Close() error
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
}

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

// Classifier is implemented by stores that know which map a key belongs to
// (the policy layer), so that metrics can be labelled by map.
type Classifier interface {
	MapOf(key []byte) string
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
