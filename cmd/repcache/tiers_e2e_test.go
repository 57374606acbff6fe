package main

import (
	"fmt"
	"os"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/repcache/repcache/internal/testenv"
)

// restartable is a memcached the test can kill, hang and restart on the
// same port.
type restartable struct {
	t    *testing.T
	bin  string
	args []string
	addr string
	cmd  interface{ Signal(os.Signal) error }
}

func startMemcached(t *testing.T) *restartable {
	port := testenv.FreePort(t)
	m := &restartable{t: t, bin: testenv.LookPath(t, "memcached", "memcached"), addr: fmt.Sprintf("127.0.0.1:%d", port)}
	m.args = []string{"-l", "127.0.0.1", "-p", strconv.Itoa(port), "-U", "0", "-t", "2", "-I", "2m"}
	if os.Geteuid() == 0 {
		m.args = append(m.args, "-u", "root")
	}
	m.start()
	return m
}

func (m *restartable) start() {
	m.cmd = testenv.Start(m.t, m.bin, m.args, m.addr).Process
}

func (m *restartable) kill() { m.cmd.Signal(syscall.SIGKILL); time.Sleep(50 * time.Millisecond) }

// tieredRepcache starts repcache with memcached as cache and Redis as
// backup; mapsYAML overrides the maps.
func tieredRepcache(t *testing.T, mc, redisAddr, mapsYAML string) (addr, cfg string, p *proc) {
	port := testenv.FreePort(t)
	addr = fmt.Sprintf("127.0.0.1:%d", port)
	cfg = path.Join(t.TempDir(), "repcache.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`listen: [%q]
admin:
  listen: ""
cache:
  backend: memcached
  memcached:
    servers: [%q]
backup:
  backend: redis
  redis:
    addrs: [%q]
    # Generous, so that a loaded test machine cannot turn a slow Redis
    # answer into a miss while memcached is down: memcached's 100ms
    # deadline is what these tests measure.
    timeout: 1s
%s`, addr, mc, redisAddr, mapsYAML)), 0o644)
	p = start(t, nil, "--config", cfg)
	p.waitListening(t, addr)
	return addr, cfg, p
}

const syncMaps = `maps:
  - {name: postscreen, prefix: "postscreen:", kind: postscreen, backup: sync, on_backup_error: fail}
  - {name: verify, prefix: "verify:", kind: verify, backup: sync, on_backup_error: fail}
  - {name: plain, prefix: "plain:", kind: passthrough, backup: sync, on_backup_error: fail}
`

func TestMemcachedRestartedEmptyRefillsFromRedis(t *testing.T) {
	mc := startMemcached(t)
	rd := testenv.Redis(t, testenv.RedisOptions{})
	addr, _, _ := tieredRepcache(t, mc.addr, rd.Addr(), syncMaps)
	m := dialMC(t, addr)
	stamp := time.Now().Unix() + 86400
	rec := fmt.Sprintf("%d;1;1;1;1", stamp)
	if l := m.line(fmt.Sprintf("set postscreen:192.0.2.7 0 0 %d\r\n%s\r\n", len(rec), rec)); l != "STORED" {
		t.Fatal(l)
	}
	mc.kill()
	mc.start() // empty
	time.Sleep(1100 * time.Millisecond)
	val, ttl, ok := dialMC(t, addr).record("postscreen:192.0.2.7")
	if !ok || val != rec {
		t.Fatalf("after memcached restart: %q, %v", val, ok)
	}
	// The remaining lifetime continues; it is not reset to a fresh one.
	within(t, "refilled record", ttl, stamp+7*86400-time.Now().Unix())
	// A read refills memcached, with the same deadline. (The first read after
	// the restart may meet gomemcache's dead pooled connection: that read is
	// served from Redis without a refill, since the cache just failed.)
	raw := dialMC(t, mc.addr)
	for i := 0; ; i++ {
		l := raw.line("mg postscreen:192.0.2.7 t\r\n")
		if strings.HasPrefix(l, "HD t") {
			if got, _ := strconv.ParseInt(l[4:], 10, 64); got < stamp+7*86400-time.Now().Unix()-10 {
				t.Fatalf("memcached holds it for %ds, want about %ds", got, stamp+7*86400-time.Now().Unix())
			}
			break
		}
		if i == 3 {
			t.Fatalf("not refilled into memcached after %d reads: %q", i+1, l)
		}
		dialMC(t, addr).record("postscreen:192.0.2.7")
	}
}

// latencies runs clients against addr until stop closes, and returns every
// request's duration, the read errors and the write errors.
func load(t *testing.T, addr string, keys []string, stop chan struct{}) (lat []time.Duration, readErrs, writeErrs []error) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
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
				k := keys[(i*7+w)%len(keys)]
				start := time.Now()
				var err error
				read := i%10 != 0
				if read {
					var it *memcache.Item
					it, err = c.Get(k)
					if err == nil && string(it.Value) != "v-"+k {
						err = fmt.Errorf("get %s: wrong value %q", k, it.Value)
					}
				} else {
					err = c.Set(&memcache.Item{Key: k, Value: []byte("v-" + k)})
				}
				d := time.Since(start)
				mu.Lock()
				lat = append(lat, d)
				if err != nil && read {
					readErrs = append(readErrs, err)
				} else if err != nil {
					writeErrs = append(writeErrs, err)
				}
				mu.Unlock()
			}
		}(w)
	}
	wg.Wait()
	return lat, readErrs, writeErrs
}

func TestMemcachedOutageUnderLoad(t *testing.T) {
	for _, outage := range []string{"killed", "hung"} {
		t.Run(outage, func(t *testing.T) {
			mc := startMemcached(t)
			rd := testenv.Redis(t, testenv.RedisOptions{})
			addr, _, _ := tieredRepcache(t, mc.addr, rd.Addr(), syncMaps)
			keys := make([]string, 200)
			c := memcache.New(addr)
			for i := range keys {
				keys[i] = fmt.Sprintf("plain:k%d", i)
				if err := c.Set(&memcache.Item{Key: keys[i], Value: []byte("v-" + keys[i])}); err != nil {
					t.Fatal(err)
				}
			}
			stop := make(chan struct{})
			done := make(chan struct{})
			var lat []time.Duration
			var readErrs, writeErrs []error
			go func() { lat, readErrs, writeErrs = load(t, addr, keys, stop); close(done) }()
			time.Sleep(500 * time.Millisecond)
			if outage == "killed" {
				mc.kill()
			} else {
				mc.cmd.Signal(syscall.SIGSTOP)
				t.Cleanup(func() { mc.cmd.Signal(syscall.SIGCONT) })
			}
			time.Sleep(2 * time.Second)
			close(stop)
			<-done
			slices.Sort(lat)
			max, p99 := lat[len(lat)-1], lat[len(lat)*99/100]
			t.Logf("%s memcached: %d requests, p99 %v, max %v, %d write errors", outage, len(lat), p99, max, len(writeErrs))
			if len(readErrs) > 0 {
				t.Fatalf("%d reads failed while memcached was %s, first: %v", len(readErrs), outage, readErrs[0])
			}
			if len(writeErrs) > 0 {
				t.Errorf("%d writes failed while Redis was up, first: %v", len(writeErrs), writeErrs[0])
			}
			// Deadline 100ms + 50ms, plus room for a loaded 2-CPU test machine
			// (the measured maximum is logged above).
			if max > 100*time.Millisecond+50*time.Millisecond+400*time.Millisecond {
				t.Errorf("a request waited %v with a 100ms backend deadline", max)
			}
		})
	}
}

func TestSyncWritesSurviveRedisCrash(t *testing.T) {
	mc := startMemcached(t)
	rd := testenv.Redis(t, testenv.RedisOptions{AOF: true})
	addr, _, _ := tieredRepcache(t, mc.addr, rd.Addr(), syncMaps)
	c := memcache.New(addr)
	c.Timeout = 5 * time.Second
	var acked []string
	killed, restarted := false, false
	deadline := time.Now().Add(3 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		k := fmt.Sprintf("plain:d%d", i)
		if err := c.Set(&memcache.Item{Key: k, Value: []byte("v-" + k)}); err == nil {
			acked = append(acked, k)
		}
		switch {
		case !killed && time.Until(deadline) < 2*time.Second:
			rd.Kill(t)
			killed = true
		case killed && !restarted && time.Until(deadline) < time.Second:
			rd.Restart(t)
			restarted = true
		}
	}
	if len(acked) < 50 {
		t.Fatalf("only %d writes acknowledged", len(acked))
	}
	// Only Redis can answer now: memcached restarts empty.
	mc.kill()
	mc.start()
	time.Sleep(1100 * time.Millisecond)
	missing := 0
	for _, k := range acked {
		it, err := c.Get(k)
		if err != nil || string(it.Value) != "v-"+k {
			missing++
		}
	}
	t.Logf("%d writes acknowledged across a Redis SIGKILL and restart, %d missing afterwards", len(acked), missing)
	if missing > 0 {
		t.Fatalf("%d of %d acknowledged sync writes lost", missing, len(acked))
	}
}

func TestPostfixPassOldAcrossMemcachedRestart(t *testing.T) {
	mc := startMemcached(t)
	rd := testenv.Redis(t, testenv.RedisOptions{})
	addr, cfg, _ := tieredRepcache(t, mc.addr, rd.Addr(), "")
	_ = addr
	pf := testenv.StartPostfix(t, postfixOptions(t, cfg))
	r := pf.SMTP(t, testenv.SMTPSession{})
	pf.WaitLog(t, regexp.MustCompile(`PASS NEW \[127\.0\.0\.1\]:`+strconv.Itoa(r.ClientPort)+`$`), 10*time.Second)
	time.Sleep(300 * time.Millisecond) // the default async backup reaches Redis
	mc.kill()
	mc.start()
	time.Sleep(1100 * time.Millisecond)
	deadline := time.Now().Add(20 * time.Second)
	for {
		r = pf.SMTP(t, testenv.SMTPSession{})
		port := strconv.Itoa(r.ClientPort)
		if len(pf.LogMatches(regexp.MustCompile(`PASS OLD \[127\.0\.0\.1\]:`+port+`$`))) > 0 {
			break
		}
		if len(pf.LogMatches(regexp.MustCompile(`PASS NEW \[127\.0\.0\.1\]:`+port+`$`))) > 0 {
			t.Fatalf("screened anew after the memcached restart: the record did not come back from Redis\n%s", pf.Maillog())
		}
		if time.Now().After(deadline) {
			t.Fatalf("no PASS OLD after the memcached restart\n%s", pf.Maillog())
		}
		time.Sleep(300 * time.Millisecond) // Postfix reconnecting to repcache
	}
}
