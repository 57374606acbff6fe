package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/repcache/repcache/internal/testenv"
)

func TestReloadUnderLoad(t *testing.T) {
	port, admin := testenv.FreePort(t), testenv.FreePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cfg := path.Join(t.TempDir(), "repcache.yaml")
	writeCfg := func(retention, extra string) {
		os.WriteFile(cfg, []byte(fmt.Sprintf(`listen: [%q]
admin:
  listen: "127.0.0.1:%d"
maps:
  - {name: postscreen, prefix: "postscreen:", kind: postscreen, retention: %s}
%s`, addr, admin, retention, extra)), 0o644)
	}
	writeCfg("168h", "")
	p := start(t, nil, "--config", cfg)
	p.waitListening(t, addr)

	// Steady load across both reloads: every request must succeed.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []error
	requests := 0
	for w := 0; w < 3; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			c := memcache.New(addr)
			c.Timeout = 5 * time.Second
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k := fmt.Sprintf("other:%d:%d", w, i%50)
				err := c.Set(&memcache.Item{Key: k, Value: []byte("v")})
				if err == nil {
					_, err = c.Get(k)
				}
				mu.Lock()
				requests += 2
				if err != nil {
					failures = append(failures, err)
				}
				mu.Unlock()
			}
		}(w)
	}

	m := dialMC(t, addr)
	lifetime := func(ip string) int64 {
		t.Helper()
		stamp := time.Now().Unix() + 3600
		rec := fmt.Sprintf("%d;1;1;1;1", stamp)
		if l := m.line(fmt.Sprintf("set postscreen:%s 0 0 %d\r\n%s\r\n", ip, len(rec), rec)); l != "STORED" {
			t.Fatal(l)
		}
		_, ttl, _ := m.record("postscreen:" + ip)
		return ttl - (stamp - time.Now().Unix())
	}
	waitLog := func(what string, n int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for strings.Count(p.out.String(), what) < n {
			if time.Now().After(deadline) {
				t.Fatalf("no %q in the log:\n%s", what, p.out.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if got := lifetime("192.0.2.1"); got < 7*86400-5 || got > 7*86400+5 {
		t.Fatalf("retention before the reload: %ds", got)
	}

	writeCfg("24h", "") // the file watch reloads it
	waitLog("configuration reloaded", 1)
	if got := lifetime("192.0.2.2"); got < 86400-5 || got > 86400+5 {
		t.Fatalf("retention after the reload: %ds, want 1d", got)
	}

	writeCfg("24h", "bogus_key: 1\n") // refused; the watch may also see it
	p.cmd.Process.Signal(syscall.SIGHUP)
	waitLog("configuration reload refused", 1)
	if !strings.Contains(p.out.String(), `unknown field \"bogus_key\"`) {
		t.Fatalf("the refusal does not name the bad field:\n%s", p.out.String())
	}
	if got := lifetime("192.0.2.3"); got < 86400-5 || got > 86400+5 {
		t.Fatalf("retention after a refused reload: %ds, want the 1d in force", got)
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d of %d requests failed across the reloads, first: %v", len(failures), requests, failures[0])
	}
	t.Logf("%d requests across two reloads, none failed", requests)

	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", admin))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`repcache_config_reloads_total{result="success"} 1`, `repcache_config_reloads_total{result="failure"}`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(string(body), `repcache_config_reloads_total{result="failure"} 0`) {
		t.Error("the refused reload was not counted")
	}
}
