package memcached

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/repcache/repcache/internal/mcclient"
	"github.com/repcache/repcache/internal/store"
	"github.com/repcache/repcache/internal/store/storetest"
	"github.com/repcache/repcache/internal/testenv"
)

var ctx = context.Background()

// Functional tests use a generous timeout: a loaded 2-core machine running
// -race must not turn a slow reply into a failure. The failure tests set
// their own.
const testTimeout = 2 * time.Second

func newStore(t *testing.T, addr string, timeout time.Duration) *Store {
	t.Helper()
	s, err := New(Options{Servers: []string{addr}, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// startMemcached is testenv.Memcached, returning the process too so a test
// can kill or stop it.
func startMemcached(t *testing.T) (string, *exec.Cmd) {
	t.Helper()
	bin := testenv.LookPath(t, "memcached", "memcached")
	port := strconv.Itoa(testenv.FreePort(t))
	args := []string{"-l", "127.0.0.1", "-p", port, "-U", "0", "-t", "1"}
	if os.Geteuid() == 0 {
		args = append(args, "-u", "root")
	}
	addr := net.JoinHostPort("127.0.0.1", port)
	return addr, testenv.Start(t, bin, args, addr)
}

// kill stops memcached for good and waits until its port refuses
// connections.
func kill(t *testing.T, cmd *exec.Cmd, addr string) {
	t.Helper()
	cmd.Process.Kill()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("memcached still accepts connections after SIGKILL")
		}
	}
}

// raw sends one request to memcached over a plain connection and returns
// the first reply line, bypassing repcache and gomemcache.
func raw(t *testing.T, addr, req string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("%q: %v", req, err)
	}
	return strings.TrimSuffix(line, "\r\n")
}

// remoteTTL returns memcached's own idea of key's remaining lifetime
// (meta get "t" flag: -1 for none), or ok false if memcached does not hold it.
func remoteTTL(t *testing.T, addr, key string) (ttl int64, ok bool) {
	t.Helper()
	line := raw(t, addr, "mg "+key+" t\r\n")
	if line == "EN" {
		return 0, false
	}
	f := strings.Fields(line)
	if len(f) != 2 || f[0] != "HD" || !strings.HasPrefix(f[1], "t") {
		t.Fatalf("mg %s t: %q", key, line)
	}
	n, err := strconv.ParseInt(f[1][1:], 10, 64)
	if err != nil {
		t.Fatalf("mg %s t: %q", key, line)
	}
	return n, true
}

