package mcclient

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/repcache/repcache/internal/backoff"
)

// Many goroutines share two connections; every reply reaches the request
// it answers (run with -race).
func TestPipelineConcurrency(t *testing.T) {
	m := startMemcached(t)
	conns0 := stat(t, m.addr, "total_connections")
	c := newClient(t, Options{Servers: []string{m.addr}, Conns: 2, Timeout: slow})
	var wg sync.WaitGroup
	for g := range 32 {
		wg.Go(func() {
			for i := range 300 {
				k := fmt.Sprintf("g%d-k%d", g, i%20)
				v := fmt.Sprintf("g%d-v%d", g, i)
				if err := c.Store(ctx, Set, k, []byte(v), 0, 0); err != nil {
					t.Error(err)
					return
				}
				got, _, err := c.Get(ctx, k)
				if err != nil || string(got) != v {
					t.Errorf("get %s = %q, %v; want %q", k, got, err, v)
					return
				}
				if i%50 == 0 {
					if err := c.Delete(ctx, k); err != nil {
						t.Error(err)
						return
					}
					if _, _, err := c.Get(ctx, k); !errors.Is(err, ErrCacheMiss) {
						t.Errorf("get after delete: %v", err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	// memcached saw only the client's two connections (and the probes).
	if got := stat(t, m.addr, "total_connections") - conns0 - 1; got != 2 {
		t.Fatalf("memcached accepted %d connections from the client, want 2", got)
	}
}

// A sequential client's requests go out alone on an idle connection, and
// each caller reads its own reply: no reader goroutine, no hand-off.
func TestSequentialCallerReadsOwnReply(t *testing.T) {
	m := startMemcached(t)
	c := newClient(t, Options{Servers: []string{m.addr}, Timeout: slow})
	for i := range 200 {
		k, v := fmt.Sprint("k", i%7), fmt.Sprint("v", i)
		if err := c.Store(ctx, Set, k, []byte(v), 0, 0); err != nil {
			t.Fatal(err)
		}
		if got, _, err := c.Get(ctx, k); err != nil || string(got) != v {
			t.Fatalf("get %s = %q, %v; want %q", k, got, err, v)
		}
	}
	if n := waitConn(t, c).readers.Load(); n != 0 {
		t.Fatalf("%d reader goroutines started for a sequential client, want 0", n)
	}
}

// stat reads one memcached statistic.
func stat(t *testing.T, addr, name string) int {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(nc, "stats\r\n")
	r := bufio.NewReader(nc)
	for {
		line, err := r.ReadString('\n')
		if err != nil || line == "END\r\n" {
			t.Fatalf("stat %s not found (%v)", name, err)
		}
		var n int
		if _, err := fmt.Sscanf(line, "STAT "+name+" %d", &n); err == nil {
			return n
		}
	}
}

// proxy is a loopback TCP relay in front of a real memcached whose
// server-to-client direction a test controls. It stands in for the network
// faults a real memcached does not produce (replies split into pieces, cut
// off mid-reply, a peer that stops reading); the replies themselves are
// memcached's.
type proxy struct {
	ln      net.Listener
	backend string
	// shape relays one chunk of memcached's replies to the client; the
	// default copies it.
	shape func(client net.Conn, chunk []byte) error
	// hold, when set, keeps the proxy from reading the client's requests
	// until it is closed.
	hold chan struct{}
	mu   sync.Mutex
	open []net.Conn
}

func startProxy(t *testing.T, backend string, shape func(net.Conn, []byte) error, hold chan struct{}) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, backend: backend, shape: shape, hold: hold}
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, c := range p.open {
			c.Close()
		}
		p.mu.Unlock()
	})
	go func() {
		for {
			cl, err := ln.Accept()
			if err != nil {
				return
			}
			go p.relay(cl)
		}
	}()
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) relay(cl net.Conn) {
	be, err := net.Dial("tcp", p.backend)
	if err != nil {
		cl.Close()
		return
	}
	p.mu.Lock()
	p.open = append(p.open, cl, be)
	hold, shape := p.hold, p.shape
	p.mu.Unlock()
	go func() {
		if hold != nil {
			<-hold
		}
		io.Copy(be, cl)
		be.Close()
	}()
	buf := make([]byte, 64<<10)
	for {
		n, err := be.Read(buf)
		if n > 0 {
			var werr error
			if shape != nil {
				werr = shape(cl, buf[:n])
			} else {
				_, werr = cl.Write(buf[:n])
			}
			if werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	cl.Close()
	be.Close()
}

// Replies split into pieces of one to three bytes parse exactly as whole
// ones.
func TestSplitReplies(t *testing.T) {
	m := startMemcached(t)
	p := startProxy(t, m.addr, func(cl net.Conn, chunk []byte) error {
		for i := 0; i < len(chunk); {
			n := min(1+i%3, len(chunk)-i)
			if _, err := cl.Write(chunk[i : i+n]); err != nil {
				return err
			}
			i += n
			time.Sleep(20 * time.Microsecond)
		}
		return nil
	}, nil)
	c := newClient(t, Options{Servers: []string{p.addr()}, Conns: 1, Timeout: slow})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 30 {
				k, v := fmt.Sprintf("k%d-%d", g, i), strings.Repeat(fmt.Sprint(g), i*7)
				if err := c.Store(ctx, Set, k, []byte(v), 0, 0); err != nil {
					t.Error(err)
					return
				}
				if got, cas, err := c.Get(ctx, k); err != nil || string(got) != v || cas == 0 {
					t.Errorf("get %s = %q, %d, %v; want %q", k, got, cas, err, v)
					return
				}
			}
		})
	}
	wg.Wait()
}

// A reply cut off in the middle fails the requests on that connection
// (never a partial value) and the next request gets a new connection.
func TestTruncatedReply(t *testing.T) {
	m := startMemcached(t)
	var cut atomic.Bool
	p := startProxy(t, m.addr, func(cl net.Conn, chunk []byte) error {
		if cut.Load() && len(chunk) > 10 {
			cl.Write(chunk[:len(chunk)/2])
			return errors.New("cut")
		}
		_, err := cl.Write(chunk)
		return err
	}, nil)
	c := newClient(t, Options{Servers: []string{p.addr()}, Conns: 1, Timeout: slow, FailureLimit: 100})
	val := strings.Repeat("v", 1000)
	if err := c.Store(ctx, Set, "k", []byte(val), 0, 0); err != nil {
		t.Fatal(err)
	}
	cut.Store(true)
	got, _, err := c.Get(ctx, "k")
	if !errors.Is(err, io.ErrUnexpectedEOF) || got != nil {
		t.Fatalf("get through a cut reply = %d bytes, %v; want io.ErrUnexpectedEOF", len(got), err)
	}
	cut.Store(false)
	if got, _, err := c.Get(ctx, "k"); err != nil || string(got) != val {
		t.Fatalf("next get = %d bytes, %v", len(got), err)
	}
}

// fakeServer answers every request line with reply (followed by the data
// block's bytes read and dropped). A real memcached cannot answer out of
// step; this one stands in for a broken peer.
func fakeServer(t *testing.T, reply func(line string) string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer nc.Close()
				r := bufio.NewReader(nc)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					rep := reply(strings.TrimSuffix(line, "\r\n"))
					rep, hangUp := strings.CutSuffix(rep, hangUpAfter)
					if rep != "" {
						io.WriteString(nc, rep)
					}
					if hangUp {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// hangUpAfter, at the end of a fakeServer reply, closes the connection
// after it.
const hangUpAfter = "\x00hang up"

func TestOutOfStepReplyClosesConnection(t *testing.T) {
	addr := fakeServer(t, func(line string) string {
		if strings.HasPrefix(line, "mg ") {
			return "EN O999999\r\n"
		}
		return "MN\r\n"
	})
	c := newClient(t, Options{Servers: []string{addr}, Timeout: slow})
	_, _, err := c.Get(ctx, "k")
	var pe *ProtocolError
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("get with a reply for another request: %v", err)
	}
	if err := c.Noop(ctx, addr); err != nil {
		t.Fatalf("mn on a new connection: %v", err)
	}
}

// A server that accepts and never answers: the request fails with a
// timeout, from the stall timer when the context has no deadline.
func TestSilentServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var accepted []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			accepted = append(accepted, nc)
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		for _, nc := range accepted {
			nc.Close()
		}
		mu.Unlock()
	}()
	c := newClient(t, Options{Servers: []string{ln.Addr().String()}, Timeout: 200 * time.Millisecond})
	_, _, err = c.Get(ctx, "k")
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("get from a silent server: %v; want a timeout", err)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := c.Store(short, Set, "k", []byte("v"), 0, 0); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("set with a context deadline: %v", err)
	}
}

