// Package server accepts memcache clients on TCP and unix-socket listeners,
// enforces connection limits and idle timeouts, and hands each connection to
// a protocol session. Shutdown stops accepting, lets in-flight requests
// finish, and closes what is left at a deadline.
package server

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/repcache/repcache/internal/protocol"
)

// Options configures a Server.
type Options struct {
	MaxConnections int           // over it: "ERROR Too many open connections", then close
	IdleTimeout    time.Duration // a client silent this long (even mid-command) is cut off
	UnixSocketMode fs.FileMode   // permissions of unix socket files
	Logger         *slog.Logger
	// Registerer receives the connection metrics (nil: none).
	Registerer prometheus.Registerer
}

// Server serves the memcache protocol on any number of listeners, each with
// its own protocol handler (a listener may see only some maps).
type Server struct {
	opts     Options
	maxConns atomic.Int64 // limits that a reload may change
	idle     atomic.Int64 // idle timeout, nanoseconds
	// Connection counts, for metrics and (passed down) for "stats".
	curr, total, rejected atomic.Int64
	log                   *slog.Logger
	mu                    sync.Mutex
	lns                   []listener
	handlers              []*protocol.Handler // told the connection limit (stats settings)
	conns                 map[net.Conn]*clientConn
	wg                    sync.WaitGroup
	draining              atomic.Bool
}

// New returns a server.
func New(o Options) *Server {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.UnixSocketMode == 0 {
		o.UnixSocketMode = 0o660
	}
	s := &Server{opts: o, log: o.Logger, conns: map[net.Conn]*clientConn{}}
	s.SetLimits(o.MaxConnections, o.IdleTimeout)
	if o.Registerer != nil {
		newMetrics(o.Registerer, s)
	}
	return s
}

// SetLimits changes the connection limit (for new connections) and the idle
// timeout (for every connection's next read).
func (s *Server) SetLimits(maxConnections int, idle time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.maxConns.Store(int64(maxConnections))
	s.idle.Store(int64(idle))
	for _, h := range s.handlers {
		h.SetMaxConnections(maxConnections)
	}
}

// Connections implements protocol.ConnectionStats.
func (s *Server) Connections() (current, total, rejected int64) {
	return s.curr.Load(), s.total.Load(), s.rejected.Load()
}

// listener is a listener as "stats conns" describes it.
type listener struct {
	net.Listener
	id     int
	opened time.Time
}

// EachConnection implements protocol.ConnectionStats.
func (s *Server) EachConnection(f func(protocol.ConnInfo)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ln := range s.lns {
		f(protocol.ConnInfo{ID: ln.id, Addr: ln.Addr(), State: protocol.ConnListening, LastCommand: ln.opened})
	}
	for c, cc := range s.conns {
		info := protocol.ConnInfo{ID: cc.id, Addr: c.RemoteAddr(), Listen: c.LocalAddr(), State: protocol.ConnBusy, LastCommand: time.Unix(0, cc.last.Load())}
		switch {
		case cc.watching.Load():
			info.State = protocol.ConnWatching
		case cc.waiting.Load():
			info.State = protocol.ConnWaiting
		}
		f(info)
	}
}

// fileDescriptor is c's descriptor, memcached's connection id (0 for a
// connection that has none).
func fileDescriptor(c any) int {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return 0
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0
	}
	fd := 0
	rc.Control(func(p uintptr) { fd = int(p) })
	return fd
}

// Listen opens an address: "host:port" for TCP or "unix:/path" for a unix
// socket. A stale socket file left by a previous run is replaced.
func Listen(addr string, mode fs.FileMode) (net.Listener, error) {
	path, ok := strings.CutPrefix(addr, "unix:")
	if !ok {
		return net.Listen("tcp", addr)
	}
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&fs.ModeSocket != 0 {
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			return nil, fmt.Errorf("listen %s: another process is serving this socket", addr)
		}
		os.Remove(path)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, mode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("listen %s: set mode %v: %w", addr, mode, err)
	}
	return ln, nil
}

// Serve accepts connections on ln and hands them to h until Shutdown. It
// returns nil after a shutdown.
func (s *Server) Serve(ln net.Listener, h *protocol.Handler) error {
	s.mu.Lock()
	if s.draining.Load() {
		s.mu.Unlock()
		ln.Close()
		return nil
	}
	s.lns = append(s.lns, listener{Listener: ln, id: fileDescriptor(ln), opened: time.Now()})
	s.handlers = append(s.handlers, h)
	h.SetMaxConnections(int(s.maxConns.Load()))
	h.SetConnectionStats(s)
	s.mu.Unlock()
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.draining.Load() {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) {
				// Out of file descriptors: back off rather than spin.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.log.Warn("accept failed; retrying", "err", err, "delay", delay)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		s.handle(c, h)
	}
}

