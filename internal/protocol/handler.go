// Package protocol speaks memcached's text protocol (classic and meta
// commands) byte for byte as memcached 1.6 does, including its replies to
// malformed input, and executes requests against a store.Store.
//
// A Handler holds what all connections share (store, limits, counters,
// scheduled flush); a Session serves one connection.
package protocol

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/repcache/repcache/internal/store"
)

// CompatVersion is the memcached release whose replies repcache reproduces.
const CompatVersion = "1.6.18"

// Options are the protocol limits.
type Options struct {
	MaxKeyLength  int // longest key (memcached: 250)
	MaxItemSize   int // largest item, memcached accounting (memcached: 1 MiB)
	MaxLineLength int // longest command line without a newline before the connection is closed (memcached: 2048)
	// MaxMultiGetLine bounds a get/gets line, which memcached lets grow
	// without limit (default 8 MiB).
	MaxMultiGetLine int
	Version         string       // reported by "version" and "stats"
	Now             func() int64 // clock, Unix seconds (default time.Now)
	Logger          *slog.Logger
	// Registerer receives the protocol metrics (nil: none); handlers made
	// with ForStore share them.
	Registerer prometheus.Registerer
}

// Counters are the protocol's statistics, as reported by "stats".
type Counters struct {
	CmdGet, CmdSet, CmdFlush, CmdTouch, CmdMeta atomic.Uint64
	GetHits, GetMisses                          atomic.Uint64
	DeleteHits, DeleteMisses                    atomic.Uint64
	IncrHits, IncrMisses, DecrHits, DecrMisses  atomic.Uint64
	CASHits, CASMisses, CASBadval               atomic.Uint64
	TouchHits, TouchMisses                      atomic.Uint64
	StoreTooLarge                               atomic.Uint64
	TotalItems                                  atomic.Uint64
	BytesRead, BytesWritten                     atomic.Uint64
}

// reset zeroes the counters ("stats reset").
func (c *Counters) reset() {
	for _, v := range []*atomic.Uint64{
		&c.CmdGet, &c.CmdSet, &c.CmdFlush, &c.CmdTouch, &c.CmdMeta, &c.GetHits, &c.GetMisses,
		&c.DeleteHits, &c.DeleteMisses, &c.IncrHits, &c.IncrMisses, &c.DecrHits, &c.DecrMisses,
		&c.CASHits, &c.CASMisses, &c.CASBadval, &c.TouchHits, &c.TouchMisses, &c.StoreTooLarge,
		&c.TotalItems, &c.BytesRead, &c.BytesWritten,
	} {
		v.Store(0)
	}
}

// resetBase is what "stats reset" zeroes but protocol does not own: the
// server's connection totals and the store's eviction counts, which feed
// Prometheus counters and must not go back. stats reports them less the
// values at the last reset.
type resetBase struct {
	total, rejected      int64
	evictions, reclaimed uint64
}

// Handler serves the sessions of one listener. Handlers made with
// ForStore share their counters and scheduled flush.
type Handler struct {
	opts    Options
	store   store.Store
	limiter store.KeyLimiter // nil: opts.MaxKeyLength for every key
	metrics *metrics
	*shared
}

type shared struct {
	maxKey     atomic.Int64 // limits that a reload may change
	maxItem    atomic.Int64
	maxConns   atomic.Int64 // the server's connection limit, for stats settings
	conns      atomic.Pointer[ConnectionStats]
	started    time.Time
	Stats      Counters
	detail     prefixStats // "stats detail"
	base       atomic.Pointer[resetBase]
	logs       logHub // "watch" streams
	flushMu    sync.Mutex
	flushTimer *time.Timer
}

