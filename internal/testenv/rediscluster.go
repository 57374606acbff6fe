package testenv

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// RedisCluster is a private Redis Cluster on loopback ports: masters with
// replicas each, every node a RedisServer (killable, restartable), with a
// one-second node timeout so that a failover takes seconds.
type RedisCluster struct {
	Nodes []*RedisServer
}

// NewRedisCluster starts masters*(1+replicas) redis-servers in cluster
// mode, joins them with redis-cli --cluster create and waits until every
// node reports cluster_state:ok.
func NewRedisCluster(t testing.TB, masters, replicas int) *RedisCluster {
	t.Helper()
	cli := LookPath(t, "redis-cli", "redis-tools")
	c := &RedisCluster{}
	for range masters * (1 + replicas) {
		c.Nodes = append(c.Nodes, Redis(t, RedisOptions{Args: []string{
			"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "1000", "--notify-keyspace-events", "Ex",
			"--repl-diskless-sync-delay", "0",
		}}))
	}
	args := []string{"--cluster", "create"}
	args = append(args, c.Addrs()...)
	args = append(args, "--cluster-replicas", fmt.Sprint(replicas), "--cluster-yes")
	if out, err := exec.Command(cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli %q: %v\n%s", args, err, out)
	}
	c.WaitHealthy(t, masters)
	return c
}

// Addrs are every node's host:port.
func (c *RedisCluster) Addrs() []string {
	var a []string
	for _, n := range c.Nodes {
		a = append(a, n.Addr())
	}
	return a
}

// alive reports whether n answers.
func alive(n *RedisServer) bool {
	_, err := redisDo(n.addr, n.password, time.Second, "PING")
	return err == nil
}

// Role is a running node's role ("master" or "slave").
func (c *RedisCluster) Role(t testing.TB, n *RedisServer) string {
	t.Helper()
	role, _, _ := strings.Cut(n.Do(t, "ROLE"), "\n")
	return role
}

// Masters are the running nodes that are masters.
func (c *RedisCluster) Masters(t testing.TB) []*RedisServer {
	t.Helper()
	var m []*RedisServer
	for _, n := range c.Nodes {
		if alive(n) && c.Role(t, n) == "master" {
			m = append(m, n)
		}
	}
	return m
}

// WaitHealthy waits until every running node reports cluster_state:ok,
// masters running nodes are masters (after a failover: the replica of a
// killed master has been promoted) and every running replica whose master
// runs is in sync with it (a replica that never synced cannot take over).
func (c *RedisCluster) WaitHealthy(t testing.TB, masters int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ok := len(c.Masters(t)) == masters
		for _, n := range c.Nodes {
			if !ok || !alive(n) {
				continue
			}
			info, err := redisDo(n.addr, n.password, time.Second, "CLUSTER", "INFO")
			ok = err == nil && strings.Contains(info, "cluster_state:ok")
			if role, err := redisDo(n.addr, n.password, time.Second, "ROLE"); ok && err == nil && strings.HasPrefix(role, "slave\n") {
				f := strings.Split(role, "\n")
				if len(f) >= 4 && f[3] != "connected" {
					if _, err := redisDo(f[1]+":"+f[2], n.password, time.Second, "PING"); err == nil {
						ok = false // its master runs: wait for the sync
					}
				}
			}
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			var st []string
			for _, n := range c.Nodes {
				role, _ := redisDo(n.addr, n.password, time.Second, "ROLE")
				info, _ := redisDo(n.addr, n.password, time.Second, "CLUSTER", "INFO")
				state, _, _ := strings.Cut(info, "\r\n")
				st = append(st, fmt.Sprintf("%s: %.30q %s", n.addr, role, state))
			}
			t.Fatalf("testenv: Redis Cluster not healthy with %d masters after 60s:\n%s", masters, strings.Join(st, "\n"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
