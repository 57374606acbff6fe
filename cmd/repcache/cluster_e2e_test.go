package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/repcache/repcache/internal/testenv"
)

// degradeMaps: sync writes, and on_backup_error at its default (degrade).
const degradeMaps = `maps:
  - {name: plain, prefix: "plain:", kind: passthrough, backup: sync}
`

// Row 8: a real Redis Cluster (3 masters, 3 replicas) through a failover:
// once the replica of a killed master is promoted, no acknowledged sync
// write is missing from Redis, expiry events arrive from every master, and
// a degrade episode is logged once.
func TestRedisClusterFailover(t *testing.T) {
	cl := testenv.NewRedisCluster(t, 3, 1)
	mcd := startMemcached(t)
	in := startInstanceWith(t, instanceConfig{memcached: mcd.addr, maps: degradeMaps,
		redis: fmt.Sprintf("    cluster: true\n    addrs: [\"%s\"]\n", strings.Join(cl.Addrs(), `", "`))})
	m := dialMC(t, in.addr)
	for i := range 100 {
		mustLine(t, m, fmt.Sprintf("set plain:before%d 0 0 1\r\nx\r\n", i), "STORED")
	}
	old := cl.Masters(t)
	victim := old[0]
	victim.Kill(t)
	cl.WaitHealthy(t, 3)
	var promoted *testenv.RedisServer
	for _, n := range cl.Masters(t) {
		if !slices.Contains(old, n) {
			promoted = n
		}
	}
	// repcache learns of the promotion from its next probe (at most one
	// probe interval later): until then its breaker may be open and writes
	// degrade (counted, logged once). Wait for one write that reached Redis.
	waitFor(t, "a write to reach the promoted master", func() bool {
		d := in.metric(t, "repcache_backup_degraded_writes_total")
		return m.line("set plain:probe 0 0 1\r\nx\r\n") == "STORED" && in.metric(t, "repcache_backup_degraded_writes_total") == d &&
			in.metric(t, "repcache_backend_up", `backend="redis"`) == 1
	})
	degradedBefore := in.metric(t, "repcache_backup_degraded_writes_total")
	var acked []string
	for i := range 100 {
		k := fmt.Sprintf("plain:after%d", i)
		if m.line(fmt.Sprintf("set %s 0 0 1\r\nx\r\n", k)) == "STORED" {
			acked = append(acked, k)
		}
	}
	rc := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: cl.Addrs()})
	defer rc.Close()
	ctx := context.Background()
	missing := 0
	for _, k := range acked {
		if n, err := rc.Exists(ctx, "repcache:"+k).Result(); err != nil || n != 1 {
			missing++
		}
	}
	degraded := in.metric(t, "repcache_backup_degraded_writes_total") - degradedBefore
	t.Logf("after the failover: %d of 100 sync writes acknowledged, %d of them missing from Redis; %v degraded writes", len(acked), missing, degraded)
	if missing > 0 {
		t.Errorf("%d acknowledged sync writes missing from Redis after the failover", missing)
	}
	if n := strings.Count(in.p.out.String(), "sync backup writes failing"); n > 1 {
		t.Errorf("the failover's degrade episode logged %d times, want at most once", n)
	}
	// Expiry events from every master, the promoted one included, once
	// repcache subscribed to it.
	waitFor(t, "a subscription on the promoted master", func() bool { return promoted.Do(t, "PUBSUB", "NUMPAT") != "0" })
	before := in.metric(t, "repcache_expirations_total", `tier="backup"`)
	const n = 30
	for i := range n {
		mustLine(t, m, fmt.Sprintf("set plain:ttl%d 0 1 1\r\nx\r\n", i), "STORED")
	}
	deadline := time.Now().Add(30 * time.Second)
	for in.metric(t, "repcache_expirations_total", `tier="backup"`)-before < n {
		if time.Now().After(deadline) {
			t.Fatalf("%v of %d expirations reported after the failover", in.metric(t, "repcache_expirations_total", `tier="backup"`)-before, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Row 8, Sentinel: the master killed, the replica promoted by the
// Sentinel; no acknowledged sync write is missing from the new master.
func TestRedisSentinelFailover(t *testing.T) {
	rs := testenv.NewRedisSentinel(t, 1)
	mcd := startMemcached(t)
	in := startInstanceWith(t, instanceConfig{memcached: mcd.addr, maps: degradeMaps,
		redis: fmt.Sprintf("    master_name: %s\n    addrs: [%q]\n", rs.Name, rs.Sentinel)})
	m := dialMC(t, in.addr)
	mustLine(t, m, "set plain:before 0 0 1\r\nx\r\n", "STORED")
	old := rs.Master(t)
	rs.Servers[0].Kill(t)
	rs.WaitFailover(t, old)
	// repcache follows the Sentinel's switch: wait for one write that
	// reached Redis (stored, not degraded).
	waitFor(t, "a write to reach the promoted master", func() bool {
		d := in.metric(t, "repcache_backup_degraded_writes_total")
		return m.line("set plain:probe 0 0 1\r\nx\r\n") == "STORED" && in.metric(t, "repcache_backup_degraded_writes_total") == d
	})
	degradedBefore := in.metric(t, "repcache_backup_degraded_writes_total")
	var acked []string
	for i := range 100 {
		k := fmt.Sprintf("plain:after%d", i)
		if m.line(fmt.Sprintf("set %s 0 0 1\r\nx\r\n", k)) == "STORED" {
			acked = append(acked, k)
		}
	}
	master := rs.Master(t)
	var promoted *testenv.RedisServer
	for _, s := range rs.Servers {
		if s.Addr() == master {
			promoted = s
		}
	}
	missing := 0
	for _, k := range acked {
		if promoted.Do(t, "EXISTS", "repcache:"+k) != "1" {
			missing++
		}
	}
	t.Logf("after the Sentinel failover: %d of 100 sync writes acknowledged, %d missing from the new master, %v degraded",
		len(acked), missing, in.metric(t, "repcache_backup_degraded_writes_total")-degradedBefore)
	if missing > 0 {
		t.Errorf("%d acknowledged sync writes missing from Redis after the Sentinel failover", missing)
	}
}
