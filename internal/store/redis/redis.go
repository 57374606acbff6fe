// Package redis is repcache's durable backup tier: a store.Store over Redis
// (a single server, Sentinel or Cluster) through go-redis.
//
// # Data layout
//
// Each record is a Redis hash at KeyPrefix+key with the fields
//
//	v  the value (binary safe)
//	f  the flags, decimal
//	c  the CAS unique, decimal
//	d  the deadline, decimal Unix seconds; 0 = never
//
// and, when d is not 0, an expiry set with PEXPIREAT d*1000: Redis drops the
// record at the same absolute moment as the cache tier, so the key's TTL is
// always the record's remaining lifetime. Deadlines are clamped to 32 bits
// like the embedded store's. Reads still compare d with the caller's clock,
// so a record is never returned past its deadline even when the clocks of
// Redis and repcache disagree.
//
// Every write is one server-side Lua script (EVALSHA, falling back to EVAL
// after a script cache flush) touching one key, so it is atomic and runs
// unchanged on Redis Cluster. Incr/decr read, compute in Go (64-bit
// arithmetic that Lua's doubles cannot do) and write back in a WATCH/MULTI
// transaction retried a bounded number of times. CAS uniques come from a
// store.CASSource, so several repcache processes can share a Redis.
//
// Flush deletes only keys under KeyPrefix (SCAN + UNLINK), never FLUSHDB:
// the Redis may be shared, and Flush refuses to run without a KeyPrefix.
//
// # Timeouts
//
// Options.Timeout bounds every network step: dialing, each write and each
// read. go-redis's own retries are turned off (a timed-out write may have
// been applied, and repeating an append or incr is not harmless), so a
// stalled Redis fails a call after about one Timeout per round trip. A
// deadline on the caller's context shortens those timeouts; cancellation is
// noticed between round trips.
//
// # Expiry events
//
// Redis can report each key it expires through keyspace notifications
// (notify-keyspace-events Ex): EnableExpiryEvents switches them on, and
// SubscribeExpired delivers the expired keys under KeyPrefix. Redis sends
// the event when it actually reclaims the key (on access, or by its active
// expiry cycle, usually within a fraction of a second of the deadline), and
// Pub/Sub delivery is at most once: a subscriber that is disconnected misses
// events. Use them as hints, not as a ledger.
package redis

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/repcache/repcache/internal/backoff"
	"github.com/repcache/repcache/internal/store"
)

// Options configures a Store.
type Options struct {
	// Addrs are the server's host:port; with Cluster, seed nodes; with
	// MasterName, the Sentinels.
	Addrs []string
	// MasterName is the Sentinel master name: a failover client follows the
	// master Sentinel reports.
	MasterName string
	// Cluster talks the Redis Cluster protocol (even with one seed address).
	Cluster bool
	// Username and Password authenticate to Redis (ACL user, or requirepass
	// with an empty Username).
	Username, Password string
	// DB is the database number (not with Cluster).
	DB int
	// TLS, when set, connects with TLS.
	TLS *tls.Config
	// KeyPrefix is prepended to every key. Required for Flush; also the
	// filter of SubscribeExpired.
	KeyPrefix string
	// Timeout bounds dialing, each write and each read (default 100ms).
	Timeout time.Duration
	// PoolSize is the number of connections per node (default: go-redis's,
	// 10 per CPU).
	PoolSize int
	// MaxItemSize is the largest item, memcached accounting (default 1 MiB):
	// larger writes are refused with store.ErrTooLarge, appends that would
	// grow an item past it with store.ErrNotStored.
	MaxItemSize int
}

// SetLogger sends go-redis's own messages (pool dial failures, Sentinel
// lookups) to l at debug level: repcache logs each outage itself, once per
// change of state, in the operator's words. go-redis's logger is one per
// process.
func SetLogger(l *slog.Logger) { goredis.SetLogger(clientLog{l}) }

type clientLog struct{ l *slog.Logger }

func (c clientLog) Printf(ctx context.Context, format string, v ...any) {
	c.l.DebugContext(ctx, "redis client", "detail", fmt.Sprintf(format, v...))
}

