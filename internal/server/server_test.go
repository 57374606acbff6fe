package server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/repcache/repcache/internal/protocol"
	"github.com/repcache/repcache/internal/store/memory"
	"github.com/repcache/repcache/internal/testenv"
)

// testWithClient runs the same gomemcache round trips against a server,
// in the manner of gomemcache's own suite; it runs against repcache and
// against memcached so that both are held to one standard.
func testWithClient(t *testing.T, c *memcache.Client) {
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(c.Set(&memcache.Item{Key: "foo", Value: []byte("fooval"), Flags: 123}))
	it, err := c.Get("foo")
	must(err)
	if string(it.Value) != "fooval" || it.Flags != 123 {
		t.Fatalf("get foo = %q flags %d", it.Value, it.Flags)
	}
	if err := c.Add(&memcache.Item{Key: "foo", Value: []byte("x")}); !errors.Is(err, memcache.ErrNotStored) {
		t.Fatalf("add existing: %v", err)
	}
	must(c.Add(&memcache.Item{Key: "bar", Value: []byte("barval")}))
	if err := c.Replace(&memcache.Item{Key: "nope", Value: []byte("x")}); !errors.Is(err, memcache.ErrNotStored) {
		t.Fatalf("replace missing: %v", err)
	}
	must(c.Append(&memcache.Item{Key: "bar", Value: []byte("++")}))
	must(c.Prepend(&memcache.Item{Key: "bar", Value: []byte("--")}))
	m, err := c.GetMulti([]string{"foo", "bar", "missing"})
	must(err)
	if len(m) != 2 || string(m["bar"].Value) != "--barval++" {
		t.Fatalf("GetMulti = %v", m)
	}
	it, _ = c.Get("foo")
	it.Value = []byte("changed")
	must(c.CompareAndSwap(it))
	it.Value = []byte("stale")
	if err := c.CompareAndSwap(it); !errors.Is(err, memcache.ErrCASConflict) {
		t.Fatalf("stale CAS: %v", err)
	}
	must(c.Delete("foo"))
	if _, err := c.Get("foo"); !errors.Is(err, memcache.ErrCacheMiss) {
		t.Fatalf("get deleted: %v", err)
	}
	must(c.Set(&memcache.Item{Key: "num", Value: []byte("42")}))
	if n, err := c.Increment("num", 8); n != 50 || err != nil {
		t.Fatalf("incr = %d, %v", n, err)
	}
	if n, err := c.Decrement("num", 100); n != 0 || err != nil {
		t.Fatalf("decr = %d, %v", n, err)
	}
	must(c.Touch("num", 100))
	must(c.Set(&memcache.Item{Key: "ttl", Value: []byte("v"), Expiration: -1}))
	if _, err := c.Get("ttl"); !errors.Is(err, memcache.ErrCacheMiss) {
		t.Fatalf("negative expiration was visible: %v", err)
	}
	big := strings.Repeat("x", 512<<10)
	must(c.Set(&memcache.Item{Key: "big", Value: []byte(big)}))
	if it, err := c.Get("big"); err != nil || len(it.Value) != len(big) {
		t.Fatalf("big value: %v", err)
	}
	if err := c.Set(&memcache.Item{Key: "huge", Value: make([]byte, 2<<20)}); err == nil {
		t.Fatal("a 2 MiB value was stored")
	}
	must(c.Ping())
	must(c.FlushAll())
	if _, err := c.Get("bar"); !errors.Is(err, memcache.ErrCacheMiss) {
		t.Fatalf("get after flush: %v", err)
	}
}

func TestGomemcacheClient(t *testing.T) {
	t.Run("repcache", func(t *testing.T) {
		testWithClient(t, memcache.New(startServer(t, Options{MaxConnections: 100})))
	})
	t.Run("memcached", func(t *testing.T) {
		testWithClient(t, memcache.New(testenv.Memcached(t)))
	})
}

func dial(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c, bufio.NewReader(c)
}

func roundTrip(t *testing.T, c net.Conn, r *bufio.Reader, req string) string {
	t.Helper()
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("after %q: %v", req, err)
	}
	return line
}

