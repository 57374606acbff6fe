package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/repcache/repcache/internal/testenv"
)

// TestMetricsLint scrapes a live repcache (both tiers configured, after a
// little traffic) and runs the exposition through promtool's linter; it also
// checks that every metric family docs/metrics.md lists is exported.
func TestMetricsLint(t *testing.T) {
	mc := testenv.Memcached(t, "-I", "2m")
	rd := testenv.Redis(t, testenv.RedisOptions{})
	port, admin := testenv.FreePort(t), testenv.FreePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	p := start(t, nil, "--listen", addr, "--admin.listen", fmt.Sprintf("127.0.0.1:%d", admin),
		"--cache.backend", "memcached", "--cache.memcached.servers", mc,
		"--backup.backend", "redis", "--backup.redis.addrs", rd.Addr())
	p.waitListening(t, addr)
	c := memcache.New(addr)
	now := fmt.Sprint(time.Now().Unix() + 86400)
	c.Set(&memcache.Item{Key: "postscreen:192.0.2.1", Value: []byte(now + ";1;1;1;1")})
	c.Get("postscreen:192.0.2.1")
	c.Get("verify:nobody@test.example")
	c.Set(&memcache.Item{Key: "postscreen:192.0.2.2", Value: []byte("garbage")})
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", admin))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	promtool := testenv.LookPath(t, "promtool", "prometheus")
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
	for _, name := range []string{
		"repcache_build_info", "repcache_commands_total", "repcache_request_duration_seconds",
		"repcache_lookups_total", "repcache_expirations_total", "repcache_expired_reads_total",
		"repcache_record_lifetime_seconds", "repcache_backend_request_duration_seconds",
		"repcache_backend_up", "repcache_backend_errors_total", "repcache_backend_breaker_state",
		"repcache_backup_queue_length", "repcache_backup_dropped_total", "repcache_backup_writes_total",
		"repcache_connections_current", "repcache_connections_total", "repcache_connections_rejected_total",
		"repcache_config_reloads_total", "repcache_config_last_reload_success_timestamp_seconds",
		"go_goroutines", "process_resident_memory_bytes",
	} {
		if !strings.Contains(string(body), "\n# TYPE "+name+" ") {
			t.Errorf("metric %s not exported", name)
		}
	}
	for _, series := range []string{
		`repcache_commands_total{command="set",map="postscreen",status="stored"} 1`,
		`repcache_commands_total{command="set",map="postscreen",status="refused"} 1`,
		`repcache_commands_total{command="gets",map="verify",status="miss"} 1`,
		`repcache_lookups_total{map="postscreen",result="hit",tier="cache"} 1`,
		`repcache_backend_up{backend="memcached"} 1`,
		`repcache_backend_up{backend="redis"} 1`,
	} {
		if !strings.Contains(string(body), series) {
			t.Errorf("series %s missing", series)
		}
	}
}