// While memcached is stopped, requests whose context ends give up; once it
// runs again the requests that waited get their own replies, not those of
// the abandoned ones ahead of them in the pipeline.
func TestStoppedServerAbandonedRequestsKeepStep(t *testing.T) {
	m := startMemcached(t)
	c := newClient(t, Options{Servers: []string{m.addr}, Conns: 1, Timeout: 30 * time.Second})
	for i := range 10 {
		if err := c.Store(ctx, Set, fmt.Sprint("k", i), []byte(fmt.Sprint("v", i)), 0, 0); err != nil {
			t.Fatal(err)
		}
	}
	cont := m.stop(t)
	for i := range 5 {
		short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		_, _, err := c.Get(short, fmt.Sprint("k", i))
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("get from a stopped memcached: %v", err)
		}
	}
	var wg sync.WaitGroup
	results := make([]string, 10)
	for i := 5; i < 10; i++ {
		wg.Go(func() {
			v, _, err := c.Get(ctx, fmt.Sprint("k", i))
			results[i] = fmt.Sprint(string(v), err)
		})
	}
	// Let the waiting gets reach the pipeline behind the abandoned ones.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		cn := c.servers[0].conns[0]
		cn.mu.Lock()
		n := len(cn.inflight)
		cn.mu.Unlock()
		if n == 10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d requests in flight, want 10", n)
		}
	}
	cont()
	wg.Wait()
	for i := 5; i < 10; i++ {
		if want := fmt.Sprint("v", i, "<nil>"); results[i] != want {
			t.Errorf("get k%d = %s, want %s", i, results[i], want)
		}
	}
}

