// Package containers runs repcache's image and Helm chart under podman:
//
//   - image_test.go: the image alone (memcache, /readyz, uid 65532, read-only
//     root, --config from a mounted file, SIGTERM, size);
//   - sidecar_test.go: Postfix with repcache as the chart's sidecar in one
//     pod, over the unix socket in a shared volume;
//   - mx_test.go: two Postfix MX pods and two repcache replicas of the
//     chart's standalone mode sharing memcached and Redis, and the chart's
//     defaults that never split the cache;
//   - readme_test.go: the README's first-screen example.
//
// scripts/containers.sh builds the images and runs these tests with
// REPCACHE_IMAGE, POSTFIX_IMAGE, SERVICES_IMAGE (Debian with postfix,
// memcached and redis-server), HELM and CONTAINERS_CONF set; without them
// the tests fail. They need root (rootful podman, as CI runs).
package containers

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

var (
	repcacheImage string // the project's Dockerfile, built by scripts/containers.sh
	postfixImage  string // containers/postfix
	servicesImage string // Debian with memcached and redis-server
	helmBin       string
	repoRoot      string
	chartDir      string // helm/repcache
)

func TestMain(m *testing.M) {
	need := func(env string) string {
		v := os.Getenv(env)
		if v == "" {
			fmt.Fprintf(os.Stderr, "container tests: %s is not set: run scripts/containers.sh (it builds the images)\n", env)
			os.Exit(1)
		}
		return v
	}
	repcacheImage = need("REPCACHE_IMAGE")
	postfixImage = need("POSTFIX_IMAGE")
	servicesImage = need("SERVICES_IMAGE")
	helmBin = need("HELM")
	need("CONTAINERS_CONF")
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "container tests: rootful podman needs root")
		os.Exit(1)
	}
	wd, _ := os.Getwd()
	repoRoot = filepath.Dir(wd)
	chartDir = filepath.Join(repoRoot, "helm", "repcache")
	os.Exit(m.Run())
}

// podman runs podman and returns its standard output; a failure fails the
// test with standard error.
func podman(t testing.TB, args ...string) string {
	t.Helper()
	out, err := podmanErr(args...)
	if err != nil {
		t.Fatalf("podman %s: %v", strings.Join(args, " "), err)
	}
	return out
}

func podmanErr(args ...string) (string, error) {
	return runCmd("", "podman", args...)
}

