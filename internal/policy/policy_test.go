package policy

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/repcache/repcache/internal/store"
	"github.com/repcache/repcache/internal/store/memory"
	"github.com/repcache/repcache/internal/ttl"
)

const now = int64(1_795_000_000)

const day = 24 * time.Hour

func testPolicy(t *testing.T, rejectUnknown bool) *Policy {
	t.Helper()
	ps, vf, grey := ttl.Defaults(ttl.Postscreen), ttl.Defaults(ttl.Verify), ttl.Defaults(ttl.Fixed)
	grey.TTL = 10 * time.Minute
	capped := ttl.Defaults(ttl.Postscreen)
	capped.ClientTTL = ttl.Cap
	return New([]Map{
		{Name: "postscreen", Prefix: "postscreen:", Rule: ps, MaxKeyLength: 1024},
		{Name: "verify", Prefix: "verify:", Rule: vf, MaxKeyLength: 1024},
		{Name: "grey", Prefix: "grey:", Rule: grey},
		{Name: "capped", Prefix: "postscreen:capped:", Rule: capped},
	}, Options{RejectUnknown: rejectUnknown})
}

func newLayer(t *testing.T, p *Policy, v View) (*Layer, *memory.Store) {
	t.Helper()
	mem, err := memory.New(memory.Options{MaxBytes: 8 << 20, SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mem.Close() })
	return NewLive(p).Layer(mem, v), mem
}

func set(s store.Store, key, val string, clientDeadline int64) error {
	_, err := s.Store(context.Background(), store.Set, store.Item{Key: []byte(key), Value: []byte(val), Deadline: clientDeadline}, now)
	return err
}

func deadline(t *testing.T, s store.Store, key string) int64 {
	t.Helper()
	it, err := s.Get(context.Background(), []byte(key), nil, now)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	return it.Deadline
}

func clientError(t *testing.T, err error, contains string) {
	t.Helper()
	var ce *store.ClientError
	if !errors.As(err, &ce) || !strings.Contains(ce.Msg, contains) {
		t.Fatalf("err = %v, want a ClientError containing %q", err, contains)
	}
}

func TestLifetimesFollowTheRecord(t *testing.T) {
	s, _ := newLayer(t, testPolicy(t, false), View{})
	pass := now + 1*int64(day/time.Second)
	// postscreen: latest passed stamp + 7d retention; the client's exptime (3600) is ignored.
	if err := set(s, "postscreen:192.0.2.1", "1795086400;1;1;1;1", now+3600); err != nil {
		t.Fatal(err)
	}
	if got, want := deadline(t, s, "postscreen:192.0.2.1"), pass+7*86400; got != want {
		t.Errorf("postscreen deadline = %d, want %d", got, want)
	}
	// verify, bounced: UPDATED + 3d.
	if err := set(s, "verify:nosuchuser@test.example", "2:0:1795000000:unknown user: \"nosuchuser\"", now+3600); err != nil {
		t.Fatal(err)
	}
	if got, want := deadline(t, s, "verify:nosuchuser@test.example"), now+3*86400; got != want {
		t.Errorf("verify bounce deadline = %d, want %d", got, want)
	}
	// verify, deliverable: UPDATED + 31d, past memcached's 30-day limit and not born expired.
	if err := set(s, "verify:user@test.example", "0:0:1795000000:250 2.1.5 Ok", 0); err != nil {
		t.Fatal(err)
	}
	if got, want := deadline(t, s, "verify:user@test.example"), now+31*86400; got != want {
		t.Errorf("verify OK deadline = %d, want %d", got, want)
	}
	// fixed: the configured ttl, whatever the client says.
	set(s, "grey:a/b/c", "anything", 0)
	if got := deadline(t, s, "grey:a/b/c"); got != now+600 {
		t.Errorf("fixed deadline = %d, want %d", got, now+600)
	}
	// Unknown keys keep memcached semantics.
	set(s, "other", "x", now+5)
	if got := deadline(t, s, "other"); got != now+5 {
		t.Errorf("passthrough deadline = %d, want %d", got, now+5)
	}
	// The cleanup marker is stored as the client sent it.
	set(s, "postscreen:"+CleanupKey, "1795000000", now+3600)
	if got := deadline(t, s, "postscreen:"+CleanupKey); got != now+3600 {
		t.Errorf("cleanup marker deadline = %d, want %d", got, now+3600)
	}
}

