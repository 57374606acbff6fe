package mcclient

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/repcache/repcache/internal/testenv"
)

var ctx = context.Background()

// memcached is a private memcached whose process a test can kill, stop and
// restart on the same port.
type memcached struct {
	addr string
	cmd  *exec.Cmd
}

func startMemcached(t *testing.T) *memcached {
	t.Helper()
	m := &memcached{addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(testenv.FreePort(t)))}
	m.start(t)
	return m
}

func (m *memcached) start(t *testing.T) {
	t.Helper()
	_, port, _ := net.SplitHostPort(m.addr)
	args := []string{"-l", "127.0.0.1", "-p", port, "-U", "0", "-t", "1"}
	if os.Geteuid() == 0 {
		args = append(args, "-u", "root")
	}
	m.cmd = testenv.Start(t, testenv.LookPath(t, "memcached", "memcached"), args, m.addr)
}

// kill sends SIGKILL and waits until the port refuses connections.
func (m *memcached) kill(t *testing.T) {
	t.Helper()
	m.cmd.Process.Kill()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		c, err := net.Dial("tcp", m.addr)
		if err != nil {
			return
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("memcached still accepts connections after SIGKILL")
		}
	}
}

// stop sends SIGSTOP and waits until the process is stopped; SIGCONT is
// sent when the test ends if cont was not called.
func (m *memcached) stop(t *testing.T) (cont func()) {
	t.Helper()
	if err := m.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", m.cmd.Process.Pid))
		if err == nil {
			if i := bytes.LastIndexByte(b, ')'); i > 0 && len(b) > i+2 && b[i+2] == 'T' {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("memcached did not stop after SIGSTOP")
		}
	}
	var once sync.Once
	cont = func() { once.Do(func() { m.cmd.Process.Signal(syscall.SIGCONT) }) }
	t.Cleanup(cont)
	return cont
}

// raw sends req on a plain connection and returns memcached's first reply line.
func raw(t *testing.T, addr, req string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("%q: %v", req, err)
	}
	return strings.TrimSuffix(line, "\r\n")
}

func newClient(t *testing.T, o Options) *Client {
	t.Helper()
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// A generous timeout for the functional tests: a loaded 2-core machine
// running -race must not turn a slow reply into a failure.
const slow = 5 * time.Second

func TestCommands(t *testing.T) {
	m := startMemcached(t)
	c := newClient(t, Options{Servers: []string{m.addr}, Timeout: slow})
	if _, _, err := c.Get(ctx, "k"); !errors.Is(err, ErrCacheMiss) {
		t.Fatalf("get of a missing key: %v", err)
	}
	if err := c.Store(ctx, Set, "k", []byte("v1"), 0, 0); err != nil {
		t.Fatal(err)
	}
	v, cas, err := c.Get(ctx, "k")
	if err != nil || string(v) != "v1" || cas == 0 {
		t.Fatalf("get = %q, %d, %v", v, cas, err)
	}
	if err := c.Store(ctx, Add, "k", []byte("x"), 0, 0); !errors.Is(err, ErrNotStored) {
		t.Fatalf("add over a live key: %v", err)
	}
	if err := c.Store(ctx, Replace, "nokey", []byte("x"), 0, 0); !errors.Is(err, ErrNotStored) {
		t.Fatalf("replace of a missing key: %v", err)
	}
	if err := c.Store(ctx, Set, "k", []byte("v2"), 0, cas+1); !errors.Is(err, ErrExists) {
		t.Fatalf("cas with a stale id: %v", err)
	}
	if err := c.Store(ctx, Set, "nokey", []byte("v2"), 0, cas); !errors.Is(err, ErrNotFound) {
		t.Fatalf("cas of a missing key: %v", err)
	}
	if err := c.Store(ctx, Set, "k", []byte("v2"), 0, cas); err != nil {
		t.Fatalf("cas with the right id: %v", err)
	}
	if v, _, err := c.Get(ctx, "k"); err != nil || string(v) != "v2" {
		t.Fatalf("after cas: %q, %v", v, err)
	}
	// exptime -1: stored already expired (the add's check is made first).
	if err := c.Store(ctx, Add, "born", []byte("x"), -1, 0); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Get(ctx, "born"); !errors.Is(err, ErrCacheMiss) {
		t.Fatalf("born-expired item is visible: %v", err)
	}
	if err := c.Store(ctx, Set, "ttl", []byte("x"), 1000, 0); err != nil {
		t.Fatal(err)
	}
	if line := raw(t, m.addr, "mg ttl t\r\n"); line != "HD t1000" && line != "HD t999" {
		t.Fatalf("exptime 1000 reached memcached as %q", line)
	}
	if err := c.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx, "k"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	// Binary-safe values, empty values, the largest key.
	long := strings.Repeat("k", 250)
	for _, val := range [][]byte{{}, []byte("a\r\nb\x00"), bytes.Repeat([]byte{0xff}, 100000)} {
		if err := c.Store(ctx, Set, long, val, 0, 0); err != nil {
			t.Fatal(err)
		}
		if v, _, err := c.Get(ctx, long); err != nil || !bytes.Equal(v, val) {
			t.Fatalf("value of %d bytes came back as %d bytes, %v", len(val), len(v), err)
		}
	}
	for _, k := range []string{"", long + "k", "a b", "a\nb", "\x00", "a\x7f"} {
		if err := c.Store(ctx, Set, k, nil, 0, 0); !errors.Is(err, ErrMalformedKey) {
			t.Errorf("key %.20q: %v, want ErrMalformedKey", k, err)
		}
	}
	if err := c.Store(ctx, Set, "big", make([]byte, 2<<20), 0, 0); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("2 MiB value: %v, want ErrTooLarge", err)
	}
	if err := c.Noop(ctx, m.addr); err != nil {
		t.Fatal(err)
	}
	if err := c.FlushAll(ctx, m.addr); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Get(ctx, long); !errors.Is(err, ErrCacheMiss) {
		t.Fatalf("after flush_all: %v", err)
	}
	if err := c.Noop(ctx, "127.0.0.1:1"); err == nil {
		t.Fatal("Noop to a server outside the pool succeeded")
	}
}