// DefaultTimeout is Options.Timeout's default.
const DefaultTimeout = 100 * time.Millisecond

// maxIncrAttempts bounds the optimistic incr transaction's retries, spaced
// by incrBackoff.
const maxIncrAttempts = 32

var incrBackoff = backoff.Policy{Base: 100 * time.Microsecond, Max: 10 * time.Millisecond}

// ErrMalformed is wrapped by the errors for keys under the prefix that do
// not hold a well-formed record (foreign data, a hash missing fields, a
// non-numeric field). It fails that request only.
var ErrMalformed = errors.New("malformed record")

// Store is the Redis tier. It implements store.Store and is safe for
// concurrent use.
type Store struct {
	c       goredis.UniversalClient
	prefix  string
	db      int
	timeout time.Duration
	maxItem int
	cas     *store.CASSource
}

var _ store.Store = (*Store)(nil)

// New returns a Store. It does not connect: connections are made on use.
func New(o Options) (*Store, error) {
	if len(o.Addrs) == 0 {
		return nil, errors.New("redis store: at least one address is required")
	}
	if o.Cluster && o.MasterName != "" {
		return nil, errors.New("redis store: cluster and master_name (Sentinel) are mutually exclusive")
	}
	if o.Cluster && o.DB != 0 {
		return nil, errors.New("redis store: Redis Cluster has no databases other than 0")
	}
	if len(o.Addrs) > 1 && !o.Cluster && o.MasterName == "" {
		return nil, errors.New("redis store: several addresses need cluster (seed nodes) or master_name (Sentinels)")
	}
	if o.DB < 0 {
		return nil, fmt.Errorf("redis store: invalid db %d", o.DB)
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.MaxItemSize <= 0 {
		o.MaxItemSize = 1 << 20
	}
	uo := &goredis.UniversalOptions{
		Addrs:         o.Addrs,
		MasterName:    o.MasterName,
		IsClusterMode: o.Cluster,
		Username:      o.Username,
		Password:      o.Password,
		DB:            o.DB,
		TLSConfig:     o.TLS,
		PoolSize:      o.PoolSize,
		// Pipelines (ApplyBatch, Flush) share the main pool instead of a
		// second pool of PipelinePoolSize connections per node.
		PipelinePoolSize: -1,

		DialTimeout:  o.Timeout,
		ReadTimeout:  o.Timeout,
		WriteTimeout: o.Timeout,
		PoolTimeout:  o.Timeout,
		// One dial attempt per call: the dialer's own retries would multiply
		// the time a call against a dead server takes.
		DialerRetries:         1,
		ContextTimeoutEnabled: true,
		// No retries: a write that timed out may have been applied, and
		// replaying an append or an incr is not idempotent.
		MaxRetries: -1,
		// Redis < 7.2 rejects CLIENT SETINFO: skip the round trip.
		DisableIdentity: true,
		// Maintenance notifications would relax timeouts to seconds.
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	}
	return &Store{
		c:       goredis.NewUniversalClient(uo),
		prefix:  o.KeyPrefix,
		db:      o.DB,
		timeout: o.Timeout,
		maxItem: o.MaxItemSize,
		cas:     store.NewCASSource(),
	}, nil
}

func (s *Store) key(key []byte) string { return s.prefix + string(key) }

func pexpireat(d int64) string { return strconv.FormatInt(d*1000, 10) }

// showKey renders a key for an error message.
func showKey(key []byte) string {
	for _, c := range key {
		if c <= ' ' || c >= 0x7f {
			return strconv.Quote(string(key))
		}
	}
	return string(key)
}

// fail wraps an error from Redis with the operation.
func fail(op string, key []byte, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("redis %s: %w", op, err)
	}
	if msg, ok := strings.CutPrefix(err.Error(), "MALFORMED "); ok {
		return malformed(op, key, cutScriptSuffix(msg))
	}
	if goredis.HasErrorPrefix(err, "WRONGTYPE") {
		return malformed(op, key, "not a hash (WRONGTYPE)")
	}
	return fmt.Errorf("redis %s: %w", op, err)
}

