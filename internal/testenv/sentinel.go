package testenv

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// RedisSentinel is a private Redis master with replicas, watched by one
// Sentinel (quorum 1) that declares a silent master down after one second,
// all on loopback ports.
type RedisSentinel struct {
	Name     string
	Servers  []*RedisServer // Servers[0] starts as the master
	Sentinel string         // the Sentinel's host:port
}

// NewRedisSentinel starts a master, replicas replicas of it and a Sentinel,
// and waits until the replicas are in sync and the Sentinel knows them.
func NewRedisSentinel(t testing.TB, replicas int) *RedisSentinel {
	t.Helper()
	rs := &RedisSentinel{Name: "repcache"}
	master := Redis(t, RedisOptions{})
	rs.Servers = append(rs.Servers, master)
	host, port, _ := net.SplitHostPort(master.Addr())
	for range replicas {
		rs.Servers = append(rs.Servers, Redis(t, RedisOptions{Args: []string{"--replicaof", host, port, "--repl-diskless-sync-delay", "0"}}))
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "sentinel.conf")
	cfg := fmt.Sprintf("bind 127.0.0.1\ndir %s\nsentinel monitor %s %s %s 1\nsentinel down-after-milliseconds %s 1000\nsentinel failover-timeout %s 5000\n",
		dir, rs.Name, host, port, rs.Name, rs.Name)
	if err := os.WriteFile(conf, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	sport := strconv.Itoa(FreePort(t))
	rs.Sentinel = net.JoinHostPort("127.0.0.1", sport)
	Start(t, LookPath(t, "redis-server", "redis-server"), []string{conf, "--sentinel", "--port", sport}, rs.Sentinel)
	rs.wait(t, "replicas in sync and known to the Sentinel", func() bool {
		for _, r := range rs.Servers[1:] {
			role, err := redisDo(r.addr, "", time.Second, "ROLE")
			if f := strings.Split(role, "\n"); err != nil || len(f) < 4 || f[3] != "connected" {
				return false
			}
		}
		reply, err := redisDo(rs.Sentinel, "", time.Second, "SENTINEL", "REPLICAS", rs.Name)
		return err == nil && strings.Count(reply, "ip\n127.0.0.1") >= replicas
	})
	return rs
}

// Master is the address the Sentinel reports for the master.
func (rs *RedisSentinel) Master(t testing.TB) string {
	t.Helper()
	reply, err := redisDo(rs.Sentinel, "", time.Second, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", rs.Name)
	if err != nil {
		t.Fatalf("sentinel: %v", err)
	}
	host, port, _ := strings.Cut(reply, "\n")
	return net.JoinHostPort(host, port)
}

// WaitFailover waits until the Sentinel reports a master other than old
// and that server answers as a master.
func (rs *RedisSentinel) WaitFailover(t testing.TB, old string) {
	t.Helper()
	rs.wait(t, "the Sentinel's failover", func() bool {
		m := rs.Master(t)
		role, err := redisDo(m, "", time.Second, "ROLE")
		return m != old && err == nil && strings.HasPrefix(role, "master\n")
	})
}

func (rs *RedisSentinel) wait(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("testenv: gave up waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