func TestDeadRecordIsStoredNowhere(t *testing.T) {
	s, mem := newLayer(t, testPolicy(t, false), View{})
	set(s, "verify:old@test.example", "0:0:1700000000:ok", 0) // updated years ago
	if err := set(s, "verify:old@test.example", "0:0:1700000000:ok", 0); err != nil {
		t.Fatalf("a dead record must be answered STORED: %v", err)
	}
	if _, err := s.Get(context.Background(), []byte("verify:old@test.example"), nil, now); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("dead record readable: %v", err)
	}
	if st := mem.Stats(); st.Items != 0 {
		t.Fatalf("store holds %d items", st.Items)
	}
}

func TestMalformedRecordsAreRefused(t *testing.T) {
	s, _ := newLayer(t, testPolicy(t, false), View{})
	set(s, "postscreen:192.0.2.9", "1795086400;1;1;1;1", 0)
	for _, bad := range []string{"", "garbage", "1795086400;x;1;1;1", "-1;1;1;1;1"} {
		clientError(t, set(s, "postscreen:192.0.2.9", bad, 0), "map postscreen")
	}
	it, err := s.Get(context.Background(), []byte("postscreen:192.0.2.9"), nil, now)
	if err != nil || string(it.Value) != "1795086400;1;1;1;1" {
		t.Fatalf("good record lost after refused writes: %q, %v", it.Value, err)
	}
	for _, bad := range []string{"OK", "7:0:1795000000:x", "0:0:0:x", "0:1795000000"} {
		clientError(t, set(s, "verify:u@test.example", bad, 0), "map verify")
	}
	_, err = s.Store(context.Background(), store.Append, store.Item{Key: []byte("postscreen:192.0.2.9"), Value: []byte(";1")}, now)
	clientError(t, err, "append")
	_, err = s.Incr(context.Background(), []byte("postscreen:192.0.2.9"), store.IncrOptions{Delta: 1}, now)
	clientError(t, err, "incr")
}

func TestClientTTLCap(t *testing.T) {
	s, _ := newLayer(t, testPolicy(t, false), View{})
	set(s, "postscreen:capped:192.0.2.1", "1795086400;1;1;1;1", now+7200)
	if got := deadline(t, s, "postscreen:capped:192.0.2.1"); got != now+7200 {
		t.Errorf("capped deadline = %d, want the client's %d", got, now+7200)
	}
	// touch can shorten a capped record, never lengthen it; an ignore map keeps its own.
	s.Touch(context.Background(), []byte("postscreen:capped:192.0.2.1"), now+3600, nil, now)
	if got := deadline(t, s, "postscreen:capped:192.0.2.1"); got != now+3600 {
		t.Errorf("after touch: %d, want %d", got, now+3600)
	}
	s.Touch(context.Background(), []byte("postscreen:capped:192.0.2.1"), now+99999, nil, now)
	if got := deadline(t, s, "postscreen:capped:192.0.2.1"); got != now+3600 {
		t.Errorf("touch lengthened a capped record to %d", got)
	}
	set(s, "postscreen:192.0.2.2", "1795086400;1;1;1;1", 0)
	before := deadline(t, s, "postscreen:192.0.2.2")
	s.Touch(context.Background(), []byte("postscreen:192.0.2.2"), now+10, nil, now)
	if got := deadline(t, s, "postscreen:192.0.2.2"); got != before {
		t.Errorf("touch changed an ignore-map record: %d -> %d", before, got)
	}
}