// Requests queued while a write is in progress go out together in the next
// write: one write for many requests.
func TestWritesBatched(t *testing.T) {
	m := startMemcached(t)
	hold := make(chan struct{})
	p := startProxy(t, m.addr, nil, hold)
	c := newClient(t, Options{Servers: []string{p.addr()}, Conns: 1, Timeout: slow})
	// A value larger than the socket buffers keeps its writer in write()
	// until the proxy reads; memcached refuses it (over -I 1m).
	big := make([]byte, 8<<20)
	bigDone := make(chan error, 1)
	go func() { bigDone <- c.Store(ctx, Set, "big", big, 0, 0) }()
	cn := waitConn(t, c)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		cn.mu.Lock()
		n := len(cn.inflight)
		cn.mu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the big write never started")
		}
	}
	const n = 50
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if err := c.Store(ctx, Set, fmt.Sprint("k", i), []byte("v"), 0, 0); err != nil {
				t.Error(err)
			}
		})
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		cn.mu.Lock()
		q := len(cn.queue)
		cn.mu.Unlock()
		if q == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d requests queued, want %d", q, n)
		}
	}
	w0 := cn.writes.Load()
	close(hold)
	wg.Wait()
	if err := <-bigDone; !errors.Is(err, ErrTooLarge) {
		t.Fatalf("8 MiB set: %v", err)
	}
	// The big write, counted when it returns, and one for the 50.
	if w := cn.writes.Load() - w0; w != 2 {
		t.Fatalf("%d queued requests took %d writes, want 1", n, w-1)
	}
}

func waitConn(t *testing.T, c *Client) *conn {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		s := c.servers[0]
		s.mu.Lock()
		cn := s.conns[0]
		s.mu.Unlock()
		if cn != nil {
			return cn
		}
		if time.Now().After(deadline) {
			t.Fatal("no connection")
		}
	}
}

// memcached killed with requests in flight: every request returns (with
// an error or its reply), the server is marked down and answered for at
// once, then retried with backoff until it is back.
func TestKilledMidPipeline(t *testing.T) {
	m := startMemcached(t)
	c := newClient(t, Options{Servers: []string{m.addr}, Conns: 2, Timeout: time.Second})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var ok, failed atomic.Int64
	for g := range 16 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k := fmt.Sprintf("g%d-%d", g, i%10)
				if err := c.Store(ctx, Set, k, []byte(k), 0, 0); err != nil {
					failed.Add(1)
					continue
				}
				if v, _, err := c.Get(ctx, k); err == nil {
					if string(v) != k {
						t.Errorf("get %s = %q", k, v)
					}
					ok.Add(1)
				} else {
					failed.Add(1)
				}
			}
		})
	}
	for ok.Load() < 1000 {
		time.Sleep(time.Millisecond)
	}
	m.kill(t)
	for failed.Load() < 1000 {
		time.Sleep(time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if !c.Down(m.addr) {
		t.Fatal("the killed server is not marked down")
	}
	if _, _, err := c.Get(ctx, "k"); !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "refused") && !strings.Contains(err.Error(), "reset") && !strings.Contains(err.Error(), "EOF") {
		t.Fatalf("get from a server marked down: %v", err)
	}
	m.start(t)
	// Retried with backoff (at most 2s between tries by default).
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		err := c.Noop(ctx, m.addr)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not back after restart: %v", err)
		}
	}
	if c.Down(m.addr) {
		t.Fatal("still marked down after a reply")
	}
	if err := c.Store(ctx, Set, "k", []byte("v"), 0, 0); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d ok, %d failed", ok.Load(), failed.Load())
}

