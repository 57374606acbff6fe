package redis

import (
	"fmt"
	"testing"
	"time"

	"github.com/repcache/repcache/internal/store"
	"github.com/repcache/repcache/internal/testenv"
)

func TestCacheGeneration(t *testing.T) {
	srv := testenv.Redis(t, testenv.RedisOptions{})
	s := newStore(t, srv, Options{KeyPrefix: "p:"})
	if g, missing, err := s.CacheGeneration(ctx, 0); err != nil || g != 0 || !missing {
		t.Fatalf("first read: %d, missing %v, %v", g, missing, err)
	}
	if g, missing, err := s.CacheGeneration(ctx, 0); err != nil || g != 0 || missing {
		t.Fatalf("second read: %d, missing %v, %v", g, missing, err)
	}
	if g, err := s.NextCacheGeneration(ctx, 0); err != nil || g != 1 {
		t.Fatalf("next: %d, %v", g, err)
	}
	// A Redis that lost the key does not take the instances back.
	srv.Do(t, "DEL", "p:\x00repcache:cache-generation")
	if g, missing, err := s.CacheGeneration(ctx, 1); err != nil || g != 1 || !missing {
		t.Fatalf("after the loss: %d, missing %v, %v", g, missing, err)
	}
	// flush_all keeps it; the expiry subscription never reports it.
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if srv.Do(t, "GET", "p:\x00repcache:cache-generation") != "1" {
		t.Fatal("flush_all removed the cache generation")
	}
}

// TestClusterPingFollowsFailover runs against a real cluster of 3 masters
// with a replica each: after a master is killed and its replica promoted,
// Ping answers again (the slot map is reloaded) and every slot takes writes.
func TestClusterPingFollowsFailover(t *testing.T) {
	cl := testenv.NewRedisCluster(t, 3, 1)
	s, err := New(Options{Addrs: cl.Addrs(), Cluster: true, KeyPrefix: "p:"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	cl.Masters(t)[0].Kill(t)
	cl.WaitHealthy(t, 3)
	deadline := time.Now().Add(30 * time.Second)
	for s.Ping(ctx) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("Ping still fails after the failover: %v", s.Ping(ctx))
		}
		time.Sleep(50 * time.Millisecond)
	}
	now := time.Now().Unix()
	for i := range 100 {
		k := []byte(fmt.Sprint("k", i))
		if _, err := s.Store(ctx, store.Set, store.Item{Key: k, Value: []byte("v")}, now); err != nil {
			t.Fatalf("write %s after the failover: %v", k, err)
		}
	}
}

// TestMissLog: two stores on one Redis (two instances) share the record of
// missed cache writes: an announcement reaches the other's subscription at
// once, the list is what an instance starting later catches up with, it
// stops at the limit, and a generation announcement empties it.
func TestMissLog(t *testing.T) {
	srv := testenv.Redis(t, testenv.RedisOptions{})
	a := newStore(t, srv, Options{KeyPrefix: "p:"})
	b := newStore(t, srv, Options{KeyPrefix: "p:"})
	other := newStore(t, srv, Options{KeyPrefix: "q:"}) // another deployment on the same Redis
	keys, gens := make(chan string, 10), make(chan uint64, 10)
	subs := 0
	stop, err := b.SubscribeMissed(ctx, func(k string) { keys <- k }, func(g uint64) { gens <- g }, func() { subs++ })
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	if subs != 1 {
		t.Fatalf("subscribed called %d times by a subscription that returned, want 1", subs)
	}
	stopOther, err := other.SubscribeMissed(ctx, func(k string) { t.Errorf("prefix q: told of %q", k) }, func(uint64) {}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer stopOther()
	for _, k := range []string{"k1", "k*2"} {
		if listed, err := a.AnnounceMissed(ctx, []byte(k), 2); err != nil || !listed {
			t.Fatalf("announce %s: listed %v, %v", k, listed, err)
		}
		if got := receive(t, keys); got != k {
			t.Fatalf("b was told of %q, want %q", got, k)
		}
	}
	if listed, err := a.AnnounceMissed(ctx, []byte("k1"), 2); err != nil || !listed {
		t.Fatalf("a listed key again: listed %v, %v", listed, err)
	}
	receive(t, keys)
	if listed, err := a.AnnounceMissed(ctx, []byte("k3"), 2); err != nil || listed {
		t.Fatalf("past the limit: listed %v, %v", listed, err)
	}
	got, err := b.MissedWrites(ctx)
	if err != nil || len(got) != 2 {
		t.Fatalf("listed: %q, %v", got, err)
	}
	if err := b.ClearMissed(ctx, []string{"k1"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := a.MissedWrites(ctx); len(got) != 1 || got[0] != "k*2" {
		t.Fatalf("after clearing k1: %q", got)
	}
	if err := a.AnnounceGeneration(ctx, 7); err != nil {
		t.Fatal(err)
	}
	if g := receive(t, gens); g != 7 {
		t.Fatalf("b was told of generation %d", g)
	}
	if got, _ := b.MissedWrites(ctx); len(got) != 0 {
		t.Fatalf("after the generation: %q", got)
	}
	select {
	case k := <-keys:
		t.Fatalf("unexpected announcement %q", k)
	default:
	}
}

// TestMissLogResubscription: a subscription that lost its connection (Redis
// killed and restarted) says so when it is back, since announcements made
// meanwhile were lost, and delivers the ones made after.
func TestMissLogResubscription(t *testing.T) {
	srv := testenv.Redis(t, testenv.RedisOptions{})
	a := newStore(t, srv, Options{KeyPrefix: "p:"})
	b := newStore(t, srv, Options{KeyPrefix: "p:"})
	keys, subs := make(chan string, 10), make(chan struct{}, 10)
	stop, err := b.SubscribeMissed(ctx, func(k string) { keys <- k }, func(uint64) {}, func() { subs <- struct{}{} })
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	receive(t, subs)
	srv.Kill(t)
	srv.Restart(t)
	receive(t, subs) // the resubscription after the gap
	if listed, err := a.AnnounceMissed(ctx, []byte("after"), 10); err != nil || !listed {
		t.Fatalf("announce after the restart: listed %v, %v", listed, err)
	}
	if got := receive(t, keys); got != "after" {
		t.Fatalf("told of %q after the resubscription, want after", got)
	}
}

func receive[T any](t *testing.T, c chan T) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(10 * time.Second): // only keeps a broken build from hanging
		t.Fatal("no announcement arrived")
		panic("unreachable")
	}
}