// cutScriptSuffix drops the " script: ..." location Redis 7 appends to
// errors raised by scripts.
func cutScriptSuffix(msg string) string {
	if i := strings.Index(msg, " script: "); i >= 0 {
		return msg[:i]
	}
	return msg
}

func malformed(op string, key []byte, reason string) error {
	return fmt.Errorf("redis %s %s: %w: %s", op, showKey(key), ErrMalformed, reason)
}

// record is a parsed hash.
type record struct {
	value    string
	flags    uint32
	cas      uint64
	deadline int64
}

// parseRecord parses HMGET v f c d. found is false for a missing record
// (no field at all).
func parseRecord(vals []any) (r record, found bool, reason string) {
	if len(vals) != 4 {
		return r, false, fmt.Sprintf("HMGET returned %d fields", len(vals))
	}
	var fields [4]string
	present := 0
	for i, v := range vals {
		switch v := v.(type) {
		case nil:
		case string:
			fields[i] = v
			present++
		default:
			return r, false, fmt.Sprintf("unexpected reply %T", v)
		}
	}
	if present == 0 {
		return r, false, ""
	}
	names := [4]string{"v", "f", "c", "d"}
	for i, v := range vals {
		if v == nil {
			return r, false, "field " + names[i] + " is missing"
		}
	}
	f, err := strconv.ParseUint(fields[1], 10, 32)
	if err != nil {
		return r, false, fmt.Sprintf("field f %q is not a 32-bit decimal", fields[1])
	}
	c, err := strconv.ParseUint(fields[2], 10, 64)
	if err != nil {
		return r, false, fmt.Sprintf("field c %q is not a 64-bit decimal", fields[2])
	}
	d, err := strconv.ParseInt(fields[3], 10, 64)
	if err != nil || d < 0 || fields[3][0] == '+' {
		return r, false, fmt.Sprintf("field d %q is not a deadline", fields[3])
	}
	return record{value: fields[0], flags: uint32(f), cas: c, deadline: d}, true, ""
}

// Get implements store.Store.
func (s *Store) Get(ctx context.Context, key, buf []byte, now int64) (store.Item, error) {
	vals, err := s.c.HMGet(ctx, s.key(key), "v", "f", "c", "d").Result()
	if err != nil {
		return store.Item{}, fail("get", key, err)
	}
	r, found, reason := parseRecord(vals)
	if reason != "" {
		return store.Item{}, malformed("get", key, reason)
	}
	if !found || store.Expired(r.deadline, now) {
		return store.Item{}, store.ErrNotFound
	}
	return store.Item{Key: key, Value: append(buf, r.value...), Flags: r.flags, Deadline: r.deadline, CAS: r.cas}, nil
}

// Touch implements store.Store.
func (s *Store) Touch(ctx context.Context, key []byte, deadline int64, buf []byte, now int64) (store.Item, error) {
	d := store.ClampDeadline(deadline)
	var res []any
	err := s.onOwner(ctx, func() (err error) {
		res, err = touchScript.Run(ctx, s.c, []string{s.key(key)}, d, pexpireat(d), now).Slice()
		return err
	})
	if errors.Is(err, goredis.Nil) {
		return store.Item{}, store.ErrNotFound
	}
	if err != nil {
		return store.Item{}, fail("touch", key, err)
	}
	if len(res) != 3 {
		return store.Item{}, fmt.Errorf("redis touch: script returned %d values", len(res))
	}
	v, _ := res[0].(string)
	fs, _ := res[1].(string)
	cs, _ := res[2].(string)
	f, ferr := strconv.ParseUint(fs, 10, 32)
	c, cerr := strconv.ParseUint(cs, 10, 64)
	if ferr != nil || cerr != nil {
		return store.Item{}, malformed("touch", key, fmt.Sprintf("fields f %q, c %q", fs, cs))
	}
	return store.Item{Key: key, Value: append(buf, v...), Flags: uint32(f), Deadline: d, CAS: c}, nil
}

