package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/repcache/repcache/internal/testenv"
)

// The hostile and careless clients of issue 10, each against a freshly
// started binary with a 64 MiB store. Every case asserts the peak resident
// memory it adds (VmHWM) and what happens to the connection; none asserts
// a duration (the deadlines below only keep a broken server from hanging
// the test).

// caseBudget is the peak memory one case may add. The race detector's
// shadow memory multiplies every allocation, so a -race build gets more.
func caseBudget() int64 {
	if raceEnabled {
		return 8 * 32 << 20
	}
	return 32 << 20
}

const bigValue = 1_000_000 // a value just under the 1 MiB item limit

type hostileServer struct {
	p    *proc
	addr string
}

// startHostile starts the binary with a 64 MiB store and a 2 s idle
// timeout, or the one given.
func startHostile(t *testing.T, idle ...string) *hostileServer {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	timeout := "2s"
	if len(idle) > 0 {
		timeout = idle[0]
	}
	p := start(t, nil, "--listen", addr, "--admin.listen", "", "--cache.memory.max_bytes", "64MiB", "--limits.idle_timeout", timeout)
	p.waitListening(t, addr)
	return &hostileServer{p: p, addr: addr}
}

// hwm is the server's peak resident memory so far, in bytes.
func (s *hostileServer) hwm(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.p.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc/PID/status")
	return 0
}

func (s *hostileServer) dial(t *testing.T) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(2 * time.Minute)) // a hang guard, not an assertion
	return c
}

// preload stores n values of bigValue bytes as big0..big<n-1> and returns
// the keys the store kept (a 64 MiB store may evict some of them).
func (s *hostileServer) preload(t *testing.T, n int) []string {
	t.Helper()
	c := s.dial(t)
	defer c.Close()
	r := bufio.NewReader(c)
	v := bytes.Repeat([]byte("v"), bigValue)
	for i := 0; i < n; i++ {
		fmt.Fprintf(c, "set big%d 0 0 %d\r\n%s\r\n", i, bigValue, v)
		if l, _ := r.ReadString('\n'); l != "STORED\r\n" {
			t.Fatalf("set big%d: %q", i, l)
		}
	}
	var kept []string
	for i := 0; i < n; i++ {
		fmt.Fprintf(c, "mg big%d\r\n", i)
		if l, _ := r.ReadString('\n'); l == "HD\r\n" {
			kept = append(kept, fmt.Sprintf("big%d", i))
		}
	}
	if len(kept) == 0 {
		t.Fatal("the store kept none of the values")
	}
	return kept
}

// readValues reads a get reply to the END line and returns how many values
// it held, checking each one's size.
func readValues(t *testing.T, r *bufio.Reader) int {
	t.Helper()
	n := 0
	for {
		l, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("after %d values: %v", n, err)
		}
		if l == "END\r\n" {
			return n
		}
		var key string
		var flags, size int
		if _, err := fmt.Sscanf(l, "VALUE %s %d %d\r\n", &key, &flags, &size); err != nil || size != bigValue {
			t.Fatalf("value line %q", l)
		}
		if _, err := r.Discard(size + 2); err != nil {
			t.Fatal(err)
		}
		n++
	}
}

func (s *hostileServer) within(t *testing.T, before int64, what string) {
	t.Helper()
	added := s.hwm(t) - before
	t.Logf("%s: peak RSS +%.1f MiB", what, float64(added)/(1<<20))
	if added > caseBudget() {
		t.Errorf("%s added %.1f MiB to the peak RSS; at most %d MiB", what, float64(added)/(1<<20), caseBudget()>>20)
	}
}

// One get of 500 large values (the stored ones in rotation: a 64 MiB store
// holds no 500 distinct 1 MB values) streams: the server's peak memory
// grows by far less than the 500 MB reply.
func TestHostileManyLargeValues(t *testing.T) {
	s := startHostile(t)
	keys := s.preload(t, 30)
	var line []string
	for i := 0; len(line) < 500; i++ {
		line = append(line, keys[i%len(keys)])
	}
	before := s.hwm(t)
	c := s.dial(t)
	fmt.Fprintf(c, "get %s\r\n", strings.Join(line, " "))
	if n := readValues(t, bufio.NewReader(c)); n != 500 {
		t.Fatalf("got %d values, want 500", n)
	}
	s.within(t, before, "get of 500 large values")
}

// The same large key 1,000 times in one line: answered 1,000 times, never
// copied per repeat into one reply.
func TestHostileRepeatedKey(t *testing.T) {
	s := startHostile(t)
	key := s.preload(t, 1)[0]
	before := s.hwm(t)
	c := s.dial(t)
	fmt.Fprintf(c, "get%s\r\n", strings.Repeat(" "+key, 1000))
	if n := readValues(t, bufio.NewReader(c)); n != 1000 {
		t.Fatalf("got %d values, want 1000", n)
	}
	s.within(t, before, "get of one large key 1,000 times")
}

