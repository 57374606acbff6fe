package redis

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/repcache/repcache/internal/store"
	"github.com/repcache/repcache/internal/store/storetest"
	"github.com/repcache/repcache/internal/testenv"
)

var ctx = context.Background()

// newStore returns a Store on srv with a fresh prefix, closed at the end.
func newStore(t *testing.T, srv *testenv.RedisServer, o Options) *Store {
	t.Helper()
	if o.Addrs == nil {
		o.Addrs = []string{srv.Addr()}
	}
	if o.KeyPrefix == "" {
		o.KeyPrefix = "test:" + t.Name() + ":"
	}
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// rawClient is a plain client for checking what the store wrote.
func rawClient(t *testing.T, srv *testenv.RedisServer) *goredis.Client {
	t.Helper()
	c := goredis.NewClient(&goredis.Options{Addr: srv.Addr(), DisableIdentity: true})
	t.Cleanup(func() { c.Close() })
	return c
}

func TestConformance(t *testing.T) {
	srv := testenv.Redis(t, testenv.RedisOptions{Password: "pw"})
	storetest.Run(t, func(t *testing.T) store.Store {
		return newStore(t, srv, Options{Password: "pw"})
	})
}

// TestConformanceCluster runs the suite through the cluster client against
// a one-node cluster holding every slot. Parallel: a fresh cluster node
// takes 2s to declare itself ok.
func TestConformanceCluster(t *testing.T) {
	t.Parallel()
	srv := testenv.Redis(t, testenv.RedisOptions{Args: []string{"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"}})
	srv.Do(t, "CLUSTER", "ADDSLOTSRANGE", "0", "16383")
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(srv.Do(t, "CLUSTER", "INFO"), "cluster_state:ok"); {
		if time.Now().After(deadline) {
			t.Fatal("cluster not ok:\n" + srv.Do(t, "CLUSTER", "INFO"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Run("ExpiryEvents", func(t *testing.T) {
		s := newStore(t, srv, Options{Cluster: true, Timeout: time.Second})
		if err := s.EnableExpiryEvents(ctx); err != nil {
			t.Fatal(err)
		}
		got := make(chan string, 1)
		stop, err := s.SubscribeExpired(ctx, func(key string) { got <- key })
		if err != nil {
			t.Fatal(err)
		}
		defer stop()
		now := time.Now().Unix()
		s.Store(ctx, store.Set, store.Item{Key: []byte("k"), Value: []byte("v"), Deadline: now + 1}, now)
		select {
		case k := <-got:
			if k != "k" {
				t.Fatalf("expired %q", k)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no expired event within 5s")
		}
	})
	storetest.Run(t, func(t *testing.T) store.Store {
		s := newStore(t, srv, Options{Cluster: true, Timeout: time.Second})
		if _, ok := s.c.(*goredis.ClusterClient); !ok {
			t.Fatalf("Cluster option gave a %T", s.c)
		}
		return s
	})
}

func TestLayoutAndExpiry(t *testing.T) {
	srv := testenv.Redis(t, testenv.RedisOptions{})
	s := newStore(t, srv, Options{KeyPrefix: "p:"})
	raw := rawClient(t, srv)
	now := time.Now().Unix()
	deadline := now + 40*86400 // past memcached's 30-day relative limit
	cas, err := s.Store(ctx, store.Set, store.Item{Key: []byte("k"), Value: []byte("val"), Flags: 7, Deadline: deadline}, now)
	if err != nil {
		t.Fatal(err)
	}
	h := raw.HGetAll(ctx, "p:k").Val()
	want := map[string]string{"v": "val", "f": "7", "c": fmt.Sprint(cas), "d": fmt.Sprint(deadline)}
	if fmt.Sprint(h) != fmt.Sprint(want) {
		t.Fatalf("hash = %v, want %v", h, want)
	}
	checkPTTL := func(what string, deadline int64) {
		t.Helper()
		if at := raw.PExpireTime(ctx, "p:k").Val(); at != time.Duration(deadline*1000)*time.Millisecond {
			t.Fatalf("%s: PEXPIRETIME = %v, want %d s", what, at, deadline)
		}
		pttl := raw.PTTL(ctx, "p:k").Val()
		want := time.Until(time.Unix(deadline, 0))
		if d := pttl - want; d < -2*time.Second || d > 2*time.Second {
			t.Fatalf("%s: PTTL = %v, want about %v", what, pttl, want)
		}
	}
	checkPTTL("set", deadline)
	if it, err := s.Get(ctx, []byte("k"), nil, now); err != nil || it.Deadline != deadline || it.CAS != cas || it.Flags != 7 {
		t.Fatalf("Get = %+v, %v", it, err)
	}

	// Touch moves the expiry, to never with PERSIST.
	if _, err := s.Touch(ctx, []byte("k"), deadline+3600, nil, now); err != nil {
		t.Fatal(err)
	}
	checkPTTL("touch", deadline+3600)
	if it, err := s.Touch(ctx, []byte("k"), 0, nil, now); err != nil || it.Deadline != 0 || it.CAS != cas {
		t.Fatalf("Touch 0 = %+v, %v", it, err)
	}
	if ttl := raw.PTTL(ctx, "p:k").Val(); ttl != -1 {
		t.Fatalf("PTTL after touch 0 = %v, want -1 (no expiry)", ttl)
	}
	if d := raw.HGet(ctx, "p:k", "d").Val(); d != "0" {
		t.Fatalf("d after touch 0 = %q", d)
	}

	// Append keeps the expiry; incr keeps it too.
	s.Touch(ctx, []byte("k"), deadline, nil, now)
	if _, err := s.Store(ctx, store.Append, store.Item{Key: []byte("k"), Value: []byte("ue")}, now); err != nil {
		t.Fatal(err)
	}
	checkPTTL("append", deadline)
	s.Store(ctx, store.Set, store.Item{Key: []byte("k"), Value: []byte("41"), Deadline: deadline}, now)
	if c, err := s.Incr(ctx, []byte("k"), store.IncrOptions{Delta: 1}, now); c.Value != 42 || err != nil {
		t.Fatalf("Incr = %d, %v", c.Value, err)
	}
	checkPTTL("incr", deadline)

	// Touch into the past answers once, then the record is gone.
	if it, err := s.Touch(ctx, []byte("k"), now-1, nil, now); err != nil || string(it.Value) != "42" {
		t.Fatalf("Touch past = %+v, %v", it, err)
	}
	if n := raw.Exists(ctx, "p:k").Val(); n != 0 {
		t.Fatal("record kept after touch into the past")
	}

	// A write born expired deletes the key and stores nothing.
	s.Store(ctx, store.Set, store.Item{Key: []byte("k"), Value: []byte("v")}, now)
	if cas, err := s.Store(ctx, store.Replace, store.Item{Key: []byte("k"), Value: []byte("v"), Deadline: now}, now); err != nil || cas == 0 {
		t.Fatalf("born-expired replace = %d, %v", cas, err)
	}
	if n := raw.Exists(ctx, "p:k").Val(); n != 0 {
		t.Fatal("born-expired write left the key")
	}

	// Deadlines past 32 bits are clamped, as in the embedded store.
	s.Store(ctx, store.Set, store.Item{Key: []byte("k"), Value: []byte("v"), Deadline: 1 << 40}, now)
	if it, _ := s.Get(ctx, []byte("k"), nil, now); it.Deadline != 1<<32-1 {
		t.Fatalf("clamped deadline = %d", it.Deadline)
	}

	// Redis itself expires the record at its deadline (real clock).
	s.Store(ctx, store.Set, store.Item{Key: []byte("soon"), Value: []byte("v"), Deadline: now + 1}, now)
	if at := raw.PExpireTime(ctx, "p:soon").Val(); at != time.Duration(now+1)*time.Second {
		t.Fatalf("PEXPIRETIME = %v", at)
	}
}

func TestSizeLimits(t *testing.T) {
	srv := testenv.Redis(t, testenv.RedisOptions{})
	s := newStore(t, srv, Options{MaxItemSize: 1000})
	key := []byte("k")
	max := 1000 - store.ItemSize(len(key), 0, 0)
	if _, err := s.Store(ctx, store.Set, store.Item{Key: key, Value: make([]byte, max+1)}, storetest.Now); !errors.Is(err, store.ErrTooLarge) {
		t.Fatalf("oversized set: %v", err)
	}
	if _, err := s.Store(ctx, store.Set, store.Item{Key: key, Value: make([]byte, max-10)}, storetest.Now); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Store(ctx, store.Append, store.Item{Key: key, Value: make([]byte, 11)}, storetest.Now); !errors.Is(err, store.ErrNotStored) {
		t.Fatalf("append past the limit: %v, want ErrNotStored", err)
	}
	if _, err := s.Store(ctx, store.Prepend, store.Item{Key: key, Value: make([]byte, 10)}, storetest.Now); err != nil {
		t.Fatalf("prepend up to the limit: %v", err)
	}
	// A conditional append compares the CAS unique.
	it, _ := s.Get(ctx, key, nil, storetest.Now)
	s.Store(ctx, store.Set, store.Item{Key: key, Value: []byte("a")}, storetest.Now)
	if _, err := s.Store(ctx, store.Append, store.Item{Key: key, Value: []byte("b"), CAS: it.CAS}, storetest.Now); !errors.Is(err, store.ErrExists) {
		t.Fatalf("append with stale CAS: %v", err)
	}
}

func TestFlushOnlyPrefix(t *testing.T) {
	srv := testenv.Redis(t, testenv.RedisOptions{})
	raw := rawClient(t, srv)
	// Glob metacharacters in the prefix match literally.
	s := newStore(t, srv, Options{KeyPrefix: "a*[b]:"})
	for i := range 2500 { // several SCAN batches
		s.Store(ctx, store.Set, store.Item{Key: fmt.Appendf(nil, "k%d", i), Value: []byte("v")}, storetest.Now)
	}
	raw.Set(ctx, "foreign", "x", 0)
	raw.Set(ctx, "axb:k1", "x", 0) // would match an unescaped a*[b]:*
	raw.Set(ctx, "a*[b]", "x", 0)  // the prefix without its colon
	raw.HSet(ctx, "other:k1", "v", "x")
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	keys := raw.Keys(ctx, "*").Val()
	if len(keys) != 4 {
		t.Fatalf("after flush: %d keys %q, want the 4 foreign ones", len(keys), keys)
	}
	if _, err := s.Get(ctx, []byte("k1"), nil, storetest.Now); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get after flush: %v", err)
	}

	noPrefix, err := New(Options{Addrs: []string{srv.Addr()}})
	if err != nil {
		t.Fatal(err)
	}
	defer noPrefix.Close()
	if err := noPrefix.Flush(ctx); err == nil || !strings.Contains(err.Error(), "key_prefix is required") {
		t.Fatalf("Flush without prefix: %v", err)
	}
	if n := raw.DBSize(ctx).Val(); n != 4 {
		t.Fatalf("Flush without prefix deleted keys: %d left", n)
	}
}

// countHook counts the round trips a client makes.
type countHook struct{ cmds, pipelines atomic.Int64 }

func (h *countHook) DialHook(next goredis.DialHook) goredis.DialHook { return next }
func (h *countHook) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		h.cmds.Add(1)
		return next(ctx, cmd)
	}
}
func (h *countHook) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		h.pipelines.Add(1)
		return next(ctx, cmds)
	}
}

func TestApplyBatch(t *testing.T) {
	srv := testenv.Redis(t, testenv.RedisOptions{})
	s := newStore(t, srv, Options{KeyPrefix: "b:", MaxItemSize: 1000})
	raw := rawClient(t, srv)
	hook := &countHook{}
	s.c.AddHook(hook)
	now := storetest.Now
	item := func(k, v string, deadline int64, cas uint64) store.Item {
		return store.Item{Key: []byte(k), Value: []byte(v), Flags: 3, Deadline: deadline, CAS: cas}
	}
	s.Store(ctx, store.Set, item("gone", "x", 0, 0), now)
	s.Store(ctx, store.Set, item("expire", "x", 0, 0), now)
	raw.Set(ctx, "b:junk", "foreign", 0) // overwritten: Set semantics
	hook.cmds.Store(0)

	ops := []Op{
		{Item: item("a", "1", 0, 77)},
		{Item: item("b", "2", now+100, 0)},
		{Delete: true, Item: store.Item{Key: []byte("gone")}},
		{Delete: true, Item: store.Item{Key: []byte("never-existed")}},
		{Item: item("expire", "born expired", now, 0)},
		{Item: item("junk", "mine now", 0, 5)},
		{Item: item("big", strings.Repeat("x", 1000), 0, 0)},
		{Item: item("a", "1 again", 0, 78)}, // later ops win
	}
	// The first batch on a fresh server finds the script cache empty.
	s.c.ScriptFlush(ctx)
	hook.pipelines.Store(0)
	errs := s.ApplyBatch(ctx, ops, now)
	check := func() {
		t.Helper()
		for i, err := range errs {
			if i == 6 {
				if !errors.Is(err, store.ErrTooLarge) {
					t.Fatalf("op 6 (too large): %v", err)
				}
			} else if err != nil {
				t.Fatalf("op %d: %v", i, err)
			}
		}
		if it, err := s.Get(ctx, []byte("a"), nil, now); err != nil || string(it.Value) != "1 again" || it.CAS != 78 || it.Flags != 3 {
			t.Fatalf("a = %+v, %v", it, err)
		}
		if it, err := s.Get(ctx, []byte("b"), nil, now); err != nil || it.Deadline != now+100 || it.CAS == 0 {
			t.Fatalf("b = %+v, %v", it, err)
		}
		if it, err := s.Get(ctx, []byte("junk"), nil, now); err != nil || string(it.Value) != "mine now" || it.CAS != 5 {
			t.Fatalf("junk = %+v, %v", it, err)
		}
		for _, k := range []string{"gone", "never-existed", "expire", "big"} {
			if n := raw.Exists(ctx, "b:"+k).Val(); n != 0 {
				t.Fatalf("%s exists", k)
			}
		}
	}
	check()
	if n := hook.pipelines.Load(); n != 2 {
		t.Fatalf("batch after SCRIPT FLUSH took %d pipelines, want 2 (NOSCRIPT, then the replay)", n)
	}

	// With the script cached: one pipeline, no other command.
	hook.pipelines.Store(0)
	hook.cmds.Store(0)
	errs = s.ApplyBatch(ctx, ops, now)
	if p, c := hook.pipelines.Load(), hook.cmds.Load(); p != 1 || c != 0 {
		t.Fatalf("batch took %d pipelines and %d single commands, want 1 and 0", p, c)
	}
	check()

	if errs := s.ApplyBatch(ctx, nil, now); len(errs) != 0 {
		t.Fatalf("empty batch: %v", errs)
	}

	// A failed round trip fails every op.
	srv.Kill(t)
	errs = s.ApplyBatch(ctx, ops[:2], now)
	for i, err := range errs {
		if err == nil || !strings.HasPrefix(err.Error(), "redis apply: ") {
			t.Fatalf("op %d against a dead server: %v", i, err)
		}
	}
}

func TestMalformedIsPerRequest(t *testing.T) {
	srv := testenv.Redis(t, testenv.RedisOptions{})
	s := newStore(t, srv, Options{KeyPrefix: "m:"})
	raw := rawClient(t, srv)
	now := storetest.Now
	s.Store(ctx, store.Set, store.Item{Key: []byte("good"), Value: []byte("ok")}, now)
	raw.Set(ctx, "m:str", "plain string", 0)
	raw.HSet(ctx, "m:nod", "v", "x", "f", "0", "c", "1")
	raw.HSet(ctx, "m:badd", "v", "x", "f", "0", "c", "1", "d", "soon")
	raw.HSet(ctx, "m:badf", "v", "x", "f", "-1", "c", "1", "d", "0")

	for _, k := range []string{"str", "nod", "badd", "badf"} {
		_, err := s.Get(ctx, []byte(k), nil, now)
		if !errors.Is(err, ErrMalformed) || !strings.HasPrefix(err.Error(), "redis get "+k+": malformed record: ") {
			t.Fatalf("Get(%s) = %v, want malformed record", k, err)
		}
		t.Logf("Get(%s): %v", k, err)
		// The connection is still good: the next request works.
		if it, err := s.Get(ctx, []byte("good"), nil, now); err != nil || string(it.Value) != "ok" {
			t.Fatalf("Get(good) after malformed %s = %+v, %v", k, it, err)
		}
		for _, mode := range []store.Mode{store.Add, store.Replace, store.CAS, store.Append} {
			if _, err := s.Store(ctx, mode, store.Item{Key: []byte(k), Value: []byte("x"), CAS: 1}, now); !errors.Is(err, ErrMalformed) {
				t.Fatalf("%s %s = %v, want malformed", mode, k, err)
			}
		}
		if _, err := s.Touch(ctx, []byte(k), 0, nil, now); !errors.Is(err, ErrMalformed) {
			t.Fatalf("Touch(%s) = %v", k, err)
		}
		if _, err := s.Incr(ctx, []byte(k), store.IncrOptions{Delta: 1}, now); !errors.Is(err, ErrMalformed) {
			t.Fatalf("Incr(%s) = %v", k, err)
		}
	}
	if _, err := s.Incr(ctx, []byte("good"), store.IncrOptions{Delta: 1}, now); !errors.Is(err, store.ErrNonNumeric) {
		t.Fatalf("Incr(good) = %v", err)
	}
	// Delete removes whatever is there; Set overwrites it.
	if err := s.Delete(ctx, []byte("str"), store.DeleteOptions{}, now); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Store(ctx, store.Set, store.Item{Key: []byte("nod"), Value: []byte("fixed")}, now); err != nil {
		t.Fatal(err)
	}
	if it, err := s.Get(ctx, []byte("nod"), nil, now); err != nil || string(it.Value) != "fixed" {
		t.Fatalf("Get(nod) after set = %+v, %v", it, err)
	}
}

func TestConcurrentIncr(t *testing.T) {
	srv := testenv.Redis(t, testenv.RedisOptions{})
	a := newStore(t, srv, Options{KeyPrefix: "i:"})
	b := newStore(t, srv, Options{KeyPrefix: "i:"})
	now := storetest.Now
	a.Store(ctx, store.Set, store.Item{Key: []byte("n"), Value: []byte("0")}, now)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		s := a
		if g%2 == 1 {
			s = b
		}
		wg.Go(func() {
			for range 25 {
				if _, err := s.Incr(ctx, []byte("n"), store.IncrOptions{Delta: 1}, now); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if it, _ := a.Get(ctx, []byte("n"), nil, now); string(it.Value) != "200" {
		t.Fatalf("after 200 concurrent incr: %q", it.Value)
	}
}

func TestDurableAcrossKill(t *testing.T) {
	srv := testenv.Redis(t, testenv.RedisOptions{AOF: true})
	// fsync on every write can outlast the 100ms default on a busy disk;
	// this test is about durability, not deadlines.
	s := newStore(t, srv, Options{Timeout: 5 * time.Second})
	now := time.Now().Unix()
	cas := make([]uint64, 200)
	for i := range cas {
		c, err := s.Store(ctx, store.Set, store.Item{Key: fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, "value %d", i), Flags: uint32(i), Deadline: now + 3600}, now)
		if err != nil {
			t.Fatalf("set %d: %v", i, err)
		}
		cas[i] = c
	}
	srv.Kill(t)
	srv.Restart(t)
	// The same store reconnects by itself.
	for i := range cas {
		it, err := s.Get(ctx, fmt.Appendf(nil, "k%d", i), nil, now)
		if err != nil {
			t.Fatalf("get %d after restart: %v", i, err)
		}
		if string(it.Value) != fmt.Sprintf("value %d", i) || it.Flags != uint32(i) || it.CAS != cas[i] || it.Deadline != now+3600 {
			t.Fatalf("record %d after restart: %+v", i, it)
		}
	}
	// Scripts are reloaded after the restart emptied the script cache.
	if _, err := s.Store(ctx, store.Add, store.Item{Key: []byte("new"), Value: []byte("v")}, now); err != nil {
		t.Fatal(err)
	}
}

func TestStoppedServerTimesOut(t *testing.T) {
	srv := testenv.Redis(t, testenv.RedisOptions{})
	const timeout = 100 * time.Millisecond
	s := newStore(t, srv, Options{Timeout: timeout})
	now := storetest.Now
	if _, err := s.Store(ctx, store.Set, store.Item{Key: []byte("k"), Value: []byte("v")}, now); err != nil {
		t.Fatal(err)
	}
	srv.Stop(t)
	calls := map[string]func() error{
		"get": func() error { _, err := s.Get(ctx, []byte("k"), nil, now); return err },
		"set": func() error {
			_, err := s.Store(ctx, store.Set, store.Item{Key: []byte("k"), Value: []byte("v")}, now)
			return err
		},
		"incr":  func() error { _, err := s.Incr(ctx, []byte("k"), store.IncrOptions{Delta: 1}, now); return err },
		"flush": func() error { return s.Flush(ctx) },
		"batch": func() error {
			return s.ApplyBatch(ctx, []Op{{Item: store.Item{Key: []byte("k"), Value: []byte("v")}}}, now)[0]
		},
	}
	for name, call := range calls {
		start := time.Now()
		err := call()
		took := time.Since(start)
		if err == nil || errors.Is(err, store.ErrNotFound) {
			t.Fatalf("%s against a stopped server: err = %v", name, err)
		}
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Errorf("%s: %v is not a timeout", name, err)
		}
		if took > timeout+500*time.Millisecond {
			t.Errorf("%s took %v, want at most Timeout+500ms", name, took)
		}
		t.Logf("%s failed after %v: %v", name, took, err)
	}
	// A fresh connection times out as well (dial succeeds, handshake hangs).
	fresh := newStore(t, srv, Options{Timeout: timeout})
	start := time.Now()
	if _, err := fresh.Get(ctx, []byte("k"), nil, now); err == nil {
		t.Fatal("fresh client got an answer from a stopped server")
	}
	if took := time.Since(start); took > timeout+500*time.Millisecond {
		t.Errorf("fresh get took %v", took)
	}
	srv.Cont(t)
	// The timed-out writes were sent and may still be applied now: they
	// all write the same value.
	if it, err := s.Get(ctx, []byte("k"), nil, now); err != nil || string(it.Value) != "v" {
		t.Fatalf("after SIGCONT: %+v, %v", it, err)
	}
}

func TestContextHonoured(t *testing.T) {
	srv := testenv.Redis(t, testenv.RedisOptions{})
	s := newStore(t, srv, Options{Timeout: 5 * time.Second})
	srv.Stop(t)
	defer srv.Cont(t)
	c, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := s.Get(c, []byte("k"), nil, storetest.Now)
	if err == nil {
		t.Fatal("no error")
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("ctx deadline 50ms, Timeout 5s: took %v (%v)", took, err)
	}
}

func TestExpiryEvents(t *testing.T) {
	t.Parallel()
	srv := testenv.Redis(t, testenv.RedisOptions{Args: []string{"--notify-keyspace-events", "Kg"}})
	s := newStore(t, srv, Options{KeyPrefix: "e:", DB: 2})
	other := newStore(t, srv, Options{KeyPrefix: "other:", DB: 2})
	if err := s.EnableExpiryEvents(ctx); err != nil {
		t.Fatal(err)
	}
	flags := srv.Do(t, "CONFIG", "GET", "notify-keyspace-events")
	for _, c := range "KgEx" {
		if !strings.ContainsRune(flags, c) {
			t.Fatalf("notify-keyspace-events = %q: %c lost or missing", flags, c)
		}
	}
	if err := s.EnableExpiryEvents(ctx); err != nil { // idempotent
		t.Fatal(err)
	}
	got := make(chan string, 10)
	stop, err := s.SubscribeExpired(ctx, func(key string) { got <- key })
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	now := time.Now().Unix()
	// 1-2 s of real time left: Redis expires the keys by itself.
	other.Store(ctx, store.Set, store.Item{Key: []byte("theirs"), Value: []byte("v"), Deadline: now + 2}, now)
	s.Store(ctx, store.Set, store.Item{Key: []byte("mine"), Value: []byte("v"), Deadline: now + 2}, now)
	s.Store(ctx, store.Set, store.Item{Key: []byte("kept"), Value: []byte("v"), Deadline: now + 3600}, now)
	select {
	case k := <-got:
		if k != "mine" {
			t.Fatalf("expired event for %q, want mine", k)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no expired event within 5s")
	}
	stop()
	stop() // idempotent
	select {
	case k := <-got:
		t.Fatalf("unexpected second event %q", k)
	default:
	}
}

func TestMergeEventFlags(t *testing.T) {
	for in, want := range map[string]string{"": "Ex", "Kg": "KgEx", "AE": "AE", "Ex": "Ex", "xK": "xKE", "KA": "KAE"} {
		if got := mergeEventFlags(in); got != want {
			t.Errorf("mergeEventFlags(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestOptions(t *testing.T) {
	for _, o := range []Options{
		{},
		{Addrs: []string{"a:1", "b:2"}},
		{Addrs: []string{"a:1"}, Cluster: true, MasterName: "m"},
		{Addrs: []string{"a:1"}, Cluster: true, DB: 1},
		{Addrs: []string{"a:1"}, DB: -1},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) accepted", o)
		}
	}
	for _, tc := range []struct {
		o    Options
		want string
	}{
		{Options{Addrs: []string{"a:1"}}, "*redis.Client"},
		{Options{Addrs: []string{"a:1"}, Cluster: true}, "*redis.ClusterClient"},
		{Options{Addrs: []string{"a:1", "b:2"}, Cluster: true}, "*redis.ClusterClient"},
		{Options{Addrs: []string{"a:1", "b:2"}, MasterName: "m"}, "*redis.Client"}, // failover client
	} {
		s, err := New(tc.o)
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprintf("%T", s.c); got != tc.want {
			t.Errorf("New(%+v) client = %s, want %s", tc.o, got, tc.want)
		}
		if s.timeout != DefaultTimeout || s.maxItem != 1<<20 {
			t.Errorf("defaults: timeout %v, max item %d", s.timeout, s.maxItem)
		}
		s.Close()
	}
}

// TestConformanceSentinel runs the suite through the failover client: a
// Sentinel monitoring one master.
func TestConformanceSentinel(t *testing.T) {
	t.Parallel()
	master := testenv.Redis(t, testenv.RedisOptions{Password: "pw"})
	_, port, _ := net.SplitHostPort(master.Addr())
	dir := t.TempDir()
	conf := filepath.Join(dir, "sentinel.conf")
	cfg := fmt.Sprintf("bind 127.0.0.1\ndir %s\nsentinel monitor repcache 127.0.0.1 %s 1\nsentinel auth-pass repcache pw\n", dir, port)
	if err := os.WriteFile(conf, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	sport := strconv.Itoa(testenv.FreePort(t))
	saddr := net.JoinHostPort("127.0.0.1", sport)
	testenv.Start(t, testenv.LookPath(t, "redis-server", "redis-server"), []string{conf, "--sentinel", "--port", sport}, saddr)
	storetest.Run(t, func(t *testing.T) store.Store {
		return newStore(t, master, Options{Addrs: []string{saddr}, MasterName: "repcache", Password: "pw", Timeout: time.Second})
	})
}