// memcached closing idle connections (-o idle_timeout) is not a server
// failure: the next request redials, and the server is never marked down.
// (The fake server closes after each reply: memcached's idle timeout takes
// seconds.)
func TestIdleCloseIsNotAFailure(t *testing.T) {
	addr := fakeServer(t, func(line string) string { return "MN\r\n" + hangUpAfter })
	c := newClient(t, Options{Servers: []string{addr}, Timeout: slow, FailureLimit: 1})
	for range 5 {
		if err := c.Noop(ctx, addr); err != nil {
			t.Fatal(err)
		}
		if c.Down(addr) {
			t.Fatal("an idle connection's close marked the server down")
		}
		cn := waitConn(t, c)
		cn.mu.Lock()
		nc := cn.nc
		cn.mu.Unlock()
		for !peerClosed(nc) {
			time.Sleep(time.Millisecond)
		}
		// Idle for longer than idleCheck: the next request checks the
		// connection before using it.
		time.Sleep(2 * idleCheck)
	}
}

// A reply announcing an absurd value size is refused before anything is
// allocated (a fake server: memcached never sends one).
func TestHugeValueSizeRefused(t *testing.T) {
	addr := fakeServer(t, func(line string) string {
		if f := strings.Fields(line); len(f) > 0 && f[0] == "mg" {
			return "VA 99999999999 c1 " + f[len(f)-1] + "\r\n"
		}
		return "MN\r\n"
	})
	c := newClient(t, Options{Servers: []string{addr}, Timeout: slow})
	var pe *ProtocolError
	if _, _, err := c.Get(ctx, "k"); !errors.As(err, &pe) {
		t.Fatalf("get with a 100 GB value announced: %v", err)
	}
}

// A server marked down is not dialed again before its retry is due, and
// each failed retry waits up to twice as long as the one before (a
// listener that hangs up on every connection stands in for a server that
// keeps failing).
func TestDownServerRetriedWithBackoff(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var accepts atomic.Int64
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			accepts.Add(1)
			nc.Close()
		}
	}()
	addr := ln.Addr().String()
	c := newClient(t, Options{Servers: []string{addr}, Timeout: slow, FailureLimit: 2,
		Retry: backoff.Policy{Base: time.Hour, Max: time.Hour}})
	for !c.Down(addr) {
		if err := c.Noop(ctx, addr); err == nil {
			t.Fatal("mn answered by a listener that hangs up")
		}
	}
	n := accepts.Load()
	for range 100 {
		if err := c.Noop(ctx, addr); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("request to a server marked down: %v", err)
		}
	}
	if got := accepts.Load(); got != n {
		t.Fatalf("%d connections while the server was down and not due for a retry", got-n)
	}

	// With short delays the retries happen, each failure doubling the
	// ceiling of the next delay.
	s := c.servers[0]
	s.mu.Lock()
	s.retry = backoff.Policy{Base: time.Millisecond, Max: time.Second}
	s.retryAt = time.Now()
	s.mu.Unlock()
	for attempt := 1; attempt <= 4; {
		c.Noop(ctx, addr)
		s.mu.Lock()
		a, wait := s.attempt, time.Until(s.retryAt)
		s.mu.Unlock()
		if a < attempt {
			time.Sleep(time.Millisecond)
			continue
		}
		if ceiling := s.retry.Ceiling(a); wait > ceiling {
			t.Fatalf("retry %d waits %v, more than its ceiling %v", a, wait, ceiling)
		}
		attempt = a + 1
	}
	if accepts.Load() <= n {
		t.Fatal("no retry reached the server")
	}
}