func TestConformance(t *testing.T) {
	addr := testenv.Memcached(t)
	storetest.Run(t, func(t *testing.T) store.Store {
		s := newStore(t, addr, testTimeout)
		if err := s.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestExptime(t *testing.T) {
	const now = 1_800_000_000
	for _, c := range []struct {
		deadline int64
		exp      int32
		born     bool
	}{
		{0, 0, false},
		{now - 100, -1, true},
		{now, -1, true},
		{-5, -1, true},
		{now + 1, 1, false},
		{now + store.MaxRelativeTTL, store.MaxRelativeTTL, false},
		{now + store.MaxRelativeTTL + 1, now + store.MaxRelativeTTL + 1, false},
		{now + 40*86400, now + 40*86400, false},
		{1 << 40, 1<<31 - 1, false},
	} {
		exp, born := exptime(c.deadline, now)
		if exp != c.exp || born != c.born {
			t.Errorf("exptime(%d) = %d, %v; want %d, %v", c.deadline, exp, born, c.exp, c.born)
		}
	}
}

func TestRemoteKey(t *testing.T) {
	long := func(c byte, n int) []byte { return bytes.Repeat([]byte{c}, n) }
	ctl186 := append(long('a', 185), '\x10')
	ctl187 := append(long('a', 186), '\x10')
	cases := []struct {
		key  []byte
		kind string // "plain", "b64", "digest"
	}{
		{[]byte("verify:user@example.com"), "plain"},
		{[]byte("caf\xc3\xa9"), "plain"},
		{long('k', 250), "plain"},
		{long('k', 251), "digest"},
		{[]byte(""), "b64"},
		{[]byte("a b"), "b64"},
		{[]byte("\x10\x10\x10\x10\x10\x10\x10\x10key"), "b64"},
		{[]byte("a\x7f"), "b64"},
		{[]byte("\xffplain"), "b64"},
		{[]byte("\xff"), "b64"},
		{ctl186, "b64"},
		{ctl187, "digest"},
		{long(' ', 70000), "digest"},
	}
	seen := map[string]string{}
	for _, c := range cases {
		rk := remoteKey(c.key)
		kind := "plain"
		switch {
		case strings.HasPrefix(rk, "\xff#"):
			kind = "digest"
		case strings.HasPrefix(rk, "\xff"):
			kind = "b64"
		}
		if kind != c.kind {
			t.Errorf("remoteKey(%.40q) = %.60q (%s), want %s", c.key, rk, kind, c.kind)
		}
		if kind == "plain" && rk != string(c.key) {
			t.Errorf("plain key %.40q changed to %.40q", c.key, rk)
		}
		if len(rk) == 0 || len(rk) > 250 || !mcclient.ValidKey(rk) {
			t.Errorf("remoteKey(%.40q) = %.60q: the protocol cannot carry it", c.key, rk)
		}
		if prev, dup := seen[rk]; dup {
			t.Errorf("keys %.40q and %.40q both map to %.60q", prev, c.key, rk)
		}
		seen[rk] = string(c.key)
	}
}

// Keys the protocol cannot carry are stored under their encoded form, and
// nothing collides.
func TestOddKeys(t *testing.T) {
	s := newStore(t, testenv.Memcached(t), testTimeout)
	keys := []string{"plain", "\xffplain", "a b", "a\r\nb", "\x00", "a\x7f", strings.Repeat("x", 250), strings.Repeat("x", 251), strings.Repeat("x", 252), strings.Repeat(" ", 1000)}
	for i, k := range keys {
		if _, err := s.Store(ctx, store.Set, store.Item{Key: []byte(k), Value: []byte(strconv.Itoa(i))}, 0); err != nil {
			t.Fatalf("set %.20q: %v", k, err)
		}
	}
	for i, k := range keys {
		it, err := s.Get(ctx, []byte(k), nil, 0)
		if err != nil || string(it.Value) != strconv.Itoa(i) || string(it.Key) != k {
			t.Fatalf("get %.20q = %q, %v; want %d", k, it.Value, err, i)
		}
	}
}

// The point of repcache: a 40-day lifetime must reach memcached as an
// absolute time (a relative exptime over 30 days would mean 1970).
func TestLongDeadlineInMemcached(t *testing.T) {
	addr := testenv.Memcached(t)
	s := newStore(t, addr, testTimeout)
	now := time.Now().Unix()
	for _, c := range []struct {
		key  string
		life int64
	}{{"d40", 40 * 86400}, {"d10", 10 * 86400}, {"d30", store.MaxRelativeTTL}, {"d400", 400 * 86400}} {
		if _, err := s.Store(ctx, store.Set, store.Item{Key: []byte(c.key), Value: []byte("v"), Deadline: now + c.life}, now); err != nil {
			t.Fatal(err)
		}
		ttl, ok := remoteTTL(t, addr, c.key)
		if !ok || ttl < c.life-10 || ttl > c.life+10 {
			t.Fatalf("%s: memcached holds it: %v, ttl %d; want ~%d", c.key, ok, ttl, c.life)
		}
		it, err := s.Get(ctx, []byte(c.key), nil, now+c.life-1)
		if err != nil || it.Deadline != now+c.life {
			t.Fatalf("%s: Get = %+v, %v", c.key, it, err)
		}
	}
	// Touch carries the deadline to memcached too.
	if _, err := s.Touch(ctx, []byte("d10"), now+50*86400, nil, now); err != nil {
		t.Fatal(err)
	}
	if ttl, ok := remoteTTL(t, addr, "d10"); !ok || ttl < 50*86400-10 || ttl > 50*86400+10 {
		t.Fatalf("after touch: %v, ttl %d", ok, ttl)
	}
	if _, err := s.Store(ctx, store.Set, store.Item{Key: []byte("forever"), Value: []byte("v")}, now); err != nil {
		t.Fatal(err)
	}
	if ttl, ok := remoteTTL(t, addr, "forever"); !ok || ttl != -1 {
		t.Fatalf("no deadline: %v, ttl %d; want -1", ok, ttl)
	}
}

// A write whose deadline has passed removes the old record from memcached,
// after the mode's own check.
func TestBornExpired(t *testing.T) {
	addr := testenv.Memcached(t)
	s := newStore(t, addr, testTimeout)
	now := time.Now().Unix()
	set := func(mode store.Mode, key, val string, deadline int64, cas uint64) (uint64, error) {
		return s.Store(ctx, mode, store.Item{Key: []byte(key), Value: []byte(val), Deadline: deadline, CAS: cas}, now)
	}
	gone := func(key string) {
		t.Helper()
		if _, ok := remoteTTL(t, addr, key); ok {
			t.Fatalf("memcached still holds %q", key)
		}
		if _, err := s.Get(ctx, []byte(key), nil, now); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Get(%q): %v, want ErrNotFound", key, err)
		}
	}
	for _, k := range []string{"set", "add", "replace", "cas", "touch"} {
		if _, err := set(store.Set, k, "old", 0, 0); err != nil {
			t.Fatal(err)
		}
	}
	if cas, err := set(store.Set, "set", "new", now-1, 0); err != nil || cas == 0 {
		t.Fatalf("born-expired set = %d, %v", cas, err)
	}
	gone("set")
	if _, err := set(store.Set, "never-there", "new", now, 0); err != nil {
		t.Fatalf("born-expired set of a missing key: %v", err)
	}
	gone("never-there")

	if _, err := set(store.Add, "add", "new", now-1, 0); !errors.Is(err, store.ErrNotStored) {
		t.Fatalf("born-expired add over a live record: %v, want ErrNotStored", err)
	}
	if it, err := s.Get(ctx, []byte("add"), nil, now); err != nil || string(it.Value) != "old" {
		t.Fatalf("refused add changed the record: %q, %v", it.Value, err)
	}
	if _, err := set(store.Add, "add-missing", "new", now-1, 0); err != nil {
		t.Fatalf("born-expired add: %v", err)
	}
	gone("add-missing")

	if _, err := set(store.Replace, "replace-missing", "new", now-1, 0); !errors.Is(err, store.ErrNotStored) {
		t.Fatalf("born-expired replace of a missing key: %v, want ErrNotStored", err)
	}
	if _, err := set(store.Replace, "replace", "new", now-1, 0); err != nil {
		t.Fatal(err)
	}
	gone("replace")

	it, _ := s.Get(ctx, []byte("cas"), nil, now)
	if _, err := set(store.CAS, "cas", "new", now-1, it.CAS+1); !errors.Is(err, store.ErrExists) {
		t.Fatalf("born-expired cas with a stale unique: %v, want ErrExists", err)
	}
	if _, err := set(store.CAS, "cas", "new", now-1, it.CAS); err != nil {
		t.Fatal(err)
	}
	gone("cas")

	// A touch into the past answers with the item once.
	if it, err := s.Touch(ctx, []byte("touch"), now-1, nil, now); err != nil || string(it.Value) != "old" {
		t.Fatalf("touch into the past = %q, %v", it.Value, err)
	}
	gone("touch")
}

// The caller's clock decides expiry, so an add succeeds over a record
// memcached still holds but the caller sees as expired.
func TestAddOverRecordExpiredByCallerClock(t *testing.T) {
	s := newStore(t, testenv.Memcached(t), testTimeout)
	now := time.Now().Unix()
	if _, err := s.Store(ctx, store.Set, store.Item{Key: []byte("k"), Value: []byte("old"), Deadline: now + 100}, now); err != nil {
		t.Fatal(err)
	}
	later := now + 200
	if _, err := s.Store(ctx, store.Add, store.Item{Key: []byte("k"), Value: []byte("new")}, later); err != nil {
		t.Fatalf("add over expired record: %v", err)
	}
	if it, err := s.Get(ctx, []byte("k"), nil, later); err != nil || string(it.Value) != "new" || it.Deadline != 0 {
		t.Fatalf("Get = %+v, %v", it, err)
	}
	if _, err := s.Store(ctx, store.Add, store.Item{Key: []byte("k"), Value: []byte("again")}, later); !errors.Is(err, store.ErrNotStored) {
		t.Fatalf("add over a live record: %v", err)
	}
}

// A value written by another client is an error for that request, and the
// store goes on serving.
func TestForeignValue(t *testing.T) {
	addr := testenv.Memcached(t)
	s := newStore(t, addr, testTimeout)
	if line := raw(t, addr, "set foreign 0 0 5\r\nhello\r\n"); line != "STORED" {
		t.Fatal(line)
	}
	if line := raw(t, addr, "set short 0 0 0\r\n\r\n"); line != "STORED" {
		t.Fatal(line)
	}
	for _, key := range []string{"foreign", "short"} {
		_, err := s.Get(ctx, []byte(key), nil, 0)
		var me *Error
		if !errors.Is(err, store.ErrMalformedEnvelope) || !errors.As(err, &me) || me.Server != addr ||
			!strings.HasPrefix(err.Error(), "memcached get "+addr+": store: malformed envelope: ") {
			t.Fatalf("Get(%s): %v; want a malformed envelope *Error naming %s", key, err, addr)
		}
	}
	for name, err := range map[string]error{
		"incr": func() error { _, err := s.Incr(ctx, []byte("foreign"), store.IncrOptions{Delta: 1}, 0); return err }(),
		"append": func() error {
			_, err := s.Store(ctx, store.Append, store.Item{Key: []byte("foreign"), Value: []byte("x")}, 0)
			return err
		}(),
		"cas": func() error {
			_, err := s.Store(ctx, store.CAS, store.Item{Key: []byte("foreign"), CAS: 1}, 0)
			return err
		}(),
		"touch": func() error { _, err := s.Touch(ctx, []byte("foreign"), 0, nil, 0); return err }(),
	} {
		if !errors.Is(err, store.ErrMalformedEnvelope) {
			t.Errorf("%s over a foreign value: %v", name, err)
		}
	}
	if _, err := s.Store(ctx, store.Set, store.Item{Key: []byte("mine"), Value: []byte("v")}, 0); err != nil {
		t.Fatal(err)
	}
	if it, err := s.Get(ctx, []byte("mine"), nil, 0); err != nil || string(it.Value) != "v" {
		t.Fatalf("next request: %q, %v", it.Value, err)
	}
	// A set replaces the foreign value; delete removes one.
	if _, err := s.Store(ctx, store.Set, store.Item{Key: []byte("foreign"), Value: []byte("v")}, 0); err != nil {
		t.Fatal(err)
	}
	if it, err := s.Get(ctx, []byte("foreign"), nil, 0); err != nil || string(it.Value) != "v" {
		t.Fatalf("after set: %q, %v", it.Value, err)
	}
	if err := s.Delete(ctx, []byte("short"), store.DeleteOptions{}, 0); err != nil {
		t.Fatal(err)
	}
}

func TestSizeLimits(t *testing.T) {
	s := newStore(t, testenv.Memcached(t), testTimeout)
	big := make([]byte, 1<<20)
	if _, err := s.Store(ctx, store.Set, store.Item{Key: []byte("big"), Value: big}, 0); !errors.Is(err, store.ErrTooLarge) {
		t.Fatalf("1 MiB value on a memcached -I 1m: %v, want ErrTooLarge", err)
	}
	half := big[:600<<10]
	if _, err := s.Store(ctx, store.Set, store.Item{Key: []byte("half"), Value: half}, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Store(ctx, store.Append, store.Item{Key: []byte("half"), Value: half}, 0); !errors.Is(err, store.ErrNotStored) {
		t.Fatalf("append past the item size: %v, want ErrNotStored", err)
	}
	// The store still works after memcached refused an object.
	if it, err := s.Get(ctx, []byte("half"), nil, 0); err != nil || len(it.Value) != len(half) {
		t.Fatalf("Get = %d bytes, %v", len(it.Value), err)
	}
}

// Read-modify-writes from several clients lose no update: every increment
// that reports success is counted.
func TestConcurrentIncr(t *testing.T) {
	addr := testenv.Memcached(t)
	s1, s2 := newStore(t, addr, testTimeout), newStore(t, addr, testTimeout)
	if _, err := s1.Store(ctx, store.Set, store.Item{Key: []byte("n"), Value: []byte("0")}, 0); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	ok, contended := 0, 0
	var wg sync.WaitGroup
	for g := range 4 {
		s := s1
		if g%2 == 1 {
			s = s2
		}
		wg.Go(func() {
			for range 25 {
				_, err := s.Incr(ctx, []byte("n"), store.IncrOptions{Delta: 1}, 0)
				mu.Lock()
				switch {
				case err == nil:
					ok++
				case errors.Is(err, ErrContended):
					contended++
				default:
					t.Error(err)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	it, err := s1.Get(ctx, []byte("n"), nil, 0)
	if err != nil || strings.TrimSpace(string(it.Value)) != strconv.Itoa(ok) {
		t.Fatalf("counter = %q, %v; %d increments succeeded (%d gave up)", it.Value, err, ok, contended)
	}
	t.Logf("%d increments, %d gave up", ok, contended)
}

func TestCanceledContext(t *testing.T) {
	s := newStore(t, testenv.Memcached(t), testTimeout)
	c, cancel := context.WithCancel(ctx)
	cancel()
	k := []byte("k")
	for name, err := range map[string]error{
		"get":    func() error { _, err := s.Get(c, k, nil, 0); return err }(),
		"set":    func() error { _, err := s.Store(c, store.Set, store.Item{Key: k}, 0); return err }(),
		"append": func() error { _, err := s.Store(c, store.Append, store.Item{Key: k}, 0); return err }(),
		"incr":   func() error { _, err := s.Incr(c, k, store.IncrOptions{Delta: 1}, 0); return err }(),
		"touch":  func() error { _, err := s.Touch(c, k, 0, nil, 0); return err }(),
		"delete": s.Delete(c, k, store.DeleteOptions{}, 0),
		"flush":  s.Flush(c),
	} {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s: %v, want context.Canceled", name, err)
		}
	}
	if _, err := s.Get(ctx, k, nil, 0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a canceled set wrote: %v", err)
	}
}

// failFast runs every operation against a broken server and checks each
// fails with a backend *Error within the timeout plus slack.
func failFast(t *testing.T, s *Store, addr string, timeout time.Duration, check func(name string, err error)) {
	t.Helper()
	k := []byte("k")
	ops := []struct {
		name string
		f    func() error
	}{
		{"get", func() error { _, err := s.Get(ctx, k, nil, 0); return err }},
		{"set", func() error { _, err := s.Store(ctx, store.Set, store.Item{Key: k, Value: []byte("v")}, 0); return err }},
		{"add", func() error { _, err := s.Store(ctx, store.Add, store.Item{Key: k, Value: []byte("v")}, 0); return err }},
		{"cas", func() error { _, err := s.Store(ctx, store.CAS, store.Item{Key: k, CAS: 1}, 0); return err }},
		{"incr", func() error { _, err := s.Incr(ctx, k, store.IncrOptions{Delta: 1}, 0); return err }},
		{"touch", func() error { _, err := s.Touch(ctx, k, 0, nil, 0); return err }},
		{"delete", func() error { return s.Delete(ctx, k, store.DeleteOptions{}, 0) }},
		{"flush", func() error { return s.Flush(ctx) }},
	}
	bound := timeout + 500*time.Millisecond
	for _, op := range ops {
		start := time.Now()
		err := op.f()
		took := time.Since(start)
		var me *Error
		if !errors.As(err, &me) {
			t.Errorf("%s: %v; want a backend *Error", op.name, err)
			continue
		}
		if !strings.Contains(err.Error(), addr) || !strings.HasPrefix(err.Error(), "memcached ") {
			t.Errorf("%s: %q does not name the operation and server", op.name, err)
		}
		if took > bound {
			t.Errorf("%s took %v, want under %v", op.name, took, bound)
		}
		check(op.name, err)
		t.Logf("%-6s %6.1fms  %v", op.name, float64(took.Microseconds())/1000, err)
	}
}

func TestKilledServer(t *testing.T) {
	addr, cmd := startMemcached(t)
	const timeout = 200 * time.Millisecond
	s := newStore(t, addr, timeout)
	// Fill the idle pool: the first failures then come from dead pooled
	// connections, the later ones from refused dials.
	for range 3 {
		if _, err := s.Store(ctx, store.Set, store.Item{Key: []byte("k"), Value: []byte("v")}, 0); err != nil {
			t.Fatal(err)
		}
	}
	kill(t, cmd, addr)
	failFast(t, s, addr, timeout, func(string, error) {})
	// By now the server is marked down: answered for at once, naming the
	// last failure.
	_, err := s.Get(ctx, []byte("k"), nil, 0)
	if !errors.Is(err, mcclient.ErrUnavailable) || !strings.HasPrefix(err.Error(), "memcached get") || !strings.Contains(err.Error(), addr) ||
		!strings.Contains(err.Error(), "memcached server marked down (last error: ") {
		t.Fatalf("Get = %q, want the server marked down", err)
	}
	if err := s.Ping(ctx); !errors.Is(err, mcclient.ErrUnavailable) {
		t.Fatalf("Ping = %v", err)
	}
}

func TestHungServer(t *testing.T) {
	addr, cmd := startMemcached(t)
	const timeout = 200 * time.Millisecond
	s := newStore(t, addr, timeout)
	if _, err := s.Store(ctx, store.Set, store.Item{Key: []byte("k"), Value: []byte("v")}, 0); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	// The signal is delivered asynchronously: wait until the process is
	// really stopped (state T in /proc), or a first request may still be served.
	for deadline := time.Now().Add(5 * time.Second); ; {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", cmd.Process.Pid))
		if err == nil {
			if i := bytes.LastIndexByte(b, ')'); i > 0 && len(b) > i+2 && b[i+2] == 'T' {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("memcached did not stop after SIGSTOP")
		}
		time.Sleep(10 * time.Millisecond)
	}
	resumed := false
	t.Cleanup(func() {
		if !resumed {
			cmd.Process.Signal(syscall.SIGCONT)
		}
	})
	failFast(t, s, addr, timeout, func(name string, err error) {
		var ne net.Error
		if !(errors.As(err, &ne) && ne.Timeout()) && !errors.Is(err, mcclient.ErrUnavailable) {
			t.Errorf("%s: %v; want a timeout or the server marked down after timeouts", name, err)
		}
	})
	// Once memcached runs again, so does the store. (It then also runs the
	// requests that timed out: they were sent, so a timed-out write may
	// still happen.)
	cmd.Process.Signal(syscall.SIGCONT)
	resumed = true
	// memcached first works through the requests queued while it was
	// stopped; on a loaded machine that can outlast one timeout.
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := s.Store(ctx, store.Set, store.Item{Key: []byte("k2"), Value: []byte("v2")}, 0)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("set after SIGCONT: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if it, err := s.Get(ctx, []byte("k2"), nil, 0); err != nil || string(it.Value) != "v2" {
		t.Fatalf("get after SIGCONT: %q, %v", it.Value, err)
	}
}

func TestNew(t *testing.T) {
	if _, err := New(Options{}); err == nil {
		t.Fatal("New without servers succeeded")
	}
	if _, err := New(Options{Servers: []string{"no port"}}); err == nil {
		t.Fatal("New with a bad address succeeded")
	}
	s, err := New(Options{Servers: []string{"127.0.0.1:1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.maxItem != 1<<20 {
		t.Fatalf("default max item %d", s.maxItem)
	}
	_, err = s.Get(ctx, []byte("k"), nil, 0)
	if got, want := fmt.Sprint(err), "memcached get: dial tcp 127.0.0.1:1: connect: connection refused"; got != want {
		t.Fatalf("err = %q, want %q", got, want)
	}
}

// With a pool, keys spread over the servers, and Flush reaches every live
// server even when another is down.
func TestPool(t *testing.T) {
	addr1 := testenv.Memcached(t)
	addr2, cmd2 := startMemcached(t)
	s, err := New(Options{Servers: []string{addr1, addr2}, Timeout: testTimeout})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	on := map[string]int{}
	for i := range 20 {
		k := fmt.Sprint("k", i)
		if _, err := s.Store(ctx, store.Set, store.Item{Key: []byte(k), Value: []byte("v")}, 0); err != nil {
			t.Fatal(err)
		}
		on[s.c.Server(k)]++
	}
	if on[addr1] == 0 || on[addr2] == 0 {
		t.Fatalf("keys per server: %v", on)
	}
	kill(t, cmd2, addr2)
	err = s.Flush(ctx)
	var me *Error
	if !errors.As(err, &me) || me.Server != addr2 || me.Op != "flush_all" {
		t.Fatalf("Flush = %v; want an *Error naming %s", err, addr2)
	}
	for i := range 20 {
		k := fmt.Sprint("k", i)
		if s.c.Server(k) != addr1 {
			continue
		}
		if _, err := s.Get(ctx, []byte(k), nil, 0); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("%s on the live server after Flush: %v", k, err)
		}
	}
}

// Ping answers for every server: nil while all answer, an error naming the
// server while one is down, nil again once it is back (the readiness probe
// needs no client traffic to notice either change).
func TestPing(t *testing.T) {
	addr1 := testenv.Memcached(t)
	addr2, cmd2 := startMemcached(t)
	s, err := New(Options{Servers: []string{addr1, addr2}, Timeout: testTimeout})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	kill(t, cmd2, addr2)
	err = s.Ping(ctx)
	var me *Error
	if !errors.As(err, &me) || me.Server != addr2 || me.Op != "mn" {
		t.Fatalf("Ping with %s killed = %v", addr2, err)
	}
	_, port, _ := net.SplitHostPort(addr2)
	args := []string{"-l", "127.0.0.1", "-p", port, "-U", "0", "-t", "1"}
	if os.Geteuid() == 0 {
		args = append(args, "-u", "root")
	}
	testenv.Start(t, testenv.LookPath(t, "memcached", "memcached"), args, addr2)
	for deadline := time.Now().Add(20 * time.Second); s.Ping(ctx) != nil; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("Ping after the restart: %v", s.Ping(ctx))
		}
	}
}