func TestUnknownKeysAndViews(t *testing.T) {
	p := testPolicy(t, true)
	s, mem := newLayer(t, p, View{})
	clientError(t, set(s, "greylist:x", "v", 0), `key prefix "greylist:" matches no map`)
	if _, err := s.Get(context.Background(), []byte("greylist:x"), nil, now); err == nil {
		t.Fatal("unknown key readable under reject")
	}
	ro := NewLive(p).Layer(mem, View{ReadOnly: true})
	set(s, "verify:u@test.example", "0:0:1795000000:ok", 0)
	clientError(t, set(ro, "verify:u@test.example", "0:0:1795000000:ok", 0), "read-only")
	clientError(t, ro.Delete(context.Background(), []byte("verify:u@test.example"), store.DeleteOptions{}, now), "read-only")
	clientError(t, ro.Flush(context.Background()), "read-only")
	if _, err := ro.Get(context.Background(), []byte("verify:u@test.example"), nil, now); err != nil {
		t.Fatalf("read-only listener cannot read: %v", err)
	}
	onlyPS := NewLive(p).Layer(mem, View{Maps: map[string]bool{"postscreen": true}})
	_, err := onlyPS.Get(context.Background(), []byte("verify:u@test.example"), nil, now)
	clientError(t, err, "map verify is not served on this listener")
	clientError(t, onlyPS.Flush(context.Background()), "every map")
}

func TestLongKeysAreDigested(t *testing.T) {
	s, mem := newLayer(t, testPolicy(t, false), View{})
	if got := s.MaxKeyLength([]byte("verify:x")); got != 1024 {
		t.Fatalf("verify key limit = %d", got)
	}
	if got := s.MaxKeyLength([]byte("other")); got != 250 {
		t.Fatalf("unknown key limit = %d", got)
	}
	a := "verify:" + strings.Repeat("a", 400) + "@test.example"
	b := "verify:" + strings.Repeat("a", 400) + "@test.exampla"
	set(s, a, "0:0:1795000000:a", 0)
	set(s, b, "2:0:1795000000:b", 0)
	for key, want := range map[string]string{a: "0:0:1795000000:a", b: "2:0:1795000000:b"} {
		it, err := s.Get(context.Background(), []byte(key), nil, now)
		if err != nil || string(it.Value) != want {
			t.Fatalf("long key read back %q, %v; want %q", it.Value, err, want)
		}
	}
	// The store itself holds the digests: prefix + '#' + 43 characters.
	digest := testPolicy(t, false).storageKey(testPolicy(t, false).Map("verify"), []byte(a), nil)
	if len(digest) != len("verify:")+store.DigestLen || !strings.HasPrefix(string(digest), "verify:#") {
		t.Fatalf("digest key %q", digest)
	}
	if _, err := mem.Get(context.Background(), digest, nil, now); err != nil {
		t.Fatalf("digest not in the store: %v", err)
	}
}

// routeProbe is the real memory store with a look at the request carrier
// each call receives: no tier below the policy exists yet that reports the
// route it was given, so the test reads it where a tier would.
type routeProbe struct {
	next store.Store
	seen []store.Route
}

func (r *routeProbe) record(ctx context.Context) { r.seen = append(r.seen, store.RouteFrom(ctx)) }

func (r *routeProbe) Get(ctx context.Context, key, buf []byte, now int64) (store.Item, error) {
	r.record(ctx)
	return r.next.Get(ctx, key, buf, now)
}

func (r *routeProbe) Store(ctx context.Context, mode store.Mode, it store.Item, now int64) (uint64, error) {
	r.record(ctx)
	return r.next.Store(ctx, mode, it, now)
}

func (r *routeProbe) Delete(ctx context.Context, key []byte, o store.DeleteOptions, now int64) error {
	r.record(ctx)
	return r.next.Delete(ctx, key, o, now)
}

func (r *routeProbe) Incr(ctx context.Context, key []byte, o store.IncrOptions, now int64) (store.Counter, error) {
	r.record(ctx)
	return r.next.Incr(ctx, key, o, now)
}

func (r *routeProbe) MetaGet(ctx context.Context, key, buf []byte, o store.MetaGetOptions, now int64) (store.Item, store.MetaState, error) {
	r.record(ctx)
	return r.next.MetaGet(ctx, key, buf, o, now)
}

func (r *routeProbe) Touch(ctx context.Context, key []byte, deadline int64, buf []byte, now int64) (store.Item, error) {
	r.record(ctx)
	return r.next.Touch(ctx, key, deadline, buf, now)
}

func (r *routeProbe) Flush(ctx context.Context) error { return r.next.Flush(ctx) }
func (r *routeProbe) Close() error                    { return nil }

