// Package memcached is repcache's remote tier: it keeps records in a pool of
// memcached servers (through internal/mcclient, which pipelines the
// requests of all connections over a few connections per server and
// spreads keys by ketama), so several repcache processes can share them and
// they survive a repcache restart.
//
// # Envelope
//
// Every value is stored inside a store envelope (store.EncodeEnvelope): a
// version byte, the item's flags, repcache's own CAS unique and its absolute
// deadline, then the value. memcached's own flags are left at 0. This is
// needed because memcached never tells a client an item's remaining
// lifetime, and its CAS ids cannot serve as repcache's uniques (they are
// per server and change when memcached restarts; repcache's must stay
// unique across the tiers). The envelope's deadline is the truth: Get checks it against the
// caller's clock, like the other tiers. A value that is not an envelope
// (another client wrote it) is an error for that request only.
//
// # Expiry
//
// memcached's exptime is still set, so memcached reclaims expired records
// itself. A deadline d becomes, with r = d - now:
//
//	d == 0           0 (never)
//	r <= 0           the item is born expired: the mode's checks are made,
//	                 then the old record goes (a set deletes the key, the
//	                 conditional modes write with exptime -1, which
//	                 memcached stores already expired), and the write
//	                 succeeds with a new CAS, as memcached answers STORED
//	r <= 30 days     r, relative seconds
//	r >  30 days     d itself, an absolute Unix time (clamped to 2^31-1)
//
// memcached reads any exptime over 30 days as an absolute time, so a
// relative 40-day TTL sent as is would mean "January 1970" and expire at
// once; sending the absolute deadline keeps long lifetimes intact.
//
// # Keys
//
// A key is sent as is when the text protocol can carry it
// (mcclient.ValidKey: 1..250 bytes, no space, control character or DEL)
// and it does not start with the byte 0xFF, which no UTF-8 key does. Other
// keys (memcaslap's control characters, binary meta keys, keys over 250
// bytes) are sent as 0xFF followed by the key in unpadded base64url, or,
// when that would exceed 250 bytes, 0xFF and store.AppendDigest's digest
// of the key. The mapping is injective apart from SHA-256 collisions.
//
// # Writes
//
// Set, Add and Replace are single memcached commands. CAS, Append, Prepend,
// Incr and Touch must look inside the envelope, so they read the record with
// mg and write it back with ms C<cas> (memcached's CAS id), retrying (a
// few times, with a short backoff) when another writer got in between. An add that memcached refuses is retried the same
// way over a record the caller's clock sees as expired. Replace and Delete
// trust memcached's own existence check: its expiry runs on the same
// deadline and clock, so they can differ from the caller's clock only
// within about a second (or under a test's fake clock).
//
// Errors that are not answers about the record (timeouts, refused
// connections, malformed replies or envelopes) are returned as *Error,
// naming the operation and the server; the layer above decides what to do
// about a failing backend.
package memcached

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/repcache/repcache/internal/backoff"
	"github.com/repcache/repcache/internal/mcclient"
	"github.com/repcache/repcache/internal/store"
)

// Options configures a Store.
type Options struct {
	// Servers are the pool's addresses (host:port, or a Unix socket path);
	// keys are spread over them by ketama (mcclient), as twemproxy and
	// libmemcached spread them.
	Servers []string
	// Timeout bounds dialing, each write and the wait for replies while
	// requests are in flight (default 100ms); a caller's context can end
	// a request sooner. A read-modify-write makes two requests or more.
	Timeout time.Duration
	// Conns is the number of pipelined connections per server, shared by
	// all requests (default 1).
	Conns int
	// MaxItemSize is the largest item append/prepend may build, in
	// memcached's accounting (default 1 MiB). Keep the servers' -I a little
	// larger: the envelope adds 21 bytes to every value.
	MaxItemSize int
}

const (
	defaultTimeout = 100 * time.Millisecond
	keyMarker      = 0xff
	// maxTries bounds read-modify-write retries; each retry means another
	// writer changed the record in between, so a busy key gives up quickly
	// instead of stalling the request.
	maxTries = 8
)

// contention spaces read-modify-write retries: contenders that collided
// all retry at once, and a short random pause lets one of them win.
var contention = backoff.Policy{Base: 100 * time.Microsecond, Max: 2 * time.Millisecond}

// ErrContended is returned (wrapped in *Error) when a read-modify-write
// lost the race to other writers maxTries times in a row. It says the key
// is busy, not that the backend is failing.
var ErrContended = errors.New("record kept changing, gave up after " + strconv.Itoa(maxTries) + " tries")