// storeArgs are storeScript's arguments.
func (s *Store) storeArgs(mode store.Mode, it store.Item, cas uint64, now int64) []any {
	d := store.ClampDeadline(it.Deadline)
	return []any{
		mode.String(), it.Value, strconv.FormatUint(uint64(it.Flags), 10),
		strconv.FormatInt(d, 10), pexpireat(d),
		strconv.FormatUint(cas, 10), strconv.FormatUint(it.CAS, 10), now,
		store.ItemSize(len(it.Key), len(it.Value), it.Flags), s.maxItem,
	}
}

// Store implements store.Store.
func (s *Store) Store(ctx context.Context, mode store.Mode, it store.Item, now int64) (uint64, error) {
	if mode == store.CASStale {
		return 0, store.ErrUnsupported
	}
	op := mode.String()
	if op == "unknown" {
		return 0, fmt.Errorf("redis store: unknown mode %d", mode)
	}
	if mode != store.Append && mode != store.Prepend && store.ItemSize(len(it.Key), len(it.Value), it.Flags) > s.maxItem {
		return 0, store.ErrTooLarge
	}
	cas := s.cas.Next()
	var code int64
	err := s.onOwner(ctx, func() (err error) {
		code, err = storeScript.Run(ctx, s.c, []string{s.key(it.Key)}, s.storeArgs(mode, it, cas, now)...).Int64()
		return err
	})
	if err != nil {
		return 0, fail(op, it.Key, err)
	}
	switch code {
	case codeStored:
		return cas, nil
	case codeNotStored:
		return 0, store.ErrNotStored
	case codeNotFound:
		return 0, store.ErrNotFound
	case codeExists:
		return 0, store.ErrExists
	}
	return 0, fmt.Errorf("redis %s: script returned %d", op, code)
}

// MetaGet implements store.Store for the options that need no per-item
// meta state (store.PlainMetaGet); the others are refused for now.
func (s *Store) MetaGet(ctx context.Context, key, buf []byte, o store.MetaGetOptions, now int64) (store.Item, store.MetaState, error) {
	return store.PlainMetaGet(ctx, s, key, buf, o, now)
}

// Delete implements store.Store; conditional and invalidating deletes are
// refused for now.
func (s *Store) Delete(ctx context.Context, key []byte, o store.DeleteOptions, now int64) error {
	if !o.Plain() {
		return store.ErrUnsupported
	}
	var live int64
	err := s.onOwner(ctx, func() (err error) {
		live, err = deleteScript.Run(ctx, s.c, []string{s.key(key)}, now).Int64()
		return err
	})
	if err != nil {
		return fail("delete", key, err)
	}
	if live == 0 {
		return store.ErrNotFound
	}
	return nil
}

// Incr implements store.Store with memcached's rules, as the embedded store
// does: the value must be a decimal of at most 20 digits; incr wraps at
// 2^64, decr stops at 0; a shorter result is padded with spaces to the old
// length, a longer one replaces it. Flags, deadline and expiry are kept.
//
// The read, the 64-bit arithmetic and the write form an optimistic WATCH
// transaction, retried (after a short random backoff) when another client
// changed the record in between.
//
// Meta arithmetic's conditions (CAS, vivify, touch) are refused for now.
func (s *Store) Incr(ctx context.Context, key []byte, o store.IncrOptions, now int64) (store.Counter, error) {
	if !o.Plain() {
		return store.Counter{}, store.ErrUnsupported
	}
	delta, decr := o.Delta, o.Decr
	k := s.key(key)
	var result store.Counter
	for attempt := range maxIncrAttempts {
		err := s.c.Watch(ctx, func(tx *goredis.Tx) error {
			vals, err := tx.HMGet(ctx, k, "v", "f", "c", "d").Result()
			if err != nil {
				return err
			}
			r, found, reason := parseRecord(vals)
			if reason != "" {
				return malformed("incr", key, reason)
			}
			if !found || store.Expired(r.deadline, now) {
				return store.ErrNotFound
			}
			v, resb, err := store.Incremented([]byte(r.value), delta, decr)
			if err != nil {
				return err
			}
			res := string(resb)
			next := s.cas.Next()
			cas := strconv.FormatUint(next, 10)
			_, err = tx.TxPipelined(ctx, func(p goredis.Pipeliner) error {
				p.HSet(ctx, k, "v", res, "c", cas)
				return nil
			})
			result = store.Counter{Value: v, CAS: next, Deadline: r.deadline}
			return err
		}, k)
		switch {
		case err == nil:
			return result, nil
		case errors.Is(err, goredis.TxFailedErr):
			// The record changed under us: back off a random while, so
			// contending clients spread out, and read it again.
			if err := incrBackoff.Sleep(ctx, attempt); err != nil {
				return store.Counter{}, fail("incr", key, err)
			}
			continue
		case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrNonNumeric), errors.Is(err, ErrMalformed):
			return store.Counter{}, err
		default:
			return store.Counter{}, fail("incr", key, err)
		}
	}
	return store.Counter{}, fmt.Errorf("redis incr: record changed by others on %d attempts in a row", maxIncrAttempts)
}

