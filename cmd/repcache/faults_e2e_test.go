package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/repcache/repcache/internal/testenv"
)

// The issue 11 fault table, each row through the binary against a real
// memcached and Redis. Waits are for a state repcache reports (a metric,
// /readyz), with a generous limit: they are sync points, not timed
// assertions.

// relay is a loopback TCP relay in front of a server that the test can
// cut: while cut it accepts connections and answers nothing ("a socket that
// accepts and never answers"), and what clients send is lost, as in a
// network partition; connections that lost data are closed when it heals.
type relay struct {
	addr   string
	target string
	mu     sync.Mutex
	cond   *sync.Cond
	cut    bool
	broken map[net.Conn]bool
}

func newRelay(t *testing.T, target string) *relay {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &relay{addr: ln.Addr().String(), target: target, broken: map[net.Conn]bool{}}
	r.cond = sync.NewCond(&r.mu)
	t.Cleanup(func() { ln.Close(); r.set(false) })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go r.serve(c)
		}
	}()
	return r
}

// set cuts (true) or heals the relay.
func (r *relay) set(cut bool) {
	r.mu.Lock()
	r.cut = cut
	if !cut {
		for c := range r.broken {
			c.Close()
		}
		clear(r.broken)
	}
	r.mu.Unlock()
	r.cond.Broadcast()
}

// pass reports whether data read on client connection c may be forwarded;
// while cut it is dropped and c is closed at the heal.
func (r *relay) pass(c net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cut {
		r.broken[c] = true
	}
	return !r.cut
}

