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
	"time"

	"github.com/repcache/repcache/internal/protocol"
)

// Options configures a Server.
type Options struct {
	MaxConnections int           // over it: "ERROR Too many open connections", then close
	IdleTimeout    time.Duration // a client silent this long (even mid-command) is cut off
	UnixSocketMode fs.FileMode   // permissions of unix socket files
	Logger         *slog.Logger
}

// Server serves the memcache protocol on any number of listeners, each with
// its own protocol handler (a listener may see only some maps).
type Server struct {
	opts     Options
	maxConns atomic.Int64 // limits that a reload may change
	idle     atomic.Int64 // idle timeout, nanoseconds
	log      *slog.Logger
	mu       sync.Mutex
	lns      []net.Listener
	conns    map[net.Conn]struct{}
	wg       sync.WaitGroup
	draining atomic.Bool
}

// New returns a server.
func New(o Options) *Server {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.UnixSocketMode == 0 {
		o.UnixSocketMode = 0o660
	}
	s := &Server{opts: o, log: o.Logger, conns: map[net.Conn]struct{}{}}
	s.SetLimits(o.MaxConnections, o.IdleTimeout)
	return s
}

// SetLimits changes the connection limit (for new connections) and the idle
// timeout (for every connection's next read).
func (s *Server) SetLimits(maxConnections int, idle time.Duration) {
	s.maxConns.Store(int64(maxConnections))
	s.idle.Store(int64(idle))
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
	s.lns = append(s.lns, ln)
	s.mu.Unlock()
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.draining.Load() {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscallEMFILE) {
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
	st := h.Counters()
	st.TotalConnections.Add(1)
	if max := s.maxConns.Load(); st.CurrConnections.Add(1) > max && max > 0 {
		st.CurrConnections.Add(-1)
		st.RejectedConnections.Add(1)
		c.SetWriteDeadline(time.Now().Add(time.Second))
		c.Write(protocol.TooManyConnections())
		c.Close()
		s.log.Warn("connection refused: too many open connections", "remote", c.RemoteAddr().String(), "max_connections", s.maxConns.Load())
		return
	}
	s.mu.Lock()
	if s.draining.Load() {
		s.mu.Unlock()
		st.CurrConnections.Add(-1)
		c.Close()
		return
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		defer func() {
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
			st.CurrConnections.Add(-1)
			c.Close()
		}()
		sess := h.NewSession(context.Background(), &idleReader{c: c, idle: &s.idle, draining: &s.draining}, c)
		err := sess.Serve()
		switch {
		case err == nil, errors.Is(err, protocol.ErrQuit), isClosed(err), s.draining.Load():
		case errors.Is(err, errIdle):
			s.log.Info("closed idle connection", "remote", remote(c), "idle_timeout", time.Duration(s.idle.Load()))
		default:
			s.log.Info("closed connection", "remote", remote(c), "reason", err.Error())
		}
	}()
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
	// buffered requests answers them first (see idleReader).
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

var errIdle = errors.New("idle timeout")

// idleReader applies the idle timeout to every read and stops reading once
// the server drains.
type idleReader struct {
	c        net.Conn
	idle     *atomic.Int64 // the server's idle timeout, nanoseconds
	draining *atomic.Bool
	deadline time.Time // the read deadline last set
}

// deadlineSlack is how stale the read deadline may get before a read moves
// it: moving it costs a timer update, which on a busy connection would be
// paid on every request.
const deadlineSlack = time.Second

func (r *idleReader) Read(p []byte) (int, error) {
	if r.draining.Load() {
		return 0, errDraining
	}
	if timeout := time.Duration(r.idle.Load()); timeout > 0 {
		now := time.Now()
		// Move the deadline when it has drifted, or at once when a reload
		// shortened the timeout.
		if left := r.deadline.Sub(now); left < timeout-deadlineSlack || left > timeout || timeout <= deadlineSlack {
			r.deadline = now.Add(timeout)
			r.c.SetReadDeadline(r.deadline)
		}
	}
	n, err := r.c.Read(p)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			if r.draining.Load() {
				return n, errDraining
			}
			return n, errIdle
		}
	}
	return n, err
}

var errDraining = errors.New("server is shutting down")

func isClosed(err error) bool {
	return errors.Is(err, net.ErrClosed) || errors.Is(err, errDraining) || errors.Is(err, os.ErrDeadlineExceeded) || isEOF(err)
}