// Flush implements store.Store: it deletes the keys under KeyPrefix, with
// SCAN and UNLINK in batches, on every master of a cluster. Keys written
// while it runs may survive. Without a KeyPrefix it refuses: repcache never
// wipes a whole Redis.
func (s *Store) Flush(ctx context.Context) error {
	if s.prefix == "" {
		return errors.New("redis flush: a key_prefix is required to flush (repcache never runs FLUSHDB: the Redis may be shared)")
	}
	pattern := globEscape(s.prefix) + "*"
	err := s.forEachMaster(ctx, func(ctx context.Context, c goredis.Cmdable) error {
		var cursor uint64
		for {
			keys, next, err := c.Scan(ctx, cursor, pattern, 1000).Result()
			if err != nil {
				return err
			}
			keys = slices.DeleteFunc(keys, func(k string) bool { return strings.HasPrefix(k, s.prefix+internalPrefix) })
			if len(keys) > 0 {
				// One UNLINK per key: on a cluster node, keys of different
				// slots cannot share a command.
				if _, err := c.Pipelined(ctx, func(p goredis.Pipeliner) error {
					for _, k := range keys {
						p.Unlink(ctx, k)
					}
					return nil
				}); err != nil {
					return err
				}
			}
			if cursor = next; cursor == 0 {
				return nil
			}
		}
	})
	if err != nil {
		return fmt.Errorf("redis flush: %w", err)
	}
	return nil
}

// globEscape quotes the glob metacharacters of SCAN MATCH.
func globEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '*', '?', '[', ']', '\\', '^', '-':
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// forEachMaster runs fn on every master of a cluster, or on the client.
func (s *Store) forEachMaster(ctx context.Context, fn func(context.Context, goredis.Cmdable) error) error {
	if cc, ok := s.c.(*goredis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, func(ctx context.Context, c *goredis.Client) error { return fn(ctx, c) })
	}
	return fn(ctx, s.c)
}

// Close releases the connections.
func (s *Store) Close() error { return s.c.Close() }

// Op is one write of a batch (store.Op: a delete, or Item written with Set
// semantics).
type Op = store.Op