// NewHandler returns a Handler serving st.
func NewHandler(st store.Store, o Options) *Handler {
	if o.MaxKeyLength <= 0 {
		o.MaxKeyLength = 250
	}
	if o.MaxItemSize <= 0 {
		o.MaxItemSize = 1 << 20
	}
	if o.MaxLineLength <= 0 {
		o.MaxLineLength = 2048
	}
	if o.MaxMultiGetLine <= 0 {
		o.MaxMultiGetLine = 8 << 20
	}
	if o.Version == "" {
		o.Version = CompatVersion
	}
	if o.Now == nil {
		o.Now = func() int64 { return time.Now().Unix() }
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	h := &Handler{opts: o, shared: &shared{started: time.Now()}}
	if o.Registerer != nil {
		h.metrics = newMetrics(o.Registerer)
	}
	h.SetLimits(o.MaxKeyLength, o.MaxItemSize)
	h.setStore(st)
	return h
}

// ForStore returns a handler that serves st (for instance one listener's
// view of the maps) with the same options, counters and flush schedule.
func (h *Handler) ForStore(st store.Store) *Handler {
	c := &Handler{opts: h.opts, shared: h.shared, metrics: h.metrics}
	c.setStore(st)
	return c
}

func (h *Handler) setStore(st store.Store) {
	h.store = st
	h.limiter, _ = st.(store.KeyLimiter)
}

// SetLimits changes the key and item size limits for every session of the
// handler's family, from their next request on.
func (h *Handler) SetLimits(maxKeyLength, maxItemSize int) {
	h.maxKey.Store(int64(maxKeyLength))
	h.maxItem.Store(int64(maxItemSize))
}

// ConnectionStats is what the server counts and knows of its connections,
// passed down for "stats" and "stats conns".
type ConnectionStats interface {
	Connections() (current, total, rejected int64)
	// EachConnection calls f for every listener and open connection.
	EachConnection(f func(ConnInfo))
}

// ConnInfo describes a listener or connection for "stats conns".
type ConnInfo struct {
	ID           int      // the file descriptor: memcached's connection id (cfd)
	Addr, Listen net.Addr // the peer (for a listener: its address) and the listener it came in on
	State        ConnState
	LastCommand  time.Time // when the client last sent something (a listener: when it opened)
}

// ConnState is what a connection is doing, as "stats conns" reports it.
type ConnState uint8

const (
	ConnListening ConnState = iota // a listener
	ConnWaiting                    // waiting for a request
	ConnBusy                       // serving a request
	ConnWatching                   // streaming "watch" lines
)

// connStateNames are memcached's names of the states.
var connStateNames = [...]string{ConnListening: "conn_listening", ConnWaiting: "conn_waiting", ConnBusy: "conn_parse_cmd", ConnWatching: "conn_watch"}

// SetConnectionStats gives the handler's family the server's connection
// counts for "stats".
func (h *Handler) SetConnectionStats(c ConnectionStats) { h.conns.Store(&c) }

// SetMaxConnections tells the handler's family the server's connection
// limit, which "stats settings" reports as maxconns.
func (h *Handler) SetMaxConnections(n int) { h.maxConns.Store(int64(n)) }

// Counters returns the statistics shared by the handler's family.
func (h *Handler) Counters() *Counters { return &h.Stats }

// ExptimeDeadline converts a client's exptime to an absolute deadline
// exactly as memcached reads it: 0 never expires, negative is already
// expired, up to store.MaxRelativeTTL is relative, above is an absolute
// Unix time.
func ExptimeDeadline(exptime int32, now int64) int64 {
	switch {
	case exptime == 0:
		return 0
	case exptime < 0:
		return 1
	case exptime > store.MaxRelativeTTL:
		return int64(exptime)
	default:
		return now + int64(exptime)
	}
}

// scheduleFlush runs a flush_all with a delay: memcached invalidates, at
// that moment, every item stored before it.
func (h *Handler) scheduleFlush(at time.Duration) {
	h.flushMu.Lock()
	defer h.flushMu.Unlock()
	if h.flushTimer != nil {
		h.flushTimer.Stop()
	}
	h.flushTimer = time.AfterFunc(at, func() {
		if err := h.store.Flush(context.Background()); err != nil {
			h.opts.Logger.Error("delayed flush_all failed", "err", err)
		}
	})
}

// Close stops a pending delayed flush.
func (h *Handler) Close() {
	h.flushMu.Lock()
	defer h.flushMu.Unlock()
	if h.flushTimer != nil {
		h.flushTimer.Stop()
	}
}