// runCmd runs name in dir and returns its standard output; an error carries
// standard error.
func runCmd(dir, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%v: %s", err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// freePort returns a TCP port free on the host's loopback interface now.
// podman publishes every containerPort on the host, so each port a test
// container listens on comes from here.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitFor retries f until it succeeds or timeout passes (then fails the
// test with f's last error and what). It bounds waiting for a container to
// start; it asserts nothing about time.
func waitFor(t testing.TB, what string, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still failing after %v: %v", what, timeout, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// memcache sends one memcache text-protocol request to network/addr and
// returns the reply up to and including the line that ends it (END,
// STORED, an error line...).
func memcache(network, addr, request string) (string, error) {
	c, err := net.DialTimeout(network, addr, 5*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, request); err != nil {
		return "", err
	}
	r := bufio.NewReader(c)
	var out strings.Builder
	for {
		l, err := r.ReadString('\n')
		out.WriteString(l)
		if err != nil {
			return out.String(), err
		}
		switch strings.Fields(l + " x")[0] {
		case "END", "STORED", "NOT_STORED", "DELETED", "NOT_FOUND", "ERROR", "CLIENT_ERROR", "SERVER_ERROR", "VERSION":
			return out.String(), nil
		}
	}
}

// memcacheAll sends request (ending with quit) and returns everything the
// server answers until it closes the connection, as nc prints it.
func memcacheAll(addr, request string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, request); err != nil {
		return "", err
	}
	b, err := io.ReadAll(c)
	return string(b), err
}

// httpGet returns the status code and body of url.
func httpGet(url string) (int, string, error) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// metric returns the value of the sample of name whose labels include
// every label of want ("" if there is none), summed over matches.
func metric(body, name string, want map[string]string) float64 {
	var sum float64
	re := regexp.MustCompile(`^` + regexp.QuoteMeta(name) + `\{([^}]*)\} (\S+)$`)
	for _, l := range strings.Split(body, "\n") {
		m := re.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		ok := true
		for k, v := range want {
			if !strings.Contains(","+m[1]+",", fmt.Sprintf(",%s=%q,", k, v)) {
				ok = false
			}
		}
		if ok {
			f, _ := strconv.ParseFloat(m[2], 64)
			sum += f
		}
	}
	return sum
}

// smtpSession is one SMTP conversation with a screening MX: an optional
// PROXY v1 header (as a load balancer sends it), the greeting waited for in
// full (postscreen's pregreet test passes only then), EHLO, and one RCPT
// per address. It returns every reply line, in order.
func smtpSession(addr, proxyFrom string, rcpts ...string) ([]string, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	if proxyFrom != "" {
		fmt.Fprintf(c, "PROXY TCP4 %s 192.0.2.1 40000 25\r\n", proxyFrom)
	}
	r := bufio.NewReader(c)
	var lines []string
	reply := func() (string, error) {
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				return "", fmt.Errorf("after %q: %v", lines, err)
			}
			l = strings.TrimRight(l, "\r\n")
			lines = append(lines, l)
			if len(l) < 4 || l[3] != '-' {
				return l, nil
			}
		}
	}
	send := func(cmd string) (string, error) {
		if _, err := fmt.Fprintf(c, "%s\r\n", cmd); err != nil {
			return "", err
		}
		return reply()
	}
	if l, err := reply(); err != nil || !strings.HasPrefix(l, "220 ") {
		return lines, fmt.Errorf("greeting %q: %v", lines, err)
	}
	if _, err := send("EHLO client.example"); err != nil {
		return lines, err
	}
	if len(rcpts) > 0 {
		if _, err := send("MAIL FROM:<sender@client.example>"); err != nil {
			return lines, err
		}
		for _, a := range rcpts {
			if _, err := send("RCPT TO:<" + a + ">"); err != nil {
				return lines, err
			}
		}
	}
	send("QUIT")
	return lines, nil
}

// helmTemplate renders chart dir with the given values and returns the
// manifests, split into documents.
func helmTemplate(t testing.TB, dir, release string, values map[string]any, extra ...string) []map[string]any {
	t.Helper()
	raw, err := helmTemplateRaw(dir, release, values, extra...)
	if err != nil {
		t.Fatal(err)
	}
	return decodeAll(t, raw)
}

func helmTemplateRaw(dir, release string, values map[string]any, extra ...string) (string, error) {
	f, err := os.CreateTemp("", "values-*.yaml")
	if err != nil {
		return "", err
	}
	defer os.Remove(f.Name())
	b, _ := yaml.Marshal(values)
	f.Write(b)
	f.Close()
	args := append([]string{"template", release, dir, "--namespace", "mail", "-f", f.Name()}, extra...)
	return runCmd("", helmBin, args...)
}

func decodeAll(t testing.TB, s string) []map[string]any {
	t.Helper()
	var out []map[string]any
	d := yaml.NewDecoder(strings.NewReader(s))
	for {
		var o map[string]any
		err := d.Decode(&o)
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("helm template output: %v", err)
		}
		if o != nil {
			out = append(out, o)
		}
	}
}

// kubePlay plays the objects with podman kube play (ConfigMaps, Pods and
// Deployments: the kinds podman runs; the others, Services, policies and
// monitoring objects, have no podman equivalent and are left out) and tears
// them down when the test ends. It returns the names of the pods.
func kubePlay(t testing.TB, objs []map[string]any) []string {
	t.Helper()
	var buf bytes.Buffer
	var pods []string
	adaptVolumes(t, objs)
	for _, o := range objs {
		switch o["kind"] {
		case "ConfigMap", "Pod", "Deployment":
		default:
			continue
		}
		b, err := yaml.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		buf.WriteString("---\n")
		buf.Write(b)
	}
	f := filepath.Join(t.TempDir(), "play.yaml")
	if err := os.WriteFile(f, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if out, err := podmanErr("kube", "down", f); err != nil {
			t.Logf("podman kube down: %v\n%s", err, out)
		}
	})
	// Runs before the teardown above: what the pods said, when the test failed.
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, p := range pods {
			ps, _ := runCombined("podman", "ps", "-a", "--filter", "pod="+p, "--format", "{{.Names}}\t{{.Status}}\t{{.Ports}}")
			t.Logf("pod %s:\n%s", p, ps)
			for _, c := range strings.Fields(ps) {
				if strings.HasPrefix(c, p+"-") {
					logs, _ := runCombined("podman", "logs", c)
					t.Logf("podman logs %s:\n%s", c, logs)
				}
			}
		}
	})
	out := podman(t, "kube", "play", f)
	t.Logf("podman kube play:\n%s", out)
	for _, o := range objs {
		name, _ := o["metadata"].(map[string]any)["name"].(string)
		switch o["kind"] {
		case "Pod":
			pods = append(pods, name)
		case "Deployment":
			pods = append(pods, name+"-pod-0")
		}
	}
	for _, p := range pods {
		if _, err := podmanErr("pod", "exists", p); err != nil {
			t.Fatalf("podman kube play made no pod %s (podman pod ps: %s)", p, podman(t, "pod", "ps"))
		}
	}
	return pods
}