// ApplyBatch applies ops in order in one pipeline (one round trip, per
// node on a cluster) and returns one error per op (nil on success). It is
// the asynchronous backup path: a write replicates a record of the cache
// tier, so a non-zero Item.CAS is kept (a refill from Redis then keeps the
// CAS uniques clients hold); a zero CAS gets a new unique. Deleting a
// missing key is not an error. Each op is atomic; the batch is not. The
// whole batch is written, and its replies read, under one Timeout: size
// batches accordingly.
func (s *Store) ApplyBatch(ctx context.Context, ops []Op, now int64) []error {
	errs := make([]error, len(ops))
	if len(ops) == 0 {
		return errs
	}
	args := make([][]any, len(ops))
	for i, op := range ops {
		if op.Delete {
			continue
		}
		if store.ItemSize(len(op.Item.Key), len(op.Item.Value), op.Item.Flags) > s.maxItem {
			errs[i] = store.ErrTooLarge
			continue
		}
		cas := op.Item.CAS
		if cas == 0 {
			cas = s.cas.Next()
		}
		args[i] = s.storeArgs(store.Set, op.Item, cas, now)
	}
	// run sends the batch; each command carries its own error (a failed
	// round trip sets it on all of them).
	run := func() []goredis.Cmder {
		cmds := make([]goredis.Cmder, len(ops))
		s.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for i, op := range ops {
				switch {
				case op.Delete:
					cmds[i] = p.Del(ctx, s.key(op.Item.Key))
				case args[i] != nil:
					cmds[i] = storeScript.EvalSha(ctx, p, []string{s.key(op.Item.Key)}, args[i]...)
				}
			}
			return nil
		})
		return cmds
	}
	cmds := run()
	var loadErr error
	if noScript(cmds) {
		// The script cache is empty (a restarted or failed-over Redis):
		// load the script and replay the whole batch. Every op is
		// idempotent (sets carry their CAS), and replaying all of them
		// keeps their order.
		if loadErr = storeScript.Load(ctx, s.c).Err(); loadErr == nil {
			cmds = run()
		}
	}
	for i, op := range ops {
		if errs[i] != nil || cmds[i] == nil {
			continue
		}
		if err := cmds[i].Err(); err != nil {
			if loadErr != nil && goredis.HasErrorPrefix(err, "NOSCRIPT") {
				err = fmt.Errorf("load script: %w", loadErr)
			}
			errs[i] = fail("apply", op.Item.Key, err)
		}
	}
	return errs
}

func noScript(cmds []goredis.Cmder) bool {
	for _, c := range cmds {
		if c != nil && goredis.HasErrorPrefix(c.Err(), "NOSCRIPT") {
			return true
		}
	}
	return false
}

// EnableExpiryEvents turns on the keyspace notifications for expired keys
// (notify-keyspace-events E and x), keeping the classes already enabled,
// on every master of a cluster. Managed Redis services often forbid CONFIG:
// configure the server instead.
func (s *Store) EnableExpiryEvents(ctx context.Context) error {
	err := s.forEachMaster(ctx, func(ctx context.Context, c goredis.Cmdable) error {
		cur, err := c.ConfigGet(ctx, "notify-keyspace-events").Result()
		if err != nil {
			return err
		}
		flags := mergeEventFlags(cur["notify-keyspace-events"])
		if flags == cur["notify-keyspace-events"] {
			return nil
		}
		return c.ConfigSet(ctx, "notify-keyspace-events", flags).Err()
	})
	if err != nil {
		return fmt.Errorf("redis enable expiry events: %w", err)
	}
	return nil
}

// mergeEventFlags adds E (keyevent channels) and x (expired events) to a
// notify-keyspace-events value; A already includes x.
func mergeEventFlags(cur string) string {
	flags := cur
	if !strings.Contains(flags, "E") {
		flags += "E"
	}
	if !strings.ContainsAny(flags, "xA") {
		flags += "x"
	}
	return flags
}

// SubscribeExpired subscribes to __keyevent@DB__:expired (on every master
// of a cluster) and calls fn with each expired key under KeyPrefix, the
// prefix removed. fn is called from one goroutine at a time, in arrival
// order per node, and must not block for long. The subscription is active
// when SubscribeExpired returns nil; on an error (Redis down at start) it is
// retried in the background with backoff, as is a master that a cluster
// gained (a failover), and an established subscription reconnects by
// itself after errors (missing the events in between). stop ends it and
// waits for fn to return. Expiry events must be enabled
// (EnableExpiryEvents or the server's configuration).
func (s *Store) SubscribeExpired(ctx context.Context, fn func(key string)) (stop func(), err error) {
	stop, err = s.watch(ctx, fmt.Sprintf("__keyevent@%d__:expired", s.db), func(payload string) {
		if k, ok := strings.CutPrefix(payload, s.prefix); ok && !strings.HasPrefix(k, internalPrefix) {
			fn(k)
		}
	}, nil)
	if err != nil {
		err = fmt.Errorf("redis subscribe expired (retried in the background): %w", err)
	}
	return stop, err
}

