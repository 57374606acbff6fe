package testenv

import (
	"strings"
	"testing"
	"time"
)

func TestRedisLifecycle(t *testing.T) {
	r := Redis(t, RedisOptions{AOF: true, Password: "s3cret"})
	if got := r.Do(t, "SET", "k", "v"); got != "OK" {
		t.Fatalf("SET = %q", got)
	}
	if _, err := redisDo(r.Addr(), "", time.Second, "GET", "k"); err == nil || !strings.Contains(err.Error(), "NOAUTH") {
		t.Fatalf("GET without password: err = %v, want NOAUTH", err)
	}
	if got := r.Do(t, "CONFIG", "GET", "appendfsync"); got != "appendfsync\nalways" {
		t.Fatalf("appendfsync = %q", got)
	}
	if got := r.Do(t, "CONFIG", "GET", "save"); got != "save\n" {
		t.Fatalf("save = %q, want empty", got)
	}

	// SIGKILL: the acknowledged write is in the fsynced AOF.
	r.Kill(t)
	if _, err := redisDo(r.Addr(), r.password, time.Second, "PING"); err == nil {
		t.Fatal("PING answered after Kill")
	}
	r.Restart(t)
	if got := r.Do(t, "GET", "k"); got != "v" {
		t.Fatalf("GET after restart = %q, want v", got)
	}

	// SIGSTOP: connections hang until SIGCONT.
	r.Stop(t)
	start := time.Now()
	if _, err := redisDo(r.Addr(), r.password, 200*time.Millisecond, "PING"); err == nil {
		t.Fatal("PING answered while stopped")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("stopped PING took %v", d)
	}
	r.Cont(t)
	if got := r.Do(t, "PING"); got != "PONG" {
		t.Fatalf("PING after Cont = %q", got)
	}
}

func TestRedisDefaults(t *testing.T) {
	r := Redis(t, RedisOptions{Args: []string{"--maxmemory", "10mb"}})
	if got := r.Do(t, "CONFIG", "GET", "appendonly"); got != "appendonly\nno" {
		t.Fatalf("appendonly = %q", got)
	}
	if got := r.Do(t, "CONFIG", "GET", "maxmemory"); got != "maxmemory\n10485760" {
		t.Fatalf("extra args not applied: maxmemory = %q", got)
	}
	if got := r.Do(t, "GET", "missing"); got != "(nil)" {
		t.Fatalf("GET missing = %q", got)
	}
}

func TestRedisClusterFailsOver(t *testing.T) {
	c := NewRedisCluster(t, 3, 1)
	if n := len(c.Masters(t)); n != 3 {
		t.Fatalf("%d masters", n)
	}
	c.Masters(t)[0].Kill(t)
	c.WaitHealthy(t, 3)
}