func TestMaxConnections(t *testing.T) {
	addr := startServer(t, Options{MaxConnections: 2})
	c1, r1 := dial(t, addr)
	c2, r2 := dial(t, addr)
	roundTrip(t, c1, r1, "version\r\n")
	roundTrip(t, c2, r2, "version\r\n")
	_, r3 := dial(t, addr)
	got, _ := io.ReadAll(r3)
	if string(got) != "ERROR Too many open connections\r\n" {
		t.Fatalf("third connection got %q", got)
	}
	c1.Close()
	// The slot frees up once the server has seen the close.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, r := dial(t, addr)
		if line := roundTrip(t, c, r, "version\r\n"); strings.HasPrefix(line, "VERSION") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("connection slot never freed")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestIdleTimeoutCutsStalledClient(t *testing.T) {
	addr := startServer(t, Options{MaxConnections: 10, IdleTimeout: 200 * time.Millisecond})
	for _, partial := range []string{"", "get a", "set a 0 0 10\r\nabc"} {
		c, r := dial(t, addr)
		io.WriteString(c, partial)
		if _, err := r.ReadByte(); !errors.Is(err, io.EOF) {
			t.Fatalf("stalled client after %q: %v, want EOF", partial, err)
		}
	}
}

func TestUnixSocket(t *testing.T) {
	st, _ := memory.New(memory.Options{MaxBytes: 8 << 20})
	defer st.Close()
	srv := New(Options{})
	path := filepath.Join(t.TempDir(), "repcache.sock")
	ln, err := Listen("unix:"+path, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln, protocol.NewHandler(st, protocol.Options{}))
	defer srv.Shutdown(context.Background())
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	io.WriteString(c, "set k 0 0 2\r\nhi\r\nget k\r\n")
	var got strings.Builder
	for range 4 {
		l, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		got.WriteString(l)
	}
	if got.String() != "STORED\r\nVALUE k 0 2\r\nhi\r\nEND\r\n" {
		t.Fatalf("over unix socket: %q", got.String())
	}
	// A second server refuses to steal a live socket.
	if _, err := Listen("unix:"+path, 0o600); err == nil {
		t.Fatal("listened on a socket another server is serving")
	}
}

func TestShutdownFinishesBufferedRequests(t *testing.T) {
	addr, srv := startServerWith(t, Options{MaxConnections: 10}, protocol.Options{})
	c, r := dial(t, addr)
	roundTrip(t, c, r, "version\r\n")
	// An idle connection and one with a whole pipeline already sent.
	idle, idleR := dial(t, addr)
	roundTrip(t, idle, idleR, "version\r\n")
	var req strings.Builder
	for i := 0; i < 200; i++ {
		fmt.Fprintf(&req, "set k%d 0 0 1\r\nx\r\n", i)
	}
	io.WriteString(c, req.String())
	time.Sleep(50 * time.Millisecond) // let the pipeline reach the server's buffer
	done := make(chan error)
	go func() { done <- srv.Shutdown(context.Background()) }()
	stored := 0
	for {
		l, err := r.ReadString('\n')
		if err != nil {
			break
		}
		if l == "STORED\r\n" {
			stored++
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if stored != 200 {
		t.Fatalf("%d of 200 pipelined requests answered during shutdown", stored)
	}
	if _, err := idleR.ReadByte(); err == nil {
		t.Fatal("idle connection still open after shutdown")
	}
	if _, err := net.Dial("tcp", addr); err == nil {
		t.Fatal("still accepting after shutdown")
	}
}

// TestBadInputFlood sends malformed input on many connections while a
// well-behaved client keeps working.
func TestBadInputFlood(t *testing.T) {
	addr := startServer(t, Options{MaxConnections: 100, IdleTimeout: 2 * time.Second})
	junk := []string{
		"\x80\x00\x00\x00",
		"set a 0 0 99999999999\r\n",
		"set a 0 0 1048000\r\nshort",
		strings.Repeat("z", 5000),
		"get " + strings.Repeat("k ", 5000),
		"GET / HTTP/1.0\r\n\r\n",
		"ms k 5 " + strings.Repeat("O ", 30) + "\r\n",
		"\r\n\r\n\x00\x00\r\n",
	}
	var wg sync.WaitGroup
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c, err := net.Dial("tcp", addr)
			if err != nil {
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(3 * time.Second))
			io.WriteString(c, junk[i%len(junk)])
			io.Copy(io.Discard, c)
		}(i)
	}
	good := memcache.New(addr)
	for i := 0; i < 200; i++ {
		key := fmt.Sprint("good", i)
		if err := good.Set(&memcache.Item{Key: key, Value: []byte("v")}); err != nil {
			t.Fatalf("good client set during flood: %v", err)
		}
		if _, err := good.Get(key); err != nil {
			t.Fatalf("good client get during flood: %v", err)
		}
	}
	wg.Wait()
}

func TestBinaryProtocolIsClosed(t *testing.T) {
	addr := startServer(t, Options{MaxConnections: 10})
	c, r := dial(t, addr)
	c.Write([]byte{0x80, 0x00, 0x00, 0x05, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 'h', 'e', 'l', 'l', 'o'})
	if b, err := io.ReadAll(r); err != nil || len(b) != 0 {
		t.Fatalf("binary request got %q, %v; want a silent close", b, err)
	}
}

func TestDelayedFlush(t *testing.T) {
	addr := startServer(t, Options{MaxConnections: 10})
	c, r := dial(t, addr)
	if l := roundTrip(t, c, r, "set k 0 0 1\r\nx\r\n"); l != "STORED\r\n" {
		t.Fatal(l)
	}
	if l := roundTrip(t, c, r, "flush_all 1\r\n"); l != "OK\r\n" {
		t.Fatal(l)
	}
	if l := roundTrip(t, c, r, "get k\r\n"); l != "VALUE k 0 1\r\n" {
		t.Fatalf("flushed before the delay: %q", l)
	}
	r.ReadString('\n')
	r.ReadString('\n')
	deadline := time.Now().Add(10 * time.Second)
	for roundTrip(t, c, r, "get k\r\n") != "END\r\n" {
		r.ReadString('\n')
		r.ReadString('\n')
		if time.Now().After(deadline) {
			t.Fatal("delayed flush_all never happened")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