var playCount atomic.Int64

// adaptVolumes makes two changes podman 4.3 needs for the volumes of a
// rendered spec to behave as in Kubernetes:
//
//   - podman turns a configMap volume into a named volume called after the
//     ConfigMap, shared by every pod that names it, and rewrites it on each
//     play: two releases (or replicas played one by one) would read each
//     other's configuration. Each play's ConfigMaps get a name of their own.
//   - podman chowns a new emptyDir volume to the user of whichever container
//     mounts it first (root Postfix, so repcache, 65532, cannot create its
//     socket), where Kubernetes makes an emptyDir 0777. Each emptyDir
//     becomes a hostPath directory of the test, mode 0777.
func adaptVolumes(t testing.TB, objs []map[string]any) {
	t.Helper()
	suffix := fmt.Sprintf("-p%d-%d", os.Getpid(), playCount.Add(1))
	for _, o := range objs {
		meta, _ := o["metadata"].(map[string]any)
		if o["kind"] == "ConfigMap" {
			meta["name"] = meta["name"].(string) + suffix
		}
		spec, _ := o["spec"].(map[string]any)
		if o["kind"] == "Deployment" {
			spec, _ = spec["template"].(map[string]any)["spec"].(map[string]any)
		}
		if o["kind"] != "Pod" && o["kind"] != "Deployment" {
			continue
		}
		for _, v := range asList(spec["volumes"]) {
			v := v.(map[string]any)
			if cm, ok := v["configMap"].(map[string]any); ok {
				cm["name"] = cm["name"].(string) + suffix
			}
			if _, ok := v["emptyDir"]; ok {
				dir := t.TempDir()
				if err := os.Chmod(dir, 0o777); err != nil {
					t.Fatal(err)
				}
				delete(v, "emptyDir")
				v["hostPath"] = map[string]any{"path": dir, "type": "Directory"}
			}
		}
	}
}

// containerLogs returns a container's standard output and error.
func containerLogs(t testing.TB, name string) string {
	t.Helper()
	out, err := runCombined("podman", "logs", name)
	if err != nil {
		t.Fatalf("podman logs %s: %v", name, err)
	}
	return out
}

func runCombined(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}

// containerPID is the host PID of a running container's first process.
func containerPID(t testing.TB, name string) int {
	t.Helper()
	s := strings.TrimSpace(podman(t, "inspect", "--format", "{{.State.Pid}}", name))
	pid, err := strconv.Atoi(s)
	if err != nil || pid <= 0 {
		t.Fatalf("container %s has no process (State.Pid %q)", name, s)
	}
	return pid
}

// procIdentity reads the real uid and gid of a host process and whether
// its root file system is mounted read-only, from /proc.
func procIdentity(t testing.TB, pid int) (uid, gid string, rootRO bool) {
	t.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(status), "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 && f[0] == "Uid:" {
			uid = f[1]
		}
		if len(f) >= 2 && f[0] == "Gid:" {
			gid = f[1]
		}
	}
	mounts, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(mounts), "\n") {
		f := strings.Fields(l)
		// mountinfo: ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS ...
		if len(f) > 5 && f[4] == "/" {
			rootRO = strings.Split(f[5], ",")[0] == "ro"
		}
	}
	return uid, gid, rootRO
}

func runCombinedEnv(env []string, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}
