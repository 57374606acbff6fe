// Package helm tests the repcache Helm chart (helm/repcache) offline:
//
//   - the chart's copies of the dashboard and the alert rules are the
//     repository's (dashboards/repcache.json, prometheus/rules.yml);
//   - helm lint --strict passes for every values file in ci/;
//   - every manifest helm template renders for them is valid against the
//     pinned Kubernetes and prometheus-operator schemas in schemas/
//     (kubeconform -strict: unknown fields are errors);
//   - every rendered repcache configuration passes repcache check-config,
//     and the Postfix settings the chart prints (NOTES.txt, ConfigMap
//     FULLNAME-postfix) are byte for byte what repcache postfix-config
//     prints for it;
//   - the rendered objects keep their promises (hardened security contexts,
//     probes on the admin port, config checksum, the Secret the password
//     comes from, the dashboard and rules content);
//   - the examples for the bokysan/docker-postfix chart and the native
//     sidecar Deployment are what the chart's sidecar templates render;
//   - the sidecar templates work from a parent chart (.Subcharts);
//   - the helm-unittest suites in repcache/tests pass.
//
// The tools come from scripts/helm-tools.sh (helm, kubeconform and
// helm-unittest built from the Go module proxy into .cache/tools/bin);
// without them the tests fail. HELM, KUBECONFORM and HELM_UNITTEST override
// the paths. Run:
//
//	scripts/helm-tools.sh && (cd helm && go test ./...)
//
// After the dashboard or the rules changed: go test -run TestChartFilesInSync -update-files
package helm

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// kubeVersion is the Kubernetes version the manifests are validated against:
// the one helm/schemas was generated for (schemas/gen).
const kubeVersion = "1.35.4"

var updateFiles = flag.Bool("update-files", false, "copy dashboards/repcache.json and prometheus/rules.yml into the chart's files/")

var (
	root        string // the repository
	chart       string // helm/repcache
	schemas     string // helm/schemas
	helmBin     string
	kubeconform string
	unittest    string
	repcache    string // the repcache binary, built from this checkout
)

