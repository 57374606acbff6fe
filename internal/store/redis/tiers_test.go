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