func TestRouteIsCarriedDown(t *testing.T) {
	ps, vf := ttl.Defaults(ttl.Postscreen), ttl.Defaults(ttl.Verify)
	p := New([]Map{
		{Name: "postscreen", Prefix: "postscreen:", Rule: ps, Route: store.Route{Backup: store.SyncBackup, FailOnBackupError: true}},
		{Name: "verify", Prefix: "verify:", Rule: vf, Route: store.Route{Backup: store.AsyncBackup}},
	}, Options{})
	_, mem := newLayer(t, p, View{})
	probe := &routeProbe{next: mem}
	s := NewLive(p).Layer(probe, View{})
	req := &store.Request{}
	ctx := store.NewContext(context.Background(), req)
	psRoute := store.Route{Map: "postscreen", Backup: store.SyncBackup, FailOnBackupError: true}
	vfRoute := store.Route{Map: "verify", Backup: store.AsyncBackup}
	steps := []struct {
		call func() error
		want store.Route
	}{
		{func() error {
			_, err := s.Store(ctx, store.Set, store.Item{Key: []byte("postscreen:192.0.2.1"), Value: []byte("1795086400;1;1;1;1")}, now)
			return err
		}, psRoute},
		{func() error { _, err := s.Get(ctx, []byte("postscreen:192.0.2.1"), nil, now); return err }, psRoute},
		{func() error {
			_, err := s.Store(ctx, store.Set, store.Item{Key: []byte("verify:u@test.example"), Value: []byte("0:0:1795000000:ok")}, now)
			return err
		}, vfRoute},
		{func() error { return s.Delete(ctx, []byte("verify:u@test.example"), store.DeleteOptions{}, now) }, vfRoute},
		{func() error {
			_, err := s.Store(ctx, store.Set, store.Item{Key: []byte("other"), Value: []byte("1")}, now)
			return err
		}, store.Route{}},
		{func() error { _, err := s.Incr(ctx, []byte("other"), store.IncrOptions{Delta: 1}, now); return err }, store.Route{}},
	}
	for i, st := range steps {
		req.Route = store.Route{Map: "stale"}
		if err := st.call(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if req.Route != st.want {
			t.Errorf("step %d: request route = %+v, want %+v", i, req.Route, st.want)
		}
		if got := probe.seen[len(probe.seen)-1]; got != st.want {
			t.Errorf("step %d: the store below saw route %+v, want %+v", i, got, st.want)
		}
	}
	// A refused request still names its map, for the protocol's metrics.
	ro := NewLive(p).Layer(probe, View{ReadOnly: true})
	req.Route = store.Route{}
	clientError(t, ro.Delete(ctx, []byte("verify:u@test.example"), store.DeleteOptions{}, now), "read-only")
	if req.Route != vfRoute {
		t.Errorf("refused request route = %+v, want %+v", req.Route, vfRoute)
	}
}

func TestBoundListenerOwnsEveryKey(t *testing.T) {
	p := testPolicy(t, true) // unknown_keys: reject, so a prefix lookup would refuse these keys
	bound, mem := newLayer(t, p, View{Bound: "verify", Maps: map[string]bool{"verify": true}})
	req := &store.Request{}
	ctx := store.NewContext(context.Background(), req)
	key := strings.Repeat("ab", 32) // a hex SHA-256, as Postfix 3.11 key_digest sends it
	if _, err := bound.Store(ctx, store.Set, store.Item{Key: []byte(key), Value: []byte("2:0:1795000000:x")}, now); err != nil {
		t.Fatal(err)
	}
	if req.Route.Map != "verify" {
		t.Errorf("route = %+v, want map verify", req.Route)
	}
	it, err := mem.Get(ctx, []byte("verify:"+key), nil, now)
	if err != nil || it.Deadline != now+3*86400 {
		t.Fatalf("stored under the map's prefix with deadline %d, %v; want %d", it.Deadline, err, now+3*86400)
	}
	if got := deadline(t, bound, key); got != now+3*86400 {
		t.Errorf("read back through the bound listener: deadline %d", got)
	}
	clientError(t, set(bound, key, "1795086400;1;1;1;1", 0), "map verify")
	clientError(t, bound.Flush(ctx), "every map")
}