// Error is a failure of the backend rather than an answer about a record.
type Error struct {
	Op     string // memcached command, e.g. "get"
	Server string // address of the server the key maps to, when known
	Err    error
}

func (e *Error) Error() string {
	msg := e.Err.Error()
	// Network errors already name the server; say it once.
	if e.Server == "" || strings.Contains(msg, e.Server) {
		return "memcached " + e.Op + ": " + msg
	}
	return "memcached " + e.Op + " " + e.Server + ": " + msg
}

func (e *Error) Unwrap() error { return e.Err }

// Store is the memcached tier. It implements store.Store.
type Store struct {
	c       *mcclient.Client
	cas     *store.CASSource
	maxItem int
}

var _ store.Store = (*Store)(nil)

// New returns a Store over the servers. It does not connect: the first
// request does.
func New(o Options) (*Store, error) {
	if len(o.Servers) == 0 {
		return nil, errors.New("memcached store: no servers")
	}
	if o.Timeout <= 0 {
		o.Timeout = defaultTimeout
	}
	if o.MaxItemSize <= 0 {
		o.MaxItemSize = 1 << 20
	}
	c, err := mcclient.New(mcclient.Options{Servers: o.Servers, Timeout: o.Timeout, Conns: o.Conns})
	if err != nil {
		return nil, fmt.Errorf("memcached store: %w", err)
	}
	return &Store{c: c, cas: store.NewCASSource(), maxItem: o.MaxItemSize}, nil
}

// remoteKey maps a key to the key memcached keeps (see the package doc).
func remoteKey(key []byte) string {
	if len(key) > 0 && key[0] != keyMarker && mcclient.ValidKey(string(key)) {
		return string(key)
	}
	enc := base64.RawURLEncoding
	if n := 1 + enc.EncodedLen(len(key)); n <= 250 {
		b := make([]byte, 1, n)
		b[0] = keyMarker
		return string(enc.AppendEncode(b, key))
	}
	return string(store.AppendDigest([]byte{keyMarker}, key))
}

// exptime converts an absolute deadline to memcached's exptime. born
// reports a deadline not after now; its exptime, -1, makes memcached store
// the item already expired.
func exptime(deadline, now int64) (exp int32, born bool) {
	if deadline == 0 {
		return 0, false
	}
	r := deadline - now
	switch {
	case r <= 0:
		return -1, true
	case r <= store.MaxRelativeTTL:
		return int32(r), false
	case deadline > math.MaxInt32:
		return math.MaxInt32, false
	default:
		return int32(deadline), false
	}
}

// fail turns a client error into the error Store returns.
func (s *Store) fail(op, key string, err error) error {
	switch {
	case errors.Is(err, mcclient.ErrMalformedKey):
		// remoteKey only produces keys the protocol carries; kept for safety.
		return &store.ClientError{Msg: "key refused by the memcached tier"}
	case errors.Is(err, mcclient.ErrTooLarge):
		return store.ErrTooLarge
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	}
	e := &Error{Op: op, Err: err}
	if key != "" {
		e.Server = s.c.Server(key)
	}
	return e
}

// record is memcached's copy of a key as a read-modify-write saw it.
type record struct {
	it   store.Item
	cas  uint64 // memcached's CAS id, for the write back
	held bool   // memcached holds the key (maybe expired by the caller's clock)
}

// get reads key's record. found is false on a miss, or when the record is
// expired by the caller's clock though memcached still holds it.
func (s *Store) get(ctx context.Context, key string, now int64) (r record, found bool, err error) {
	v, cas, err := s.c.Get(ctx, key)
	if errors.Is(err, mcclient.ErrCacheMiss) {
		return record{}, false, nil
	}
	if err != nil {
		return record{}, false, s.fail("get", key, err)
	}
	it, err := store.DecodeEnvelope(v)
	if err != nil {
		return record{}, false, s.fail("get", key, err)
	}
	return record{it: it, cas: cas, held: true}, !store.Expired(it.Deadline, now), nil
}

// Get implements store.Store.
func (s *Store) Get(ctx context.Context, key, buf []byte, now int64) (store.Item, error) {
	if err := ctx.Err(); err != nil {
		return store.Item{}, err
	}
	r, found, err := s.get(ctx, remoteKey(key), now)
	if err != nil {
		return store.Item{}, err
	}
	if !found {
		return store.Item{}, store.ErrNotFound
	}
	it := r.it
	it.Key = key
	it.Value = append(buf, it.Value...)
	return it, nil
}

// MetaGet implements store.Store for the options that need no per-item
// meta state (store.PlainMetaGet); the others are refused for now.
func (s *Store) MetaGet(ctx context.Context, key, buf []byte, o store.MetaGetOptions, now int64) (store.Item, store.MetaState, error) {
	return store.PlainMetaGet(ctx, s, key, buf, o, now)
}

