package containers

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The two-MX scenario runs every pod on the host's network: podman has no
// cluster DNS and no Service (the ClusterIP that spreads Postfix over the
// repcache replicas), so each Postfix pod is pointed at one replica's
// address (postfix.memcacheAddress), and each replica at memcached and
// Redis, over 127.0.0.1 on free ports. The two replicas are the same
// release's Deployment rendered with different containerPorts, because on
// one network namespace they cannot share a port (in Kubernetes they are two
// pods of one Deployment, at two pod IPs).

// startService runs a memcached or Redis container from SERVICES_IMAGE
// (Debian's packages) on the host network.
func startService(t testing.TB, name string, args ...string) {
	t.Helper()
	podmanErr("rm", "-f", name)
	t.Cleanup(func() { podmanErr("rm", "-f", name) })
	podman(t, append([]string{"run", "-d", "--name", name, "--pull=never", "--network=host", servicesImage}, args...)...)
}

// repcacheReplica renders the chart's standalone mode with values, keeps the
// ConfigMaps and the Deployment (renamed NAME, on the host network), plays
// them and waits until the replica is ready. It returns the rendered
// ConfigMap RELEASE-repcache-postfix (the Postfix side).
func repcacheReplica(t testing.TB, name string, values map[string]any) map[string]any {
	t.Helper()
	objs := helmTemplate(t, chartDir, "mx", values)
	var play []map[string]any
	var postfixCM map[string]any
	for _, o := range objs {
		switch o["kind"] {
		case "ConfigMap":
			if strings.HasSuffix(o["metadata"].(map[string]any)["name"].(string), "-postfix") {
				postfixCM = o
			}
			play = append(play, o)
		case "Deployment":
			o["metadata"].(map[string]any)["name"] = name
			// One pod per play: the replicas are played one by one.
			o["spec"].(map[string]any)["replicas"] = 1
			spec := o["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)
			spec["hostNetwork"] = true
			// On the host network the containers' ports are the host's:
			// podman refuses port mappings there.
			for _, c := range asList(spec["containers"]) {
				delete(c.(map[string]any), "ports")
			}
			play = append(play, o)
		}
	}
	if postfixCM == nil {
		t.Fatal("the chart rendered no ConfigMap for Postfix")
	}
	kubePlay(t, play)
	admin := values["containerPorts"].(map[string]any)["admin"]
	waitFor(t, name+" /readyz", 60*time.Second, func() error {
		code, body, err := httpGet(fmt.Sprintf("http://127.0.0.1:%v/readyz", admin))
		if err == nil && code != 200 {
			err = fmt.Errorf("status %d: %s", code, body)
		}
		return err
	})
	return postfixCM
}

// mxPod plays a Postfix pod (host network, postscreen on 127.0.0.1:port
// behind the PROXY protocol, as behind a load balancer) that reads the
// main.cf lines and table files of the chart's ConfigMap cm.
func mxPod(t testing.TB, name string, port int, cm map[string]any) string {
	t.Helper()
	cm["metadata"].(map[string]any)["name"] = name + "-repcache-postfix"
	pod := map[string]any{
		"apiVersion": "v1",
		"kind":       "Pod",
		"metadata":   map[string]any{"name": name, "labels": map[string]any{"app.kubernetes.io/instance": "mx", "app.kubernetes.io/component": "postfix"}},
		"spec": map[string]any{
			"hostNetwork":   true,
			"restartPolicy": "Never",
			"containers": []any{map[string]any{
				"name":            "postfix",
				"image":           postfixImage,
				"imagePullPolicy": "Never",
				"env": []any{
					map[string]any{"name": "SMTP_LISTEN", "value": fmt.Sprintf("127.0.0.1:%d", port)},
					map[string]any{"name": "POSTFIX_MAIN_CF", "value": "/etc/postfix/repcache/main.cf"},
					map[string]any{"name": "POSTSCREEN_UPSTREAM_PROXY", "value": "haproxy"},
				},
				"volumeMounts": []any{map[string]any{"name": "repcache-postfix", "mountPath": "/etc/postfix/repcache", "readOnly": true}},
			}},
			"volumes": []any{map[string]any{"name": "repcache-postfix", "configMap": map[string]any{"name": name + "-repcache-postfix"}}},
		},
	}
	kubePlay(t, []map[string]any{cm, pod})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	waitFor(t, name+" SMTP", 60*time.Second, func() error {
		_, err := smtpSession(addr, "203.0.113.250")
		return err
	})
	return name + "-postfix"
}

func memcachedItems(t testing.TB, addr string) int {
	t.Helper()
	out, err := memcache("tcp", addr, "stats\r\n")
	if err != nil {
		t.Fatalf("memcached stats: %v", err)
	}
	m := regexp.MustCompile(`STAT curr_items (\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("memcached stats: no curr_items in %q", out)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// mxPair is two repcache replicas, each with a Postfix MX pod in front.
type mxPair struct {
	mx1, mx2         string // the Postfix containers
	mx1Port, mx2Port int    // where their postscreen listens
	bAdmin           int    // replica B's admin port
}

// twoMX plays replicas A and B from the chart with values(memcachePort,
// adminPort), and MX1 on A, MX2 on B; pod names start with name.
func twoMX(t *testing.T, name string, values func(mc, admin int) map[string]any) mxPair {
	t.Helper()
	id := fmt.Sprintf("%s-%d", name, os.Getpid())
	aPort, aAdmin, bPort, bAdmin := freePort(t), freePort(t), freePort(t), freePort(t)
	cmA := repcacheReplica(t, "repcache-a-"+id, values(aPort, aAdmin))
	cmB := repcacheReplica(t, "repcache-b-"+id, values(bPort, bAdmin))
	p := mxPair{mx1Port: freePort(t), mx2Port: freePort(t), bAdmin: bAdmin}
	p.mx1 = mxPod(t, "mx1-"+id, p.mx1Port, cmA)
	p.mx2 = mxPod(t, "mx2-"+id, p.mx2Port, cmB)
	return p
}

// TestDefaultsNeverSplit: the chart as a user installs it. Two replicas of
// the embedded store are refused; and what they would be, two caches, is
// shown by two default installs (one replica each, as two replicas behind
// a Service would be): a client that passed on MX1 is tested again on MX2.
// The shared-cache test below is the same scenario with the values that
// make one cache, where MX2 says PASS OLD.
func TestDefaultsNeverSplit(t *testing.T) {
	t.Parallel() // containers wait more than they compute; every port and name is the test's own
	_, err := helmTemplateRaw(chartDir, "mx", map[string]any{"replicaCount": 2})
	if err == nil || !strings.Contains(err.Error(), "replicaCount: 2 replicas with config.cache.backend memory would be 2 separate caches") {
		t.Fatalf("helm template --set replicaCount=2 with the defaults: %v, want the chart to refuse the split", err)
	}
	objs := helmTemplate(t, chartDir, "mx", map[string]any{})
	for _, o := range objs {
		if o["kind"] == "Deployment" && o["spec"].(map[string]any)["replicas"] != 1 {
			t.Errorf("default replicas: %v, want 1", o["spec"].(map[string]any)["replicas"])
		}
	}
	mx := twoMX(t, "defaults", func(mc, admin int) map[string]any {
		return map[string]any{
			"image":          imageValues(t),
			"containerPorts": map[string]any{"memcache": mc, "admin": admin},
			"config":         map[string]any{"listen": []string{fmt.Sprintf("127.0.0.1:%d", mc)}},
			"postfix":        map[string]any{"memcacheAddress": fmt.Sprintf("inet:127.0.0.1:%d", mc)},
		}
	})
	const client = "198.51.100.8"
	newRe := regexp.MustCompile(`PASS NEW \[` + regexp.QuoteMeta(client) + `\]`)
	for _, m := range []struct {
		container string
		port      int
	}{{mx.mx1, mx.mx1Port}, {mx.mx2, mx.mx2Port}} {
		if _, err := smtpSession(fmt.Sprintf("127.0.0.1:%d", m.port), client); err != nil {
			t.Fatal(err)
		}
		waitLog(t, m.container, newRe, 0)
	}
}

// TestSharedCacheMX: two MX hosts behind a load balancer, one cache. A
// client that passed postscreen on MX1 is PASS OLD on MX2, and still is
// after memcached restarted empty (the record comes back from Redis).
func TestSharedCacheMX(t *testing.T) {
	t.Parallel() // containers wait more than they compute; every port and name is the test's own
	id := os.Getpid()
	mcPort, redisPort := freePort(t), freePort(t)
	memcached := fmt.Sprintf("repcache-mx-memcached-%d", id)
	startService(t, memcached, "memcached", "-u", "memcache", "-l", "127.0.0.1", "-p", strconv.Itoa(mcPort), "-m", "64")
	startService(t, fmt.Sprintf("repcache-mx-redis-%d", id), "redis-server", "--bind", "127.0.0.1", "--port", strconv.Itoa(redisPort),
		"--save", "", "--appendonly", "no")
	mcAddr := fmt.Sprintf("127.0.0.1:%d", mcPort)
	waitFor(t, "memcached", 30*time.Second, func() error { _, err := memcache("tcp", mcAddr, "version\r\n"); return err })

	// The values that give several replicas one cache: memcached shared by
	// every replica, Redis behind it for restarts.
	replica := func(mc, admin int) map[string]any {
		return map[string]any{
			"image":          imageValues(t),
			"replicaCount":   2,
			"containerPorts": map[string]any{"memcache": mc, "admin": admin},
			"config": map[string]any{
				"listen": []string{fmt.Sprintf("127.0.0.1:%d", mc)},
				"cache":  map[string]any{"backend": "memcached", "memcached": map[string]any{"servers": []string{mcAddr}}},
				"backup": map[string]any{"backend": "redis", "redis": map[string]any{"addrs": []string{fmt.Sprintf("127.0.0.1:%d", redisPort)}}},
			},
			"postfix": map[string]any{"memcacheAddress": fmt.Sprintf("inet:127.0.0.1:%d", mc)},
		}
	}
	mx := twoMX(t, "shared", replica)
	mx1, mx2, mx1Port, mx2Port, bAdmin := mx.mx1, mx.mx2, mx.mx1Port, mx.mx2Port, mx.bAdmin

	// The client's address comes in the PROXY header: postscreen keys its
	// record on it, not on the load balancer's address.
	const client = "198.51.100.7"
	newRe := regexp.MustCompile(`PASS NEW \[` + regexp.QuoteMeta(client) + `\]`)
	oldRe := regexp.MustCompile(`PASS OLD \[` + regexp.QuoteMeta(client) + `\]`)
	if _, err := smtpSession(fmt.Sprintf("127.0.0.1:%d", mx1Port), client); err != nil {
		t.Fatal(err)
	}
	waitLog(t, mx1, newRe, 0)
	if _, err := smtpSession(fmt.Sprintf("127.0.0.1:%d", mx2Port), client); err != nil {
		t.Fatal(err)
	}
	logs := waitLog(t, mx2, oldRe, 0)
	if countMatches(newRe, logs) != 0 {
		t.Errorf("MX2 tested the client again (PASS NEW) although MX1 had passed it:\n%s", logs)
	}

	// memcached killed and restarted empty: the record comes from Redis.
	podman(t, "kill", memcached)
	podman(t, "start", memcached)
	waitFor(t, "memcached after restart", 30*time.Second, func() error { _, err := memcache("tcp", mcAddr, "version\r\n"); return err })
	if n := memcachedItems(t, mcAddr); n != 0 {
		t.Fatalf("memcached restarted with %d items, want an empty cache", n)
	}
	oldBefore := countMatches(oldRe, containerLogs(t, mx2))
	if _, err := smtpSession(fmt.Sprintf("127.0.0.1:%d", mx2Port), client); err != nil {
		t.Fatal(err)
	}
	logs = waitLog(t, mx2, oldRe, oldBefore)
	if countMatches(newRe, logs) != 0 {
		t.Errorf("after memcached restarted empty, MX2 tested the client again:\n%s", logs)
	}
	_, body, err := httpGet(fmt.Sprintf("http://127.0.0.1:%d/metrics", bAdmin))
	if err != nil {
		t.Fatal(err)
	}
	if n := metric(body, "repcache_lookups_total", map[string]string{"map": "postscreen", "tier": "backup", "result": "hit"}); n < 1 {
		t.Errorf("replica B: repcache_lookups_total{map=\"postscreen\",tier=\"backup\",result=\"hit\"} is %v, want >= 1 (the record from Redis)", n)
	}
	// The read from Redis refills memcached. The first read after the
	// restart may meet a pooled connection that memcached's restart closed
	// (the refill is then counted as a cache error and dropped), so the
	// client comes back, as postscreen's clients do, until the record is
	// in memcached again.
	sessions := 1
	waitFor(t, "memcached refilled from Redis", 30*time.Second, func() error {
		if n := memcachedItems(t, mcAddr); n > 0 {
			return nil
		}
		sessions++
		smtpSession(fmt.Sprintf("127.0.0.1:%d", mx2Port), client)
		_, body, _ := httpGet(fmt.Sprintf("http://127.0.0.1:%d/metrics", bAdmin))
		return fmt.Errorf("memcached still empty after %d sessions; replica B's cache lookups: %v",
			sessions, regexp.MustCompile(`(?m)^repcache_lookups_total\{map="postscreen".*$`).FindAllString(body, -1))
	})
	t.Logf("memcached held the record again after %d session(s) on MX2 since its restart", sessions)
}