func (s *Server) handle(c net.Conn, h *protocol.Handler) {
	s.total.Add(1)
	if limit := s.maxConns.Load(); s.curr.Add(1) > limit && limit > 0 {
		s.curr.Add(-1)
		s.rejected.Add(1)
		c.SetWriteDeadline(time.Now().Add(time.Second))
		c.Write(protocol.TooManyConnections())
		c.Close()
		s.log.Warn("connection refused: too many open connections", "remote", c.RemoteAddr().String(), "max_connections", s.maxConns.Load())
		return
	}
	s.mu.Lock()
	if s.draining.Load() {
		s.mu.Unlock()
		s.curr.Add(-1)
		c.Close()
		return
	}
	cc := &clientConn{c: c, id: fileDescriptor(c), idle: &s.idle, draining: &s.draining}
	cc.last.Store(time.Now().UnixNano())
	s.conns[c] = cc
	s.wg.Add(1)
	s.mu.Unlock()
	h.ConnOpened(cc.id, c.RemoteAddr())
	go func() {
		defer s.wg.Done()
		err := h.NewSession(context.Background(), cc, cc).Serve()
		reason := s.closed(c, err) // logged before the client can see the close
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		s.curr.Add(-1)
		c.Close()
		h.ConnClosed(cc.id, c.RemoteAddr(), reason)
	}()
}

// closed logs why a connection ended, if that is news to an operator, and
// names the reason as memcached's conn_close event does.
func (s *Server) closed(c net.Conn, err error) string {
	switch {
	case s.draining.Load():
		return protocol.CloseShutdown
	case err == nil, errors.Is(err, protocol.ErrQuit), isClosed(err):
		return protocol.CloseNormal
	case errors.Is(err, errIdle):
		s.log.Info("closed idle connection", "remote", remote(c), "idle_timeout", time.Duration(s.idle.Load()))
		return protocol.CloseIdleTimeout
	case errors.Is(err, errStalled):
		s.log.Info("closed connection that stopped reading its replies", "remote", remote(c), "idle_timeout", time.Duration(s.idle.Load()))
		return protocol.CloseIdleTimeout
	}
	s.log.Info("closed connection", "remote", remote(c), "reason", err.Error())
	return protocol.CloseError
}

func remote(c net.Conn) string {
	if a := c.RemoteAddr(); a != nil && a.String() != "" {
		return a.String()
	}
	return c.LocalAddr().String()
}

// Shutdown stops accepting and waits for connections to finish what they
// have received. Connections waiting for a new request are closed at once;
// any still busy when ctx ends are closed then.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.draining.Store(true)
	for _, ln := range s.lns {
		ln.Close()
	}
	// Wake readers blocked waiting for a request; a session that has
	// buffered requests answers them first (see clientConn).
	for c := range s.conns {
		c.SetReadDeadline(time.Now())
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		n := len(s.conns)
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		<-done
		return fmt.Errorf("shutdown deadline passed; closed %d busy connections", n)
	}
}

var (
	errIdle    = errors.New("idle timeout")
	errStalled = errors.New("the client read nothing of its replies for the idle timeout")
)

// clientConn applies the idle timeout to a connection in both directions:
// a read that waits idle_timeout for a byte ends the session, and so does a
// write that makes no progress for idle_timeout (a client that stops
// reading its replies). A client that trickles, one byte at a time, is
// kept: every byte is progress, as memcached counts it.
type clientConn struct {
	c        net.Conn
	id       int           // the descriptor, memcached's connection id
	idle     *atomic.Int64 // the server's idle timeout, nanoseconds
	draining *atomic.Bool
	// What "stats conns" reports: reading (waiting for a request), a
	// "watch" stream, and when the client last sent something.
	waiting, watching atomic.Bool
	last              atomic.Int64 // Unix nanoseconds
	// The deadlines last set. Moving a deadline costs a timer update, so it
	// is moved only once it has drifted by deadlineSlack; a timeout that
	// fires early is then re-armed for the rest (see wait).
	rdeadline, wdeadline time.Time
}