func TestMain(m *testing.M) {
	flag.Parse()
	if err := setup(); err != nil {
		fmt.Fprintln(os.Stderr, "helm chart tests:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(filepath.Dir(repcache))
	os.Exit(code)
}

func setup() error {
	wd, err := os.Getwd()
	if err != nil {
		return err
	}
	root = filepath.Dir(wd)
	chart = filepath.Join(wd, "repcache")
	schemas = filepath.Join(wd, "schemas")
	if _, err := os.Stat(filepath.Join(schemas, "v"+kubeVersion+"-standalone-strict")); err != nil {
		return fmt.Errorf("no schemas for Kubernetes %s: run go run ./schemas/gen in helm/", kubeVersion)
	}
	pins, err := pinnedVersions()
	if err != nil {
		return err
	}
	bin := filepath.Join(root, ".cache", "tools", "bin")
	var missing []string
	find := func(env, name string) string {
		if p := os.Getenv(env); p != "" {
			return p
		}
		p := filepath.Join(bin, name)
		if _, err := os.Stat(p); err != nil {
			missing = append(missing, name)
		}
		return p
	}
	helmBin = find("HELM", "helm")
	kubeconform = find("KUBECONFORM", "kubeconform")
	unittest = find("HELM_UNITTEST", "helm-unittest")
	if len(missing) > 0 {
		return fmt.Errorf("%s missing from %s: run scripts/helm-tools.sh first (it builds them from the Go module proxy)",
			strings.Join(missing, ", "), bin)
	}
	for _, c := range []struct{ bin, want string }{
		{helmBin + " version --template {{.Version}}", pins["HELM_VERSION"]},
		{kubeconform + " -v", pins["KUBECONFORM_VERSION"]},
	} {
		f := strings.Fields(c.bin)
		out, err := exec.Command(f[0], f[1:]...).Output()
		if err != nil {
			return fmt.Errorf("%s: %v", c.bin, err)
		}
		if got := strings.TrimSpace(string(out)); got != c.want {
			return fmt.Errorf("%s says %s, scripts/helm-tools.sh pins %s: run scripts/helm-tools.sh", f[0], got, c.want)
		}
	}
	dir, err := os.MkdirTemp("", "repcache-chart-test")
	if err != nil {
		return err
	}
	repcache = filepath.Join(dir, "repcache")
	build := exec.Command("go", "build", "-o", repcache, "./cmd/repcache")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/repcache: %v\n%s", err, out)
	}
	return nil
}

// pinnedVersions reads NAME=vX.Y.Z lines of scripts/helm-tools.sh.
func pinnedVersions() (map[string]string, error) {
	b, err := os.ReadFile(filepath.Join(root, "scripts", "helm-tools.sh"))
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^([A-Z_]+_VERSION)=(v\S+)$`).FindAllStringSubmatch(string(b), -1) {
		out[m[1]] = m[2]
	}
	if out["HELM_VERSION"] == "" || out["KUBECONFORM_VERSION"] == "" {
		return nil, errors.New("scripts/helm-tools.sh pins no HELM_VERSION or KUBECONFORM_VERSION")
	}
	return out, nil
}

// ciValues lists the chart's ci/*-values.yaml files.
func ciValues(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(chart, "ci", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no ci values files: %v", err)
	}
	return files
}

func run(t *testing.T, dir string, env []string, name string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("%s %s: %v\n%s%s", filepath.Base(name), strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String(), err
}

// object is one rendered manifest.
type object map[string]any

func (o object) kind() string { return str(o["kind"]) }
func (o object) name() string { return str(get(o, "metadata", "name")) }

// get walks maps by key and lists by int index.
func get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				if o, ok2 := v.(object); ok2 {
					m = o
				} else {
					return nil
				}
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func str(v any) string {
	if v == nil {
		return ""
	}
	return fmt.Sprint(v)
}

func decodeAll(t *testing.T, s string) []object {
	t.Helper()
	var out []object
	dec := yaml.NewDecoder(strings.NewReader(s))
	for {
		var o map[string]any
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("rendered YAML: %v", err)
		}
		if o != nil {
			out = append(out, o)
		}
	}
	return out
}

// render runs helm template on dir (default: the chart) and decodes the result.
type renderOpts struct {
	dir, release, namespace string
	values                  []string
	set                     []string
	showOnly                string
}

func render(t *testing.T, o renderOpts) (string, []object) {
	t.Helper()
	out, err := renderErr(t, o)
	if err != nil {
		t.Fatal(err)
	}
	return out, decodeAll(t, out)
}

func renderErr(t *testing.T, o renderOpts) (string, error) {
	t.Helper()
	if o.dir == "" {
		o.dir = chart
	}
	if o.release == "" {
		o.release = "mx"
	}
	if o.namespace == "" {
		o.namespace = "mail"
	}
	args := []string{"template", o.release, o.dir, "--namespace", o.namespace, "--kube-version", kubeVersion}
	for _, v := range o.values {
		args = append(args, "--values", v)
	}
	for _, s := range o.set {
		args = append(args, "--set", s)
	}
	if o.showOnly != "" {
		args = append(args, "--show-only", o.showOnly)
	}
	return run(t, "", nil, helmBin, args...)
}

// probeChart copies the chart into a temporary directory and adds a
// template that renders the named templates under test into a ConfigMap.
func probeChart(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "repcache")
	if err := os.CopyFS(dir, os.DirFS(chart)); err != nil {
		t.Fatal(err)
	}
	notes, err := os.ReadFile(filepath.Join(chart, "templates", "NOTES.txt"))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"templates/_probe_notes.tpl": `{{- define "probe.notes" }}` + string(notes) + `{{- end }}`,
		"templates/probe.yaml": `apiVersion: v1
kind: ConfigMap
metadata:
  name: probe
data:
  notes: {{ include "probe.notes" . | toJson }}
  postfixConfig: {{ include "repcache.postfix.config" . | toJson }}
  sidecarContainer: {{ include "repcache.sidecarContainer" . | toJson }}
  sidecarInitContainer: {{ include "repcache.sidecarInitContainer" . | toJson }}
  sidecarVolumes: {{ include "repcache.sidecarVolumes" . | toJson }}
`,
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// probe renders the probe ConfigMap of a probeChart.
func probe(t *testing.T, dir string, o renderOpts) map[string]string {
	t.Helper()
	o.dir, o.showOnly = dir, "templates/probe.yaml"
	_, objs := render(t, o)
	out := map[string]string{}
	for k, v := range objs[0]["data"].(map[string]any) {
		out[k] = v.(string)
	}
	return out
}

func yamlValue(t *testing.T, s string) any {
	t.Helper()
	var v any
	if err := yaml.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("%v in\n%s", err, s)
	}
	return v
}

func yamlString(v any) string {
	b, _ := yaml.Marshal(v)
	return string(b)
}

// TestChartFilesInSync: Helm cannot read outside the chart, so the chart
// keeps copies of the dashboard and the rules; they must be the originals.
func TestChartFilesInSync(t *testing.T) {
	for _, f := range []struct{ orig, copy string }{
		{filepath.Join(root, "dashboards", "repcache.json"), filepath.Join(chart, "files", "repcache.json")},
		{filepath.Join(root, "prometheus", "rules.yml"), filepath.Join(chart, "files", "rules.yml")},
	} {
		orig, err := os.ReadFile(f.orig)
		if err != nil {
			t.Fatal(err)
		}
		if *updateFiles {
			if err := os.WriteFile(f.copy, orig, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		cp, err := os.ReadFile(f.copy)
		if err != nil || !bytes.Equal(orig, cp) {
			rel, _ := filepath.Rel(root, f.orig)
			t.Errorf("helm/repcache/files/%s differs from %s (%v): run\n\tcd helm && go test -run TestChartFilesInSync -update-files",
				filepath.Base(f.copy), rel, err)
		}
	}
}

func TestLint(t *testing.T) {
	for _, v := range append([]string{""}, ciValues(t)...) {
		args := []string{"lint", "--strict", "--kube-version", kubeVersion, chart}
		if v != "" {
			args = append(args, "--values", v)
		}
		if _, err := run(t, "", nil, helmBin, args...); err != nil {
			t.Error(err)
		}
	}
}

// validate runs kubeconform -strict over manifests, offline, against the
// vendored schemas; every document must have a schema.
func validate(t *testing.T, name, manifests string) {
	t.Helper()
	f := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(f, []byte(manifests), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := run(t, "", nil, kubeconform, "-strict", "-summary", "-output", "json",
		"-kubernetes-version", kubeVersion,
		"-schema-location", schemas,
		"-schema-location", filepath.Join(schemas, "{{ .Group }}", "{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json"),
		f)
	if err != nil {
		t.Errorf("kubeconform %s: %v", name, err)
		return
	}
	var res struct {
		Summary struct{ Valid, Invalid, Errors, Skipped int }
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("kubeconform output: %v\n%s", err, out)
	}
	if s := res.Summary; s.Valid == 0 || s.Invalid+s.Errors+s.Skipped > 0 {
		t.Errorf("kubeconform %s: %+v\n%s", name, s, out)
	}
}

// TestRenderedManifests renders every ci values file and checks the result.
func TestRenderedManifests(t *testing.T) {
	probeDir := probeChart(t)
	for _, values := range ciValues(t) {
		t.Run(strings.TrimSuffix(filepath.Base(values), "-values.yaml"), func(t *testing.T) {
			o := renderOpts{values: []string{values}}
			raw, objs := render(t, o)
			validate(t, filepath.Base(values), raw)
			checkObjects(t, objs)
			checkConfig(t, objs, probe(t, probeDir, o))
		})
	}
}

func checkObjects(t *testing.T, objs []object) {
	t.Helper()
	byKind := map[string][]object{}
	for _, o := range objs {
		byKind[o.kind()] = append(byKind[o.kind()], o)
		labels, _ := get(o, "metadata", "labels").(map[string]any)
		for _, l := range []string{"app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/version",
			"app.kubernetes.io/managed-by", "helm.sh/chart"} {
			if labels[l] == nil {
				t.Errorf("%s %s: no label %s", o.kind(), o.name(), l)
			}
		}
	}
	secrets := map[string]object{}
	for _, s := range byKind["Secret"] {
		secrets[s.name()] = s
	}
	configs := map[string]object{}
	for _, c := range byKind["ConfigMap"] {
		configs[c.name()] = c
	}
	for _, d := range byKind["Deployment"] {
		pod := get(d, "spec", "template").(map[string]any)
		c := get(pod, "spec", "containers", 0).(map[string]any)
		checkContainer(t, c, "admin")
		psc := get(pod, "spec", "securityContext")
		for k, want := range map[string]any{"runAsNonRoot": true, "runAsUser": 65532} {
			if got := get(psc, k); got != want {
				t.Errorf("podSecurityContext.%s = %v, want %v", k, got, want)
			}
		}
		if get(psc, "seccompProfile", "type") != "RuntimeDefault" {
			t.Errorf("podSecurityContext.seccompProfile = %v", get(psc, "seccompProfile"))
		}
		// The config checksum is the hash of the ConfigMap's content.
		cm := configs[str(get(pod, "spec", "volumes", 0, "configMap", "name"))]
		if cm == nil {
			t.Fatalf("the config volume names no rendered ConfigMap")
		}
		sum := sha256.Sum256([]byte(strings.TrimSuffix(str(get(cm, "data", "repcache.yaml")), "\n")))
		if got := str(get(pod, "metadata", "annotations", "checksum/config")); got != hex.EncodeToString(sum[:]) {
			t.Errorf("checksum/config %s is not the hash of ConfigMap %s", got, cm.name())
		}
		// The password's Secret is rendered, or named by existingSecret.
		env, _ := get(c, "env").([]any)
		for _, e := range env {
			if get(e, "name") == "REPCACHE_BACKUP__REDIS__PASSWORD" {
				name := str(get(e, "valueFrom", "secretKeyRef", "name"))
				key := str(get(e, "valueFrom", "secretKeyRef", "key"))
				if s, ok := secrets[name]; ok && get(s, "data", key) == nil {
					t.Errorf("Secret %s has no key %s", name, key)
				}
			}
		}
		// The Service selects the pods and targets named ports that exist.
		for _, svc := range byKind["Service"] {
			for k, v := range get(svc, "spec", "selector").(map[string]any) {
				if get(pod, "metadata", "labels", k) != v {
					t.Errorf("Service %s selects %s=%v, the pods do not carry it", svc.name(), k, v)
				}
			}
			for _, p := range get(svc, "spec", "ports").([]any) {
				if containerPort(c, str(get(p, "targetPort"))) == 0 {
					t.Errorf("Service port %v targets no container port", p)
				}
			}
		}
	}
	for _, r := range byKind["PrometheusRule"] {
		want := yamlValue(t, readFile(t, filepath.Join(root, "prometheus", "rules.yml")))
		if !reflect.DeepEqual(get(r, "spec"), want) {
			t.Errorf("PrometheusRule spec is not prometheus/rules.yml")
		}
	}
	for _, c := range byKind["ConfigMap"] {
		if d := get(c, "data", "repcache.json"); d != nil {
			if strings.TrimRight(str(d), "\n") != strings.TrimRight(readFile(t, filepath.Join(root, "dashboards", "repcache.json")), "\n") {
				t.Errorf("dashboard ConfigMap %s is not dashboards/repcache.json", c.name())
			}
			if get(c, "metadata", "labels", "grafana_dashboard") != "1" {
				t.Errorf("dashboard ConfigMap %s is not labelled grafana_dashboard: \"1\"", c.name())
			}
		}
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func containerPort(c map[string]any, name string) int {
	for _, p := range get(c, "ports").([]any) {
		if get(p, "name") == name {
			n, _ := get(p, "containerPort").(int)
			return n
		}
	}
	return 0
}

// checkContainer: the hardened security context, the config, probes on
// the admin port.
func checkContainer(t *testing.T, c map[string]any, adminPort string) {
	t.Helper()
	sc := get(c, "securityContext")
	for k, want := range map[string]any{"runAsNonRoot": true, "runAsUser": 65532, "readOnlyRootFilesystem": true,
		"allowPrivilegeEscalation": false} {
		if got := get(sc, k); got != want {
			t.Errorf("container %v: securityContext.%s = %v, want %v", c["name"], k, got, want)
		}
	}
	if !reflect.DeepEqual(get(sc, "capabilities", "drop"), []any{"ALL"}) || get(sc, "seccompProfile", "type") != "RuntimeDefault" {
		t.Errorf("container %v: securityContext %v: want capabilities drop [ALL], seccompProfile RuntimeDefault", c["name"], sc)
	}
	if get(c, "args", 0) != "--config=/etc/repcache/repcache.yaml" {
		t.Errorf("container %v: args %v", c["name"], c["args"])
	}
	if get(c, "volumeMounts", 0, "mountPath") != "/etc/repcache" {
		t.Errorf("container %v: volumeMounts %v", c["name"], c["volumeMounts"])
	}
	for probe, path := range map[string]string{"livenessProbe": "/livez", "readinessProbe": "/readyz", "startupProbe": "/livez"} {
		if get(c, probe, "httpGet", "path") != path || get(c, probe, "httpGet", "port") != adminPort {
			t.Errorf("container %v: %s = %v, want GET %s on port %s", c["name"], probe, c[probe], path, adminPort)
		}
	}
	if containerPort(c, adminPort) == 0 {
		t.Errorf("container %v: no port %s", c["name"], adminPort)
	}
}

// checkConfig: the rendered repcache configuration passes check-config,
// its admin listener is the probed port, and the Postfix settings the chart
// prints are what repcache postfix-config prints for it.
func checkConfig(t *testing.T, objs []object, probed map[string]string) {
	t.Helper()
	var cfgText string
	var postfixCM object
	var deploy object
	for _, o := range objs {
		switch {
		case o.kind() == "ConfigMap" && get(o, "data", "repcache.yaml") != nil:
			cfgText = str(get(o, "data", "repcache.yaml"))
		case o.kind() == "ConfigMap" && get(o, "data", "main.cf") != nil:
			postfixCM = o
		case o.kind() == "Deployment":
			deploy = o
		}
	}
	if cfgText == "" {
		t.Fatal("no ConfigMap with repcache.yaml")
	}
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "repcache.yaml")
	if err := os.WriteFile(cfgFile, []byte(cfgText), 0o644); err != nil {
		t.Fatal(err)
	}
	env := []string{"REPCACHE_BACKUP__REDIS__PASSWORD=from-the-secret"}
	if out, err := run(t, "", env, repcache, "check-config", "--config", cfgFile); err != nil || !strings.Contains(out, "configuration OK") {
		t.Errorf("repcache check-config of the rendered configuration: %v %s\n%s", err, out, cfgText)
	}
	cfg := yamlValue(t, cfgText).(map[string]any)
	admin := str(get(cfg, "admin", "listen"))
	if !strings.HasPrefix(admin, "0.0.0.0:") {
		t.Errorf("admin.listen %q: the kubelet probes the pod IP", admin)
	}
	if deploy != nil {
		c := get(deploy, "spec", "template", "spec", "containers", 0).(map[string]any)
		if port := containerPort(c, "admin"); fmt.Sprintf("0.0.0.0:%d", port) != admin {
			t.Errorf("admin.listen %s, container port admin %d", admin, port)
		}
		if port := containerPort(c, "memcache"); fmt.Sprintf("0.0.0.0:%d", port) != str(get(cfg, "listen", 0)) {
			t.Errorf("listen %v, container port memcache %d", get(cfg, "listen"), port)
		}
	}

	// What the chart tells Postfix, against the binary. The chart names the
	// address Postfix reaches repcache by; give the binary that address.
	addr := regexp.MustCompile(`(?m)^memcache = (?:inet:)?(\S+)$`).FindStringSubmatch(probed["postfixConfig"])
	tableDir := regexp.MustCompile(`(?m)^postscreen_cache_map = memcache:(\S+)/repcache-[^/]+\.cf$`).FindStringSubmatch(probed["postfixConfig"])
	if addr == nil || tableDir == nil {
		t.Fatalf("the chart's Postfix settings name no memcache address or table:\n%s", probed["postfixConfig"])
	}
	if deploy != nil {
		cfg["listen"] = []any{addr[1]}
		if err := os.WriteFile(cfgFile, []byte(yamlString(cfg)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := run(t, "", env, repcache, "postfix-config", "--config", cfgFile, "--table-dir", tableDir[1])
	if err != nil {
		t.Fatal(err)
	}
	if got := probed["postfixConfig"] + "\n"; got != want {
		t.Errorf("the chart's Postfix settings differ from repcache postfix-config's:\n%s", diff(want, got))
	}
	if !strings.Contains(probed["notes"], strings.TrimSuffix(want, "\n")) {
		t.Errorf("NOTES.txt does not print repcache postfix-config's output:\n%s", probed["notes"])
	}
	// ConfigMap FULLNAME-postfix: main.cf and one file per table, as the
	// binary prints them.
	if postfixCM == nil {
		t.Fatal("no Postfix ConfigMap")
	}
	sections := strings.Split(want, "\n# ---- ")
	mainCf := strings.TrimPrefix(sections[0], "# ---- main.cf: add these lines (generated by repcache postfix-config) ----\n")
	files := map[string]string{"main.cf": strings.TrimSuffix(mainCf, "\n") + "\n"}
	for _, s := range sections[1:] {
		head, body, _ := strings.Cut(s, " ----\n")
		files[filepath.Base(head)] = strings.TrimSuffix(body, "\n") + "\n"
	}
	data := get(postfixCM, "data").(map[string]any)
	if len(data) != len(files) {
		t.Errorf("ConfigMap %s has %d files, postfix-config prints %d", postfixCM.name(), len(data), len(files))
	}
	for name, content := range files {
		if got := str(data[name]); got != content {
			t.Errorf("ConfigMap %s, %s:\n%s", postfixCM.name(), name, diff(content, got))
		}
	}
	// And repcache's own Postfix check finds nothing wrong with them (the
	// table directory moved to where the files are).
	pfDir := t.TempDir()
	args := []string{"postfix-check", "--config", cfgFile, filepath.Join(pfDir, "main.cf")}
	for name, content := range data {
		c := strings.ReplaceAll(str(content), strings.TrimSuffix(tableDir[1], "/")+"/", pfDir+"/")
		if err := os.WriteFile(filepath.Join(pfDir, name), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
		if name != "main.cf" {
			args = append(args, filepath.Join(pfDir, name))
		}
	}
	if out, err := run(t, "", env, repcache, args...); err != nil {
		t.Errorf("repcache postfix-check of ConfigMap %s: %v %s", postfixCM.name(), err, out)
	}
}

func diff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for i := range max(len(w), len(g)) {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			fmt.Fprintf(&b, "line %d:\n  want %q\n  got  %q\n", i+1, wl, gl)
		}
	}
	return b.String()
}

// TestSidecarExamples: the example values and manifests under
// repcache/examples are exactly what the chart's sidecar templates render
// for examples/repcache-sidecar-values.yaml (release "repcache", namespace
// "mail"), and Postfix is pointed where the chart's Postfix ConfigMap says.
func TestSidecarExamples(t *testing.T) {
	ex := filepath.Join(chart, "examples")
	o := renderOpts{release: "repcache", namespace: "mail", values: []string{filepath.Join(ex, "repcache-sidecar-values.yaml")}}
	raw, objs := render(t, o)
	validate(t, "repcache-sidecar.yaml", raw)
	checkObjects(t, objs)
	p := probe(t, probeChart(t), o)
	container := yamlValue(t, p["sidecarContainer"]).([]any)
	init := yamlValue(t, p["sidecarInitContainer"]).([]any)
	volumes := yamlValue(t, p["sidecarVolumes"]).([]any)
	checkContainer(t, container[0].(map[string]any), "repcache-admin")
	checkContainer(t, init[0].(map[string]any), "repcache-admin")
	if get(init, 0, "restartPolicy") != "Always" || get(container, 0, "restartPolicy") != nil {
		t.Errorf("restartPolicy: init container %v, container %v", get(init, 0, "restartPolicy"), get(container, 0, "restartPolicy"))
	}
	var mainCf string
	for _, o := range objs {
		if o.kind() == "ConfigMap" && get(o, "data", "main.cf") != nil {
			mainCf = str(get(o, "data", "main.cf"))
		}
	}
	postfixParams := map[string]any{}
	for _, l := range strings.Split(mainCf, "\n") {
		if k, v, ok := strings.Cut(l, " = "); ok && !strings.HasPrefix(l, "#") {
			postfixParams[k] = v
		}
	}
	if len(postfixParams) == 0 {
		t.Fatalf("no main.cf lines in\n%s", mainCf)
	}
	// The same pod additions, as each example spells them.
	want := map[string]any{"container": container[0], "volumes": volumes}
	for _, e := range []struct{ file, containers string }{
		{"mail-sidecar-values.yaml", "extraContainers"},
		{"mail-native-sidecar-values.yaml", "extraInitContainers"},
	} {
		v := yamlValue(t, readFile(t, filepath.Join(ex, e.file)))
		if e.containers == "extraInitContainers" {
			want["container"] = init[0]
		} else {
			want["container"] = container[0]
		}
		if got := get(v, e.containers, 0); !reflect.DeepEqual(got, want["container"]) {
			t.Errorf("%s: %s[0] is not what the chart renders; want\n%s", e.file, e.containers, yamlString(want["container"]))
		}
		if got := get(v, "extraVolumes"); !hasPrefixList(got, volumes) {
			t.Errorf("%s: extraVolumes do not start with\n%s", e.file, yamlString(volumes))
		}
		if got := get(v, "config", "postfix"); !reflect.DeepEqual(got, postfixParams) {
			t.Errorf("%s: config.postfix is not the main.cf lines of the chart:\n%s", e.file, yamlString(postfixParams))
		}
	}
	d := readFile(t, filepath.Join(ex, "native-sidecar-deployment.yaml"))
	validate(t, "native-sidecar-deployment.yaml", d)
	dep := yamlValue(t, d)
	if got := get(dep, "spec", "template", "spec", "initContainers", 0); !reflect.DeepEqual(got, init[0]) {
		t.Errorf("native-sidecar-deployment.yaml: initContainers[0] is not what the chart renders; want\n%s", yamlString(init[0]))
	}
	if !hasPrefixList(get(dep, "spec", "template", "spec", "volumes"), volumes) {
		t.Errorf("native-sidecar-deployment.yaml: volumes do not start with\n%s", yamlString(volumes))
	}
	env := map[string]any{}
	for _, e := range get(dep, "spec", "template", "spec", "containers", 0, "env").([]any) {
		env[strings.TrimPrefix(str(get(e, "name")), "POSTFIX_")] = get(e, "value")
	}
	if !reflect.DeepEqual(env, postfixParams) {
		t.Errorf("native-sidecar-deployment.yaml: the POSTFIX_ variables are not the main.cf lines of the chart:\n%s", yamlString(postfixParams))
	}
}

func hasPrefixList(got, prefix any) bool {
	g, ok := got.([]any)
	p, _ := prefix.([]any)
	return ok && len(g) >= len(p) && reflect.DeepEqual(g[:len(p)], p)
}

// TestSubchart: a parent chart puts the sidecar into its own Postfix pod
// with the named templates, through .Subcharts.
func TestSubchart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "postfix")
	files := map[string]string{
		"Chart.yaml": fmt.Sprintf(`apiVersion: v2
name: postfix
version: 1.0.0
dependencies:
  - name: repcache
    version: ">=0.0.0-0"
    repository: file://%s
`, chart),
		"values.yaml": "repcache:\n  mode: sidecar\n",
		"templates/deployment.yaml": `apiVersion: apps/v1
kind: Deployment
metadata:
  name: postfix
spec:
  selector:
    matchLabels: {app: postfix}
  template:
    metadata:
      labels: {app: postfix}
    spec:
      initContainers:
        {{- include "repcache.sidecarInitContainer" .Subcharts.repcache | nindent 8 }}
      containers:
        - name: postfix
          image: boky/postfix
      volumes:
        {{- include "repcache.sidecarVolumes" .Subcharts.repcache | nindent 8 }}
`,
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := run(t, dir, []string{"HELM_CACHE_HOME=" + t.TempDir(), "HELM_CONFIG_HOME=" + t.TempDir()},
		helmBin, "dependency", "build", "--skip-refresh", "."); err != nil {
		t.Fatal(err)
	}
	raw, objs := render(t, renderOpts{dir: dir, release: "stack"})
	validate(t, "subchart.yaml", raw)
	var kinds []string
	for _, o := range objs {
		kinds = append(kinds, o.kind()+"/"+o.name())
		if o.kind() == "Deployment" && o.name() == "postfix" {
			c := get(o, "spec", "template", "spec", "initContainers", 0).(map[string]any)
			checkContainer(t, c, "repcache-admin")
			cm := get(o, "spec", "template", "spec", "volumes", 0, "configMap", "name")
			if cm != "stack-repcache" {
				t.Errorf("the sidecar volume names ConfigMap %v, want stack-repcache", cm)
			}
		}
	}
	if !slices.Contains(kinds, "ConfigMap/stack-repcache") || slices.Contains(kinds, "Deployment/stack-repcache") {
		t.Errorf("parent chart rendered %v", kinds)
	}
}

// TestValuesRefused: the schema and the chart's checks refuse what would not
// work, naming the value.
func TestValuesRefused(t *testing.T) {
	for _, c := range []struct {
		set  []string
		want string
	}{
		{[]string{"config.cache.memory.max_bytes=1GiB"}, "max_bytes"},
		{[]string{"config.cache.memory.maxBytes=lots"}, "maxBytes"},
		{[]string{"config.shutdownTimeout=10"}, "shutdownTimeout"},
		{[]string{"config.cache.backend=redis"}, "backend"},
		{[]string{"config.maps[0].name=x", "config.maps[0].prefix=x:", "config.maps[0].kind=greylist"}, "kind"},
		{[]string{"mode=daemonset"}, "mode"},
		{[]string{"config.cache.backend=memcached"}, "config.cache.memcached.servers"},
		{[]string{"config.backup.backend=redis"}, "config.backup.redis.addrs"},
		{[]string{"mode=sidecar", "metrics.serviceMonitor.enabled=true"}, "metrics.serviceMonitor.enabled"},
		{[]string{"mode=sidecar", "metrics.podMonitor.enabled=true"}, "metrics.podMonitor.selector"},
		{[]string{"config.backup.redis.password=secret"}, "password"},
	} {
		_, err := renderErr(t, renderOpts{set: c.set})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("--set %v: want an error naming %s, got %v", c.set, c.want, err)
		}
	}
}

// TestUnittest runs the helm-unittest suites of repcache/tests.
func TestUnittest(t *testing.T) {
	out, err := run(t, "", []string{"HELM_CACHE_HOME=" + t.TempDir(), "HELM_CONFIG_HOME=" + t.TempDir()},
		unittest, "--strict", "--color=false", chart)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`Test Suites: \d+ passed, \d+ total`).MatchString(out) {
		t.Errorf("helm-unittest:\n%s", out)
	}
	t.Log(out[strings.LastIndex(out, "Charts:"):])
}