// modify is a read-modify-write of key's record: fn gets the live record
// (nil if none) and returns the record to write, which replaces the one read
// only if memcached's copy did not change in between (else modify tries
// again). An error from fn is returned as is.
func (s *Store) modify(ctx context.Context, op, key string, now int64, fn func(cur *store.Item) (store.Item, error)) (store.Item, error) {
	for try := range maxTries {
		if try > 0 {
			if err := contention.Sleep(ctx, try-1); err != nil {
				return store.Item{}, err
			}
		}
		if err := ctx.Err(); err != nil {
			return store.Item{}, err
		}
		r, found, err := s.get(ctx, key, now)
		if err != nil {
			return store.Item{}, err
		}
		var curp *store.Item
		if found {
			curp = &r.it
		}
		next, err := fn(curp)
		if err != nil {
			return store.Item{}, err
		}
		exp, _ := exptime(next.Deadline, now)
		env := store.EncodeEnvelope(nil, next)
		if r.held {
			// Also when the record read is expired by our clock: replacing
			// memcached's copy keeps a concurrent writer's record safe.
			op = "cas"
			err = s.c.Store(ctx, mcclient.Set, key, env, exp, r.cas)
		} else {
			op = "add"
			err = s.c.Store(ctx, mcclient.Add, key, env, exp, 0)
		}
		switch {
		case err == nil:
			return next, ctx.Err()
		case errors.Is(err, mcclient.ErrExists), errors.Is(err, mcclient.ErrNotStored), errors.Is(err, mcclient.ErrNotFound):
			continue // changed, added or removed in between: look again
		default:
			return store.Item{}, s.fail(op, key, err)
		}
	}
	return store.Item{}, s.fail(op, key, ErrContended)
}

// Touch implements store.Store. The CAS unique is kept, as memcached keeps
// it on touch; a deadline already past answers with the item once and
// removes it.
func (s *Store) Touch(ctx context.Context, key []byte, deadline int64, buf []byte, now int64) (store.Item, error) {
	it, err := s.modify(ctx, "touch", remoteKey(key), now, func(cur *store.Item) (store.Item, error) {
		if cur == nil {
			return store.Item{}, store.ErrNotFound
		}
		next := *cur
		next.Deadline = deadline
		return next, nil
	})
	if err != nil {
		return store.Item{}, err
	}
	it.Key = key
	it.Value = append(buf, it.Value...)
	return it, nil
}

// Store implements store.Store.
func (s *Store) Store(ctx context.Context, mode store.Mode, it store.Item, now int64) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	key := remoteKey(it.Key)
	switch mode {
	case store.Set, store.Add, store.Replace:
		return s.write(ctx, mode, key, it, now)
	case store.CAS:
		next, err := s.modify(ctx, "cas", key, now, func(cur *store.Item) (store.Item, error) {
			if cur == nil {
				return store.Item{}, store.ErrNotFound
			}
			if cur.CAS != it.CAS {
				return store.Item{}, store.ErrExists
			}
			return store.Item{Value: it.Value, Flags: it.Flags, Deadline: it.Deadline, CAS: s.cas.Next()}, nil
		})
		return next.CAS, err
	case store.CASStale:
		return 0, store.ErrUnsupported
	case store.Append, store.Prepend:
		next, err := s.modify(ctx, "append", key, now, func(cur *store.Item) (store.Item, error) {
			if cur == nil {
				return store.Item{}, store.ErrNotStored
			}
			// A non-zero CAS makes append/prepend conditional (meta "ms ... MA C<cas>").
			if it.CAS != 0 && cur.CAS != it.CAS {
				return store.Item{}, store.ErrExists
			}
			// memcached sizes the combined item with the old item's flags.
			if store.ItemSize(len(it.Key), len(cur.Value)+len(it.Value), cur.Flags) > s.maxItem {
				return store.Item{}, store.ErrNotStored
			}
			v := make([]byte, 0, len(cur.Value)+len(it.Value))
			if mode == store.Append {
				v = append(append(v, cur.Value...), it.Value...)
			} else {
				v = append(append(v, it.Value...), cur.Value...)
			}
			return store.Item{Value: v, Flags: cur.Flags, Deadline: cur.Deadline, CAS: s.cas.Next()}, nil
		})
		return next.CAS, err
	}
	return 0, fmt.Errorf("memcached store: unknown mode %d", mode)
}