// 300 connections that each read a large value and then stay open hold no
// large buffer each.
func TestHostileIdleAfterLargeRead(t *testing.T) {
	s := startHostile(t, "10m") // the idle connections must outlive the test, however slow the machine
	key := s.preload(t, 1)[0]
	before := s.hwm(t)
	for i := 0; i < 300; i++ {
		c := s.dial(t)
		fmt.Fprintf(c, "get %s\r\n", key)
		if n := readValues(t, bufio.NewReader(c)); n != 1 {
			t.Fatalf("connection %d: %d values", i, n)
		}
	}
	s.within(t, before, "300 idle connections after a large read each")
	// The preload connection's close may still be on its way.
	s.waitConnections(t, 301, "the 300 idle connections and this one")
}

// waitConnections waits until the server counts want open connections (the
// stats connection included).
func (s *hostileServer) waitConnections(t *testing.T, want int, what string) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		n := s.currConnections(t)
		if n == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("curr_connections = %d, want %d (%s)", n, want, what)
		}
	}
}

func (s *hostileServer) currConnections(t *testing.T) int {
	t.Helper()
	c, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Minute))
	fmt.Fprintf(c, "stats\r\n")
	r := bufio.NewReader(c)
	for {
		l, err := r.ReadString('\n')
		if err != nil || l == "END\r\n" {
			t.Fatalf("no curr_connections in stats (%v)", err)
		}
		if v, ok := strings.CutPrefix(l, "STAT curr_connections "); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
}

// A client that sends gets and never reads the replies is cut once the
// server's writes make no progress for idle_timeout, and its slot is freed.
func TestHostileNeverReads(t *testing.T) {
	s := startHostile(t)
	key := s.preload(t, 1)[0]
	before := s.hwm(t)
	c := s.dial(t)
	go fmt.Fprint(c, strings.Repeat("get "+key+"\r\n", 200)) // may block: nobody reads
	s.waitConnections(t, 1, "the connection that reads nothing must be closed")
	s.within(t, before, "a client that never reads")
	s.p.waitLog(t, "stopped reading its replies", 1)
}

// A client that sends nothing is cut by the idle timeout (once: the log
// says so a single time).
func TestHostileSilentClient(t *testing.T) {
	s := startHostile(t)
	c := s.dial(t)
	if n, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("read from a silent connection = %d, %v; want EOF (closed by the server)", n, err)
	}
	s.waitConnections(t, 1, "the silent connection must be closed")
	s.p.waitLog(t, "closed idle connection", 1)
	if got := strings.Count(s.p.out.String(), "closed idle connection"); got != 1 {
		t.Errorf("%d 'closed idle connection' log lines, want 1:\n%s", got, s.p.out.String())
	}
}

// Completed replies are sent before the server waits for the rest of an
// incomplete request.
func TestHostileNoReplyHeldBack(t *testing.T) {
	s := startHostile(t)
	c := s.dial(t)
	r := bufio.NewReader(c)
	fmt.Fprint(c, "get a\r\nget b")
	if l, err := r.ReadString('\n'); l != "END\r\n" {
		t.Fatalf("reply to the complete get = %q, %v; want END", l, err)
	}
	fmt.Fprint(c, "\r\n")
	if l, _ := r.ReadString('\n'); l != "END\r\n" {
		t.Fatalf("reply to the completed second get = %q", l)
	}
	// memcached's issue_70: a length it refuses is answered at once, without
	// waiting for data that will not come.
	fmt.Fprint(c, "set k 0 0 2147483647\r\nxx")
	if l, _ := r.ReadString('\n'); l != "CLIENT_ERROR bad command line format\r\n" {
		t.Fatalf("reply to set with length 2147483647 = %q", l)
	}
}

// The meta commands that need per-item state reach the embedded store
// through every layer (policy, tiers) of the real binary.
func TestMetaStateThroughTheBinary(t *testing.T) {
	s := startHostile(t)
	c := s.dial(t)
	r := bufio.NewReader(c)
	fmt.Fprint(c, "ma ctr N0 J5 v\r\nmg viv N30 s\r\nmg viv s\r\nms inv 1 T100\r\nx\r\nmd inv I\r\nmg inv v\r\nmd inv C1\r\nmn\r\n")
	want := "VA 1\r\n5\r\nHD s0 W\r\nHD s0 Z\r\nHD\r\nHD\r\nVA 1 X W\r\nx\r\nEX\r\nMN\r\n"
	var got strings.Builder
	for !strings.HasSuffix(got.String(), "MN\r\n") {
		l, err := r.ReadString('\n')
		got.WriteString(l)
		if err != nil {
			t.Fatalf("after %q: %v", got.String(), err)
		}
	}
	if got.String() != want {
		t.Fatalf("replies %q, want %q", got.String(), want)
	}
}