func (r *relay) serve(c net.Conn) {
	defer c.Close()
	r.mu.Lock()
	for r.cut {
		r.broken[c] = true
		r.cond.Wait()
	}
	r.mu.Unlock()
	s, err := net.Dial("tcp", r.target)
	if err != nil {
		return
	}
	defer s.Close()
	pipe := func(dst, src net.Conn) {
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 && r.pass(c) {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		dst.Close()
		src.Close()
	}
	go pipe(s, c)
	pipe(c, s)
}

// instance is a repcache on memcached (cache) and Redis (backup) with its
// admin endpoint.
type instance struct {
	addr, admin string
	p           *proc
}

// instanceConfig is what the e2e instances differ in.
type instanceConfig struct {
	memcached     string // the memcached server's address
	redis         string // the backup.redis section's lines (four-space indented)
	maps          string // the maps section
	cache, backup string // extra lines of the cache and backup sections (two-space indented)
}

// redisAt is the backup.redis section for one Redis server.
func redisAt(addr, timeout string) string {
	return fmt.Sprintf("    addrs: [%q]\n    timeout: %s\n", addr, timeout)
}

func startInstance(t *testing.T, mcAddr, redisAddr, maps, cacheYAML, backupYAML string) *instance {
	return startInstanceWith(t, instanceConfig{memcached: mcAddr, redis: redisAt(redisAddr, "1s"), maps: maps, cache: cacheYAML, backup: backupYAML})
}

func startInstanceWith(t *testing.T, c instanceConfig) *instance {
	t.Helper()
	in := &instance{addr: fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)), admin: fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))}
	cfg := path.Join(t.TempDir(), "repcache.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`listen: [%q]
admin:
  listen: %q
cache:
  backend: memcached
  probe_interval: 200ms
%s  memcached:
    servers: [%q]
backup:
  backend: redis
%s  redis:
%s%s`, in.addr, in.admin, c.cache, c.memcached, c.backup, c.redis, c.maps)), 0o644)
	in.p = start(t, nil, "--config", cfg)
	in.p.waitListening(t, in.addr)
	return in
}

// metric is the sum of a metric family's samples whose labels contain
// every one of labels.
func (in *instance) metric(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + in.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sum := 0.0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
next:
	for sc.Scan() {
		l := sc.Text()
		if !strings.HasPrefix(l, name+" ") && !strings.HasPrefix(l, name+"{") {
			continue
		}
		for _, lb := range labels {
			if !strings.Contains(l, lb) {
				continue next
			}
		}
		v, err := strconv.ParseFloat(l[strings.LastIndexByte(l, ' ')+1:], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", l, err)
		}
		sum += v
	}
	return sum
}

func (in *instance) ready(t *testing.T) int {
	t.Helper()
	resp, err := http.Get("http://" + in.admin + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// waitFor polls cond until it holds; the limit only keeps a broken build
// from hanging the suite.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func mustLine(t *testing.T, m *mc, req, want string) {
	t.Helper()
	if l := m.line(req); l != want {
		t.Fatalf("%q: got %q, want %q", req, l, want)
	}
}

func value(t *testing.T, addr, key string) (string, bool) {
	t.Helper()
	c := memcache.New(addr)
	c.Timeout = 5 * time.Second
	it, err := c.Get(key)
	if err == memcache.ErrCacheMiss {
		return "", false
	}
	if err != nil {
		t.Fatalf("get %s through %s: %v", key, addr, err)
	}
	return string(it.Value), true
}

// Row 1: one instance cut off from memcached (the relay accepts and never
// answers) acknowledges a set and a delete that reach Redis only; the other
// instance, which reaches memcached, stops serving the old value and the
// deleted record while the first is still cut off, and once the first
// reaches memcached again neither serves them. With a SIGSTOPped memcached
// the same, for both instances.
func TestMissedCacheWritesAreNotServedStale(t *testing.T) {
	for _, fault := range []string{"relay cut", "memcached stopped"} {
		t.Run(fault, func(t *testing.T) {
			mcd := startMemcached(t)
			rd := testenv.Redis(t, testenv.RedisOptions{})
			rl := newRelay(t, mcd.addr)
			a := startInstance(t, rl.addr, rd.Addr(), syncMaps, "", "")
			b := startInstance(t, mcd.addr, rd.Addr(), syncMaps, "", "")
			ma, mb := dialMC(t, a.addr), dialMC(t, b.addr)
			mustLine(t, mb, "set plain:k 0 0 2\r\nv1\r\n", "STORED")
			mustLine(t, mb, "set plain:d 0 0 1\r\nx\r\n", "STORED")
			if v, _ := value(t, a.addr, "plain:k"); v != "v1" {
				t.Fatalf("before the fault, A reads %q", v)
			}
			if fault == "relay cut" {
				rl.set(true)
			} else {
				mcd.cmd.Signal(syscall.SIGSTOP)
			}
			// The background probes open A's breaker: from then on its
			// writes are not even sent to memcached.
			waitFor(t, "A's memcached breaker to open", func() bool {
				return a.metric(t, "repcache_backend_up", `backend="memcached"`) == 0
			})
			mustLine(t, ma, "set plain:k 0 0 2\r\nv2\r\n", "STORED")
			mustLine(t, ma, "delete plain:d\r\n", "DELETED")
			// A does not serve its own stale copies while cut off.
			if v, _ := value(t, a.addr, "plain:k"); v != "v2" {
				t.Fatalf("A, cut off, reads %q", v)
			}
			if fault == "relay cut" {
				// B still reaches memcached, which holds v1 and d. A told
				// it through Redis of the writes memcached missed, before
				// acknowledging them: B does not serve those copies even
				// while A is still cut off. (Polled: the announcement
				// reaches B within its delivery time, not at A's reply.)
				waitFor(t, "B to serve what A wrote", func() bool {
					v, _ := value(t, b.addr, "plain:k")
					_, found := value(t, b.addr, "plain:d")
					return v == "v2" && !found
				})
				if v, _ := value(t, a.addr, "plain:k"); v != "v2" {
					t.Fatalf("A, still cut off, reads %q", v)
				}
			}
			if rl.set(false); fault != "relay cut" {
				mcd.cmd.Signal(syscall.SIGCONT)
			}
			waitFor(t, "A to invalidate what it missed", func() bool {
				return a.metric(t, "repcache_cache_invalidations_pending") == 0
			})
			for name, in := range map[string]*instance{"A": a, "B": b} {
				if v, ok := value(t, in.addr, "plain:k"); v != "v2" {
					t.Errorf("%s reads plain:k = %q (found %v), want v2", name, v, ok)
				}
				if v, ok := value(t, in.addr, "plain:d"); ok {
					t.Errorf("%s reads the deleted plain:d = %q", name, v)
				}
			}
		})
	}
}

// Row 1, past the bound: more missed writes than missed_writes_limit move
// the cache generation on, and both instances then serve only what Redis
// holds, the one that reaches memcached even while the other is cut off.
func TestMissedWritesOverflowMovesGenerationOn(t *testing.T) {
	mcd := startMemcached(t)
	rd := testenv.Redis(t, testenv.RedisOptions{})
	rl := newRelay(t, mcd.addr)
	a := startInstance(t, rl.addr, rd.Addr(), syncMaps, "  missed_writes_limit: 3\n", "")
	b := startInstance(t, mcd.addr, rd.Addr(), syncMaps, "", "")
	mb := dialMC(t, b.addr)
	for i := range 10 {
		mustLine(t, mb, fmt.Sprintf("set plain:k%d 0 0 2\r\nv1\r\n", i), "STORED")
	}
	rl.set(true)
	waitFor(t, "A's memcached breaker to open", func() bool {
		return a.metric(t, "repcache_backend_up", `backend="memcached"`) == 0
	})
	ma := dialMC(t, a.addr)
	for i := range 10 {
		mustLine(t, ma, fmt.Sprintf("set plain:k%d 0 0 2\r\nv2\r\n", i), "STORED")
	}
	// The shared record of missed writes filled up: A moved the generation
	// on at once, and B, which reaches memcached, follows it while A is
	// still cut off.
	waitFor(t, "B to serve what A wrote", func() bool {
		for i := range 10 {
			if v, _ := value(t, b.addr, fmt.Sprintf("plain:k%d", i)); v != "v2" {
				return false
			}
		}
		return true
	})
	rl.set(false)
	waitFor(t, "A to move the cache generation on", func() bool { return a.metric(t, "repcache_cache_generation") > 0 })
	gen := a.metric(t, "repcache_cache_generation")
	waitFor(t, "B to adopt the new generation", func() bool { return b.metric(t, "repcache_cache_generation") == gen })
	waitFor(t, "A to have nothing pending", func() bool { return a.metric(t, "repcache_cache_invalidations_pending") == 0 })
	for i := range 10 {
		for name, in := range map[string]*instance{"A": a, "B": b} {
			if v, _ := value(t, in.addr, fmt.Sprintf("plain:k%d", i)); v != "v2" {
				t.Errorf("%s reads plain:k%d = %q, want v2", name, i, v)
			}
		}
	}
}

const asyncMaps = `maps:
  - {name: plain, prefix: "plain:", kind: passthrough, backup: async}
`

// Row 2: with on_backup_error: fail, a write Redis does not confirm is
// answered SERVER_ERROR naming the failure class (row 6: no address), and
// leaves nothing in the cache: clients read the old record afterwards.
func TestRefusedSyncWriteLeavesNoTrace(t *testing.T) {
	mcd := startMemcached(t)
	rd := testenv.Redis(t, testenv.RedisOptions{})
	rl := newRelay(t, rd.Addr())
	in := startInstance(t, mcd.addr, rl.addr, syncMaps, "", "")
	m := dialMC(t, in.addr)
	mustLine(t, m, "set plain:k 0 0 2\r\nv1\r\n", "STORED")
	rl.set(true)
	mustLine(t, m, "set plain:k 0 0 2\r\nv2\r\n", "SERVER_ERROR redis timeout")
	// memcached itself holds no v2 (read it directly, not through the tiers).
	if it, err := memcache.New(mcd.addr).Get("plain:k"); err == nil && strings.Contains(string(it.Value), "v2") {
		t.Fatalf("the refused write is in memcached: %q", it.Value)
	}
	rl.set(false)
	if v, _ := value(t, in.addr, "plain:k"); v != "v1" {
		t.Fatalf("after the refused write, clients read %q, want v1", v)
	}
}

// Row 3: an async map rides out a 0.5 s Redis stall at 3,000 writes: none
// dropped, all in Redis once it answers again.
func TestAsyncBackupRidesOutAStall(t *testing.T) {
	mcd := startMemcached(t)
	rd := testenv.Redis(t, testenv.RedisOptions{})
	// Redis's default 100ms deadline: the stall fails the batches under way.
	in := startInstanceWith(t, instanceConfig{memcached: mcd.addr, redis: redisAt(rd.Addr(), "100ms"), maps: asyncMaps})
	const n = 3000
	writes := make(chan int)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := memcache.New(in.addr)
			c.Timeout = 5 * time.Second
			for i := range writes {
				k := fmt.Sprintf("plain:a%d", i)
				if err := c.Set(&memcache.Item{Key: k, Value: []byte("v-" + k)}); err != nil {
					errs <- err
				}
			}
		}()
	}
	rd.Stop(t)
	stalled := time.Now()
	for i := range n {
		writes <- i
		if i == n/2 {
			time.Sleep(time.Until(stalled.Add(500 * time.Millisecond)))
			rd.Cont(t)
		}
	}
	close(writes)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("write failed: %v", err)
	}
	waitFor(t, "the async queue to drain", func() bool {
		return in.metric(t, "repcache_backup_queue_length") == 0 && in.metric(t, "repcache_backup_queue_bytes") == 0
	})
	dropped, retries := in.metric(t, "repcache_backup_dropped_total"), in.metric(t, "repcache_backup_retries_total")
	t.Logf("%d async writes across a 0.5 s Redis stall: %v dropped, %v batch retries", n, dropped, retries)
	if dropped != 0 {
		t.Fatalf("%v async writes dropped across a 0.5 s stall", dropped)
	}
	missing := 0
	for i := range n {
		if rd.Do(t, "EXISTS", fmt.Sprintf("repcache:plain:a%d", i)) != "1" {
			missing++
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d async writes missing from Redis after it came back", missing, n)
	}
}

// Row 3, at the bound: a queue smaller than the backlog drops, counts, and
// logs once for the episode; it drains when Redis is back.
func TestAsyncBackupDropsOnlyAtTheBound(t *testing.T) {
	mcd := startMemcached(t)
	rd := testenv.Redis(t, testenv.RedisOptions{})
	in := startInstance(t, mcd.addr, rd.Addr(), asyncMaps, "", "  queue_size: 50\n")
	m := dialMC(t, in.addr)
	rd.Stop(t)
	for i := range 300 {
		mustLine(t, m, fmt.Sprintf("set plain:b%d 0 0 1\r\nx\r\n", i), "STORED")
	}
	rd.Cont(t)
	waitFor(t, "the async queue to drain", func() bool { return in.metric(t, "repcache_backup_queue_length") == 0 })
	waitFor(t, "the drop episode to end", func() bool { return strings.Contains(in.p.out.String(), "async backup queue drained") })
	dropped := in.metric(t, "repcache_backup_dropped_total")
	if dropped == 0 || dropped > 300-50 {
		t.Fatalf("%v of 300 writes dropped with a 50-write queue", dropped)
	}
	if n := strings.Count(in.p.out.String(), "async backup queue full"); n != 1 {
		t.Fatalf("drop episode logged %d times, want once", n)
	}
}

// Row 4: Redis restarted without persistence is noticed (logged, counted),
// and repcache keeps serving from the cache.
func TestBackupRestartedEmptyIsNoticed(t *testing.T) {
	mcd := startMemcached(t)
	rd := testenv.Redis(t, testenv.RedisOptions{})
	in := startInstance(t, mcd.addr, rd.Addr(), syncMaps, "", "")
	m := dialMC(t, in.addr)
	mustLine(t, m, "set plain:k 0 0 2\r\nv1\r\n", "STORED")
	waitFor(t, "the cache generation to be read from Redis", func() bool {
		return rd.Do(t, "EXISTS", "repcache:\x00repcache:cache-generation") == "1"
	})
	rd.Kill(t)
	rd.Restart(t) // no AOF, no RDB: empty
	waitFor(t, "the loss to be counted", func() bool { return in.metric(t, "repcache_backup_lost_total") >= 1 })
	in.p.waitLog(t, "the backup lost its data", 1)
	if v, _ := value(t, in.addr, "plain:k"); v != "v1" {
		t.Fatalf("after Redis lost its data, clients read %q, want v1 from the cache", v)
	}
}

// Row 5: /readyz follows the cache tier with no client traffic: 503 while
// memcached is down at start, 200 once it runs, 503 while it hangs.
func TestReadinessFollowsTheCacheWithoutTraffic(t *testing.T) {
	mcd := startMemcached(t)
	mcd.kill()
	rd := testenv.Redis(t, testenv.RedisOptions{})
	in := startInstance(t, mcd.addr, rd.Addr(), syncMaps, "", "")
	waitFor(t, "/readyz 503 with memcached down at start", func() bool { return in.ready(t) == 503 })
	mcd.start()
	waitFor(t, "/readyz 200 once memcached runs", func() bool { return in.ready(t) == 200 })
	mcd.cmd.Signal(syscall.SIGSTOP)
	t.Cleanup(func() { mcd.cmd.Signal(syscall.SIGCONT) })
	waitFor(t, "/readyz 503 with memcached hung", func() bool { return in.ready(t) == 503 })
	mcd.cmd.Signal(syscall.SIGCONT)
	waitFor(t, "/readyz 200 once memcached answers again", func() bool { return in.ready(t) == 200 })
	// Row 6: the outage is logged once per change of state, not per probe.
	if n := strings.Count(in.p.out.String(), `msg="tier unreachable" tier=cache`); n != 2 {
		t.Fatalf("%d 'tier unreachable' lines for two outages:\n%s", n, in.p.out.String())
	}
}

// Row 5: with Redis down when repcache starts, the expiry-event
// subscription is retried, and Redis's expirations are counted once it runs.
func TestExpirySubscriptionRetried(t *testing.T) {
	mcd := startMemcached(t)
	rd := testenv.Redis(t, testenv.RedisOptions{Args: []string{"--notify-keyspace-events", "Ex"}})
	rd.Kill(t)
	in := startInstance(t, mcd.addr, rd.Addr(), syncMaps, "", "")
	rd.Restart(t)
	m := dialMC(t, in.addr)
	waitFor(t, "a write to reach Redis", func() bool {
		return m.line("set plain:e 0 1 1\r\nx\r\n") == "STORED" && rd.Do(t, "EXISTS", "repcache:plain:e") == "1"
	})
	waitFor(t, "Redis's expiration to be counted", func() bool {
		return in.metric(t, "repcache_expirations_total", `tier="backup"`) >= 1
	})
}

// Row 5, after a restart: repcache turned Redis's expiry events on with
// CONFIG SET, which a restart undoes; it turns them on again, and Redis's
// expirations are still counted.
func TestExpiryEventsSurviveARedisRestart(t *testing.T) {
	mcd := startMemcached(t)
	rd := testenv.Redis(t, testenv.RedisOptions{})
	in := startInstance(t, mcd.addr, rd.Addr(), syncMaps, "", "")
	waitFor(t, "repcache to enable expiry events", func() bool {
		return strings.Contains(rd.Do(t, "CONFIG", "GET", "notify-keyspace-events"), "x")
	})
	rd.Kill(t)
	rd.Restart(t)
	if f := rd.Do(t, "CONFIG", "GET", "notify-keyspace-events"); strings.Contains(f, "x") {
		t.Fatalf("the restarted Redis kept notify-keyspace-events %q: nothing to test", f)
	}
	waitFor(t, "repcache to enable expiry events again", func() bool {
		return strings.Contains(rd.Do(t, "CONFIG", "GET", "notify-keyspace-events"), "x")
	})
	m := dialMC(t, in.addr)
	before := in.metric(t, "repcache_expirations_total", `tier="backup"`)
	waitFor(t, "a write to reach Redis", func() bool {
		return m.line("set plain:e 0 1 1\r\nx\r\n") == "STORED" && rd.Do(t, "EXISTS", "repcache:plain:e") == "1"
	})
	waitFor(t, "Redis's expiration to be counted", func() bool {
		return in.metric(t, "repcache_expirations_total", `tier="backup"`) > before
	})
}
