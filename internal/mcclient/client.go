// Package mcclient is a memcached client that multiplexes: the requests of
// every goroutine share a few connections per server and are pipelined on
// them with the meta protocol (mg, ms, md, mn), the requests queued while a
// write is in progress going out together in the next write. Keys are
// spread over the pool by ketama consistent hashing, compatible with
// twemproxy and libmemcached (see ketama.go); a server that keeps failing
// is marked down, answered for at once with ErrUnavailable, and retried
// with backoff.
//
// A request ends when its reply arrives, its context ends, or its
// connection fails. A connection fails when it cannot be dialed, on any
// I/O error, on a reply it cannot use, and when replies stop coming for
// Timeout while requests are in flight (a hung server). A request whose
// context ended stays in the pipeline and its reply is read and dropped,
// so the replies of the others stay in step. A write whose reply was lost
// (timeout, connection failure) may or may not have been applied.
package mcclient

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/repcache/repcache/internal/backoff"
)

// Options configures a Client.
type Options struct {
	// Servers are "host:port" addresses or Unix socket paths (containing
	// a '/'); the string is also the server's name on the ketama ring.
	Servers []string
	// Hash is the key hash (default HashMD5).
	Hash Hash
	// Conns is the number of connections per server (default 1, as
	// twemproxy's server_connections: with one, the most requests share
	// each write).
	Conns int
	// Timeout bounds dialing, each write, and the wait for the next reply
	// while requests are in flight (default 100ms).
	Timeout time.Duration
	// FailureLimit is the number of consecutive failures (failed dials,
	// failed connections) after which a server is marked down (default 2,
	// as twemproxy's server_failure_limit).
	FailureLimit int
	// Retry spaces the retries of a server marked down (default 100ms
	// doubling up to 2s, with jitter).
	Retry backoff.Policy
}

// ErrUnavailable is returned, wrapped with the server's last error, for a
// request to a server marked down, until its next retry.
var ErrUnavailable = errors.New("memcached server marked down")

// ErrClosed is returned for requests after Close.
var ErrClosed = errors.New("memcached client closed")

// Client is safe for concurrent use.
type Client struct {
	servers []*server
	ring    continuum
	hash    Hash
}

// New returns a client for the pool. It does not connect.
func New(o Options) (*Client, error) {
	if len(o.Servers) == 0 {
		return nil, errors.New("no memcached servers")
	}
	if o.Hash == "" {
		o.Hash = HashMD5
	}
	if !o.Hash.valid() {
		return nil, fmt.Errorf("unknown key hash %q", o.Hash)
	}
	if o.Conns <= 0 {
		o.Conns = 1
	}
	if o.Timeout <= 0 {
		o.Timeout = 100 * time.Millisecond
	}
	if o.FailureLimit <= 0 {
		o.FailureLimit = 2
	}
	if o.Retry == (backoff.Policy{}) {
		o.Retry = backoff.Policy{Base: 100 * time.Millisecond, Max: 2 * time.Second}
	}
	c := &Client{hash: o.Hash}
	names := make([]string, len(o.Servers))
	weights := make([]int, len(o.Servers))
	seen := map[string]bool{}
	for i, a := range o.Servers {
		network := "tcp"
		if strings.Contains(a, "/") {
			network = "unix"
		} else if _, _, err := net.SplitHostPort(a); err != nil {
			return nil, fmt.Errorf("memcached server %q: %w", a, err)
		}
		if seen[a] {
			return nil, fmt.Errorf("memcached server %q listed twice", a)
		}
		seen[a] = true
		s := &server{addr: a, network: network, timeout: o.Timeout, failureLimit: o.FailureLimit, retry: o.Retry}
		s.conns = make([]*conn, o.Conns)
		c.servers = append(c.servers, s)
		names[i], weights[i] = a, 1
	}
	c.ring = newContinuum(names, weights)
	return c, nil
}

// Server is the address of the server that holds key.
func (c *Client) Server(key string) string { return c.pick(key).addr }

// Servers are the pool's addresses, in configuration order.
func (c *Client) Servers() []string {
	a := make([]string, len(c.servers))
	for i, s := range c.servers {
		a[i] = s.addr
	}
	return a
}

func (c *Client) pick(key string) *server {
	if len(c.servers) == 1 {
		return c.servers[0]
	}
	return c.servers[c.ring.server(c.hash.sum(key))]
}

// Get returns key's value and memcached's CAS id for it, or ErrCacheMiss.
func (c *Client) Get(ctx context.Context, key string) (value []byte, cas uint64, err error) {
	if !ValidKey(key) {
		return nil, 0, ErrMalformedKey
	}
	cl := newCall()
	cl.op, cl.key = opGet, key
	if err := c.pick(key).do(ctx, cl); err != nil {
		return nil, 0, err
	}
	value, cas, err = cl.rvalue, cl.rcas, cl.err
	release(cl)
	return value, cas, err
}

// Store writes value under key with memcached's exptime (0 never, up to 30
// days relative, else absolute; negative: stored already expired). With a
// non-zero cas the write happens only if memcached's CAS id for the key is
// cas (else ErrExists, or ErrNotFound if it is absent). Refusals are
// ErrNotStored. value is read when the request is written, which can be
// after Store returned because ctx ended: pass a slice nobody modifies.
func (c *Client) Store(ctx context.Context, mode Mode, key string, value []byte, exptime int32, cas uint64) error {
	if !ValidKey(key) {
		return ErrMalformedKey
	}
	cl := newCall()
	cl.op, cl.key, cl.value, cl.exptime, cl.mode, cl.cas = opStore, key, value, exptime, mode, cas
	if err := c.pick(key).do(ctx, cl); err != nil {
		return err
	}
	err := cl.err
	release(cl)
	return err
}