// deadlineSlack is how stale a deadline may get before an operation moves it.
const deadlineSlack = time.Second

// arm moves *d (through set) so that it lies between timeout-deadlineSlack
// and timeout after now; at once when a reload shortened the timeout.
func arm(d *time.Time, now time.Time, timeout time.Duration, set func(time.Time) error) {
	if left := d.Sub(now); left < timeout-deadlineSlack || left > timeout || timeout <= deadlineSlack {
		*d = now.Add(timeout)
		set(*d)
	}
}

// rearm decides, after a timeout, whether the operation started at start
// has really waited the whole timeout. If not (the deadline was armed up
// to deadlineSlack early), it sets the deadline for the rest and reports
// true: try again.
func rearm(d *time.Time, start time.Time, timeout time.Duration, set func(time.Time) error) bool {
	end := start.Add(timeout)
	if !time.Now().Before(end) {
		return false
	}
	*d = end
	set(end)
	return true
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// ConnID is the connection's id for the protocol's log lines.
func (r *clientConn) ConnID() int { return r.id }

// Watch implements protocol.Watchable: a log stream's client sends
// nothing, so its reads have no idle timeout from now on.
func (r *clientConn) Watch() {
	r.watching.Store(true)
	r.c.SetReadDeadline(time.Time{}) // the idle deadline armed for the last request
	if r.draining.Load() {
		r.c.SetReadDeadline(time.Now()) // a shutdown began meanwhile: wake the read
	}
}

func (r *clientConn) Read(p []byte) (int, error) {
	r.waiting.Store(true)
	n, err := r.read(p)
	r.waiting.Store(false)
	if n > 0 {
		r.last.Store(time.Now().UnixNano())
	}
	return n, err
}

func (r *clientConn) read(p []byte) (int, error) {
	if r.draining.Load() {
		return 0, errDraining
	}
	timeout := time.Duration(r.idle.Load())
	if timeout <= 0 || r.watching.Load() {
		return r.c.Read(p)
	}
	start := time.Now()
	arm(&r.rdeadline, start, timeout, r.c.SetReadDeadline)
	for {
		n, err := r.c.Read(p)
		if err == nil || !isTimeout(err) {
			return n, err
		}
		if r.draining.Load() {
			return n, errDraining
		}
		if n > 0 || !rearm(&r.rdeadline, start, timeout, r.c.SetReadDeadline) {
			if n > 0 {
				return n, nil
			}
			return 0, errIdle
		}
	}
}

// Write writes all of b; it fails only when no byte went out for the idle
// timeout.
func (r *clientConn) Write(b []byte) (int, error) {
	timeout := time.Duration(r.idle.Load())
	if timeout <= 0 {
		return r.c.Write(b)
	}
	written := 0
	start := time.Now()
	arm(&r.wdeadline, start, timeout, r.c.SetWriteDeadline)
	for {
		n, err := r.c.Write(b[written:])
		written += n
		if err == nil || !isTimeout(err) {
			return written, err
		}
		if n > 0 {
			start = time.Now() // progress: the timeout counts from here
			arm(&r.wdeadline, start, timeout, r.c.SetWriteDeadline)
			continue
		}
		if !rearm(&r.wdeadline, start, timeout, r.c.SetWriteDeadline) {
			return written, errStalled
		}
	}
}

// WriteBuffers implements protocol.BuffersWriter: one writev for several
// buffers, under the same progress rule as Write.
func (r *clientConn) WriteBuffers(bufs *net.Buffers) (int64, error) {
	timeout := time.Duration(r.idle.Load())
	if timeout <= 0 {
		return bufs.WriteTo(r.c)
	}
	var written int64
	start := time.Now()
	arm(&r.wdeadline, start, timeout, r.c.SetWriteDeadline)
	for {
		n, err := bufs.WriteTo(r.c)
		written += n
		if err == nil || !isTimeout(err) {
			return written, err
		}
		if n > 0 {
			start = time.Now()
			arm(&r.wdeadline, start, timeout, r.c.SetWriteDeadline)
			continue
		}
		if !rearm(&r.wdeadline, start, timeout, r.c.SetWriteDeadline) {
			return written, errStalled
		}
	}
}

var errDraining = errors.New("server is shutting down")

func isClosed(err error) bool {
	return errors.Is(err, net.ErrClosed) || errors.Is(err, errDraining) || errors.Is(err, os.ErrDeadlineExceeded) || isEOF(err)
}