// watch subscribes to the channels matching pattern (on every master of a
// cluster: keyspace events are each node's own) and calls fn with each
// message's payload, from one goroutine at a time. A subscription that
// fails (Redis down) is retried in the background with backoff, as is a
// master that a cluster gained; an established one reconnects by itself.
// subscribed (optional) is called, in the same goroutine as fn, whenever a
// subscription is confirmed, the first time and after each reconnection:
// messages published before it may have been missed.
func (s *Store) watch(ctx context.Context, pattern string, fn func(payload string), subscribed func()) (stop func(), err error) {
	if subscribed == nil {
		subscribed = func() {}
	}
	w := &subscription{s: s, fn: fn, subscribed: subscribed, pattern: pattern, subs: map[string]*goredis.PubSub{}}
	wctx, cancel := context.WithCancel(context.Background())
	err = w.refresh(ctx)
	w.wg.Add(1)
	go w.keep(wctx, err)
	return sync.OnceFunc(func() {
		cancel()
		w.mu.Lock()
		for _, ps := range w.subs {
			ps.Close()
		}
		w.mu.Unlock()
		w.wg.Wait()
	}), err
}

// resubscribeEvery is how often a subscription looks for masters
// it does not listen to yet (after a cluster failover), once established.
const resubscribeEvery = 2 * time.Second

var resubscribeBackoff = backoff.Policy{Base: 100 * time.Millisecond, Max: resubscribeEvery}

type subscription struct {
	s          *Store
	fn         func(string)
	subscribed func()
	pattern    string
	mu         sync.Mutex
	subs       map[string]*goredis.PubSub // by master address ("" for a single server or Sentinel)
	fnMu       sync.Mutex
	wg         sync.WaitGroup
}

// keep retries refresh until ctx ends: with backoff while it fails.
func (w *subscription) keep(ctx context.Context, err error) {
	defer w.wg.Done()
	_, cluster := w.s.c.(*goredis.ClusterClient)
	for attempt := 0; ; attempt++ {
		if err == nil {
			if !cluster {
				return // go-redis reconnects an established subscription itself
			}
			attempt = 0
			t := time.NewTimer(resubscribeEvery)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		} else if resubscribeBackoff.Sleep(ctx, attempt) != nil {
			return
		}
		err = w.refresh(ctx)
	}
}

// refresh subscribes on every master not subscribed yet.
func (w *subscription) refresh(ctx context.Context) error {
	cc, ok := w.s.c.(*goredis.ClusterClient)
	if !ok {
		return w.subscribe(ctx, "", w.s.c)
	}
	return cc.ForEachMaster(ctx, func(ctx context.Context, c *goredis.Client) error { return w.subscribe(ctx, c.Options().Addr, c) })
}

func (w *subscription) subscribe(ctx context.Context, addr string, c goredis.UniversalClient) error {
	w.mu.Lock()
	_, done := w.subs[addr]
	w.mu.Unlock()
	if done {
		return nil
	}
	ps := c.PSubscribe(ctx, w.pattern)
	if _, err := ps.ReceiveTimeout(ctx, w.s.timeout); err != nil {
		ps.Close()
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if ctx.Err() != nil {
		ps.Close()
		return ctx.Err()
	}
	w.subs[addr] = ps
	w.fnMu.Lock()
	w.subscribed()
	w.fnMu.Unlock()
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		// With the confirmations: go-redis resubscribes after a lost
		// connection, and its confirmation is how a gap shows.
		for m := range ps.ChannelWithSubscriptions() {
			w.fnMu.Lock()
			switch m := m.(type) {
			case *goredis.Message:
				w.fn(m.Payload)
			case *goredis.Subscription:
				if m.Kind == "psubscribe" {
					w.subscribed()
				}
			}
			w.fnMu.Unlock()
		}
	}()
	return nil
}