// write serves set, add and replace with one memcached command each.
func (s *Store) write(ctx context.Context, mode store.Mode, key string, it store.Item, now int64) (uint64, error) {
	exp, born := exptime(it.Deadline, now)
	cas := s.cas.Next()
	env := store.EncodeEnvelope(nil, store.Item{Value: it.Value, Flags: it.Flags, Deadline: it.Deadline, CAS: cas})
	var op string
	var err error
	switch {
	case mode == store.Set && born:
		// Nothing to check: the old record just goes.
		op, err = "delete", s.c.Delete(ctx, key)
		if errors.Is(err, mcclient.ErrNotFound) {
			err = nil
		}
	case mode == store.Set:
		op, err = "set", s.c.Store(ctx, mcclient.Set, key, env, exp, 0)
	case mode == store.Add:
		// Born expired, add and replace still make their check; exptime -1
		// then leaves memcached an item nobody sees.
		op, err = "add", s.c.Store(ctx, mcclient.Add, key, env, exp, 0)
		if errors.Is(err, mcclient.ErrNotStored) {
			return s.addOverExpired(ctx, key, it, now)
		}
	default:
		op, err = "replace", s.c.Store(ctx, mcclient.Replace, key, env, exp, 0)
	}
	if errors.Is(err, mcclient.ErrNotStored) {
		return 0, store.ErrNotStored
	}
	if err != nil {
		return 0, s.fail(op, key, err)
	}
	return cas, ctx.Err()
}

// addOverExpired finishes an add that memcached refused: the record it holds
// may be expired by the caller's clock (which decides, as in every tier)
// though not yet by memcached's, and then the add succeeds over it.
func (s *Store) addOverExpired(ctx context.Context, key string, it store.Item, now int64) (uint64, error) {
	next, err := s.modify(ctx, "add", key, now, func(cur *store.Item) (store.Item, error) {
		if cur != nil {
			return store.Item{}, store.ErrNotStored
		}
		return store.Item{Value: it.Value, Flags: it.Flags, Deadline: it.Deadline, CAS: s.cas.Next()}, nil
	})
	return next.CAS, err
}

// Delete implements store.Store; conditional and invalidating deletes are
// refused for now.
func (s *Store) Delete(ctx context.Context, key []byte, o store.DeleteOptions, now int64) error {
	if !o.Plain() {
		return store.ErrUnsupported
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	k := remoteKey(key)
	err := s.c.Delete(ctx, k)
	switch {
	case errors.Is(err, mcclient.ErrNotFound):
		return store.ErrNotFound
	case err != nil:
		return s.fail("delete", k, err)
	}
	return ctx.Err()
}

// Incr implements store.Store with memcached's rules, as the memory store
// does: a decimal of at most 20 digits; incr wraps at 2^64, decr stops at
// 0; a shorter result is padded with spaces to the old length.
// Meta arithmetic's conditions (CAS, vivify, touch) are refused for now.
func (s *Store) Incr(ctx context.Context, key []byte, o store.IncrOptions, now int64) (store.Counter, error) {
	if !o.Plain() {
		return store.Counter{}, store.ErrUnsupported
	}
	delta, decr := o.Delta, o.Decr
	var v uint64
	next, err := s.modify(ctx, "incr", remoteKey(key), now, func(cur *store.Item) (store.Item, error) {
		if cur == nil {
			return store.Item{}, store.ErrNotFound
		}
		n, res, err := store.Incremented(cur.Value, delta, decr)
		if err != nil {
			return store.Item{}, err
		}
		v = n
		return store.Item{Value: res, Flags: cur.Flags, Deadline: cur.Deadline, CAS: s.cas.Next()}, nil
	})
	return store.Counter{Value: v, CAS: next.CAS, Deadline: next.Deadline}, err
}

// Flush implements store.Store: flush_all on every server, even when some
// fail; the error names each one that did.
func (s *Store) Flush(ctx context.Context) error {
	return s.everyServer(ctx, "flush_all", s.c.FlushAll)
}

// Ping asks every server for a no-op (mn) round trip: nil when all answer.
// A server marked down after failures is not dialed before its next retry
// is due, so a probe in a loop follows the client's backoff.
func (s *Store) Ping(ctx context.Context) error {
	return s.everyServer(ctx, "mn", s.c.Noop)
}

func (s *Store) everyServer(ctx context.Context, op string, f func(context.Context, string) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var errs []error
	for _, addr := range s.c.Servers() {
		if err := f(ctx, addr); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			errs = append(errs, &Error{Op: op, Server: addr, Err: err})
		}
	}
	if len(errs) == 1 {
		return errs[0]
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return ctx.Err()
}

// Close closes the connections.
func (s *Store) Close() error { return s.c.Close() }
