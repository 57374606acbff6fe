package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/repcache/repcache/internal/config"
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
	if got := lifetime("192.0.2.1"); got < 7*86400-5 || got > 7*86400+5 {
		t.Fatalf("retention before the reload: %ds", got)
	}

	writeCfg("24h", "") // the file watch reloads it
	p.waitLog(t, "configuration reloaded", 1)
	if got := lifetime("192.0.2.2"); got < 86400-5 || got > 86400+5 {
		t.Fatalf("retention after the reload: %ds, want 1d", got)
	}

	writeCfg("24h", "bogus_key: 1\n") // refused; the watch may also see it
	p.cmd.Process.Signal(syscall.SIGHUP)
	p.waitLog(t, "configuration reload refused", 1)
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

// leaves lists the dotted koanf keys of t's fields, down to the ones that
// are not structs.
func leaves(t reflect.Type, prefix string) []string {
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("koanf")
		if tag == "" || tag == "-" {
			continue
		}
		if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeFor[time.Duration]() {
			out = append(out, leaves(f.Type, prefix+tag+".")...)
			continue
		}
		out = append(out, prefix+tag)
	}
	return out
}

func TestEverySettingIsInTheTable(t *testing.T) {
	for _, key := range leaves(reflect.TypeFor[config.Config](), "") {
		n := 0
		for _, s := range settings {
			if s.name == key || strings.HasPrefix(key, s.name+".") {
				n++
			}
		}
		if n != 1 {
			t.Errorf("configuration key %s is in %d reload settings, want 1", key, n)
		}
	}
}

func TestChangesSplitsLiveAndRestartOnly(t *testing.T) {
	started := config.Default()
	next := config.Default()
	next.Log.Level = "debug"
	next.Limits.MaxConnections = 7
	next.Cache.Memory.MaxBytes *= 2
	next.Listen = []string{"127.0.0.1:11311"}
	live, restart := changes(started, started, next)
	var names []string
	for _, s := range live {
		names = append(names, s.name)
	}
	if got, want := strings.Join(names, ","), "limits.max_connections,log.level"; got != want {
		t.Errorf("live changes = %s, want %s", got, want)
	}
	if got, want := strings.Join(restart, ","), "listen,cache"; got != want {
		t.Errorf("restart-only changes = %s, want %s", got, want)
	}
	// A live setting changed back to the starting value is applied again:
	// it is compared with what is in force, not with the start.
	live, _ = changes(started, next, config.Default())
	if len(live) != 2 {
		t.Errorf("reverting two live settings applies %d", len(live))
	}
}

// watchedRepcache serves with the config file at path (written by the
// caller first) and returns a function that waits for the n-th reload.
func watchedRepcache(t *testing.T, path, addr string) (*proc, func(n int)) {
	t.Helper()
	p := start(t, nil, "--config", path)
	p.waitListening(t, addr)
	return p, func(n int) { t.Helper(); p.waitLog(t, "configuration reloaded", n) }
}

// watchedConfig differs by a live setting (the connection limit).
func watchedConfig(addr, maxConns string) []byte {
	return []byte(fmt.Sprintf("listen: [%q]\nadmin: {listen: \"\"}\nlimits: {max_connections: %s}\n", addr, maxConns))
}

func TestWatchSurvivesDeleteAndRecreate(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	path := filepath.Join(t.TempDir(), "repcache.yaml")
	os.WriteFile(path, watchedConfig(addr, "100"), 0o644)
	p, reloaded := watchedRepcache(t, path, addr)
	os.Remove(path)
	time.Sleep(300 * time.Millisecond) // let the removal be seen on its own
	os.WriteFile(path, watchedConfig(addr, "101"), 0o644)
	reloaded(1)
	// The watch is still alive: a later edit in place reloads again.
	os.WriteFile(path, watchedConfig(addr, "102"), 0o644)
	reloaded(2)
	if strings.Contains(p.out.String(), "reload refused") {
		t.Errorf("a reload was refused:\n%s", p.out.String())
	}
}

func TestWatchSurvivesRenameOver(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	dir := t.TempDir()
	path := filepath.Join(dir, "repcache.yaml")
	os.WriteFile(path, watchedConfig(addr, "100"), 0o644)
	_, reloaded := watchedRepcache(t, path, addr)
	for i, level := range []string{"101", "102"} {
		tmp := filepath.Join(dir, ".repcache.yaml.tmp")
		os.WriteFile(tmp, watchedConfig(addr, level), 0o644)
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
		reloaded(i + 1)
	}
}

// TestWatchFollowsConfigMapSwaps lays the file out as the kubelet does
// (repcache.yaml -> ..data/repcache.yaml, ..data -> a timestamped
// directory) and swaps ..data atomically, twice.
func TestWatchFollowsConfigMapSwaps(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	dir := t.TempDir()
	version := func(name, level string) {
		os.Mkdir(filepath.Join(dir, name), 0o755)
		os.WriteFile(filepath.Join(dir, name, "repcache.yaml"), watchedConfig(addr, level), 0o644)
	}
	version("..2026_12_01_00_00_00.1", "100")
	os.Symlink("..2026_12_01_00_00_00.1", filepath.Join(dir, "..data"))
	os.Symlink("..data/repcache.yaml", filepath.Join(dir, "repcache.yaml"))
	_, reloaded := watchedRepcache(t, filepath.Join(dir, "repcache.yaml"), addr)
	old := "..2026_12_01_00_00_00.1"
	for i, level := range []string{"101", "102"} {
		name := fmt.Sprintf("..2026_12_01_00_00_0%d.1", i+1)
		version(name, level)
		os.Symlink(name, filepath.Join(dir, "..data_tmp"))
		if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
		os.RemoveAll(filepath.Join(dir, old))
		old = name
		reloaded(i + 1)
	}
}