// Delete removes key; ErrNotFound if memcached did not hold it.
func (c *Client) Delete(ctx context.Context, key string) error {
	if !ValidKey(key) {
		return ErrMalformedKey
	}
	cl := newCall()
	cl.op, cl.key = opDelete, key
	if err := c.pick(key).do(ctx, cl); err != nil {
		return err
	}
	err := cl.err
	release(cl)
	return err
}

// FlushAll sends flush_all to the server at addr (one of Servers).
func (c *Client) FlushAll(ctx context.Context, addr string) error {
	return c.serverCall(ctx, addr, opFlush)
}

// Noop sends mn to the server at addr: the cheapest round trip, for
// liveness probes. A server marked down is retried by it when due.
func (c *Client) Noop(ctx context.Context, addr string) error {
	return c.serverCall(ctx, addr, opNoop)
}

func (c *Client) serverCall(ctx context.Context, addr string, o op) error {
	for _, s := range c.servers {
		if s.addr == addr {
			cl := newCall()
			cl.op = o
			if err := s.do(ctx, cl); err != nil {
				return err
			}
			err := cl.err
			release(cl)
			return err
		}
	}
	return fmt.Errorf("%s is not in the memcached pool", addr)
}

// Close closes every connection; requests in flight fail with ErrClosed.
func (c *Client) Close() error {
	for _, s := range c.servers {
		s.close()
	}
	return nil
}

// server is one memcached of the pool: its connections and its health.
type server struct {
	addr, network string
	timeout       time.Duration
	failureLimit  int
	retry         backoff.Policy
	next          atomic.Uint32 // round-robin over conns

	mu       sync.Mutex
	conns    []*conn
	closed   bool
	failures int       // consecutive
	down     bool      // marked down: requests fail at once until retryAt
	probing  bool      // a retry of a down server is under way
	retryAt  time.Time // when a down server is tried again
	attempt  int       // retries so far while down
	lastErr  error
	healthy  atomic.Bool // no failure since the last success (fast path)
}

func (s *server) dial(timeout time.Duration) (net.Conn, error) {
	return net.DialTimeout(s.network, s.addr, timeout)
}

// do sends cl on one of s's connections and waits for its reply. A nil
// return means cl holds the reply (cl.err may be an answer such as
// ErrCacheMiss); otherwise cl is abandoned to the connection.
func (s *server) do(ctx context.Context, cl *call) error {
	if err := ctx.Err(); err != nil {
		release(cl)
		return err
	}
	for try := 0; ; try++ {
		cn, err := s.conn()
		if err != nil {
			release(cl)
			return err
		}
		own, err := cn.submit(cl)
		if err == nil {
			if own {
				return cn.readOwn(ctx, cl)
			}
			break
		}
		// The connection had failed before cl was queued: nothing was
		// sent, so one more try on a fresh connection is safe.
		if try > 0 || err == ErrClosed {
			release(cl)
			return err
		}
	}
	select {
	case <-cl.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// conn returns a live connection (dialed on its first write), or
// ErrUnavailable while s is marked down.
func (s *server) conn() (*conn, error) {
	i := int(s.next.Add(1)) % len(s.conns)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	if s.down {
		if s.probing || time.Now().Before(s.retryAt) {
			return nil, fmt.Errorf("%w (last error: %v)", ErrUnavailable, s.lastErr)
		}
		// Due for a retry: this request is the probe; the others keep
		// failing fast until it succeeds (succeeded) or fails (failed).
		s.probing = true
	}
	cn := s.conns[i]
	if cn == nil || cn.failed() {
		cn = &conn{srv: s, timeout: s.timeout}
		s.conns[i] = cn
	}
	return cn, nil
}

// succeeded records a reply.
func (s *server) succeeded() {
	if s.healthy.Load() {
		return
	}
	s.mu.Lock()
	s.failures, s.down, s.probing, s.attempt, s.lastErr = 0, false, false, 0, nil
	s.healthy.Store(true)
	s.mu.Unlock()
}

// failed records a failed connection or dial.
func (s *server) failed(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.healthy.Store(false)
	s.lastErr = err
	s.failures++
	switch {
	case s.down:
		s.attempt++
		s.probing = false
		s.retryAt = time.Now().Add(s.retry.Delay(s.attempt))
	case s.failures >= s.failureLimit:
		s.down, s.attempt, s.probing = true, 0, false
		s.retryAt = time.Now().Add(s.retry.Delay(0))
	}
}

func (s *server) close() {
	s.mu.Lock()
	s.closed = true
	conns := append([]*conn(nil), s.conns...)
	s.mu.Unlock()
	for _, cn := range conns {
		if cn != nil {
			cn.close()
		}
	}
}

// Down reports whether the server at addr is marked down.
func (c *Client) Down(addr string) bool {
	for _, s := range c.servers {
		if s.addr == addr {
			s.mu.Lock()
			defer s.mu.Unlock()
			return s.down
		}
	}
	return false
}
