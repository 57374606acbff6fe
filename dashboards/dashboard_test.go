package dashboards

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/repcache/repcache/internal/testenv"
)

const (
	dashboardFile = "repcache.json"
	rulesFile     = "../prometheus/rules.yml"
	rulesTests    = "../prometheus/tests/*.yml"
	dashboardUID  = "repcache-overview"
)

// dashboard is the part of Grafana's dashboard model the tests read.
type dashboard struct {
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []variable `json:"list"`
	} `json:"templating"`
}

type datasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type panel struct {
	ID          int            `json:"id"`
	Type        string         `json:"type"`
	Title       string         `json:"title"`
	Description string         `json:"description"`
	Datasource  *datasourceRef `json:"datasource"`
	GridPos     *struct {
		H, W, X, Y int
	} `json:"gridPos"`
	FieldConfig struct {
		Defaults struct {
			Unit       string `json:"unit"`
			Thresholds struct {
				Steps []struct {
					Value *float64 `json:"value"`
				} `json:"steps"`
			} `json:"thresholds"`
			Custom struct {
				ThresholdsStyle struct {
					Mode string `json:"mode"`
				} `json:"thresholdsStyle"`
			} `json:"custom"`
		} `json:"defaults"`
	} `json:"fieldConfig"`
	Targets []target `json:"targets"`
	Panels  []panel  `json:"panels"` // a collapsed row's panels
}

type target struct {
	RefID      string         `json:"refId"`
	Expr       string         `json:"expr"`
	Datasource *datasourceRef `json:"datasource"`
}

type variable struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Query      json.RawMessage `json:"query"`
	Datasource *datasourceRef  `json:"datasource"`
	IncludeAll bool            `json:"includeAll"`
	Multi      bool            `json:"multi"`
}

// queryText is a variable's query, written either as a string or as
// Grafana's {"query": "..."} object.
func (v variable) queryText() string {
	var s string
	if json.Unmarshal(v.Query, &s) == nil {
		return s
	}
	var o struct {
		Query string `json:"query"`
	}
	json.Unmarshal(v.Query, &o)
	return o.Query
}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	dec := json.NewDecoder(strings.NewReader(string(b)))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d
}

// allPanels flattens rows: top-level panels and those inside collapsed rows.
func allPanels(d dashboard) []panel {
	var out []panel
	for _, p := range d.Panels {
		out = append(out, p)
		out = append(out, p.Panels...)
	}
	return out
}

// expression is one PromQL expression the dashboard or the rules evaluate.
type expression struct {
	where string // panel or rule, for messages
	expr  string
}

func dashboardExpressions(d dashboard) []expression {
	var out []expression
	for _, p := range allPanels(d) {
		for _, tg := range p.Targets {
			out = append(out, expression{fmt.Sprintf("panel %d %q target %s", p.ID, p.Title, tg.RefID), tg.Expr})
		}
	}
	return out
}

// mapMetrics are the series that carry the map label: every selector of
// them must be filtered by the $map variable.
var mapMetrics = []string{
	"repcache_commands_total", "repcache_lookups_total", "repcache_expirations_total",
	"repcache_expired_reads_total", "repcache_record_lifetime_seconds_bucket",
	"repcache_record_lifetime_seconds_sum", "repcache_record_lifetime_seconds_count",
}

var labelValuesRE = regexp.MustCompile(`^label_values\((.+),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)$`)

func TestDashboardLint(t *testing.T) {
	d := loadDashboard(t)
	if d.UID != dashboardUID {
		t.Errorf("uid = %q, want the fixed %q (links and provisioning depend on it)", d.UID, dashboardUID)
	}
	if d.SchemaVersion < 36 {
		t.Errorf("schemaVersion = %d, want >= 36", d.SchemaVersion)
	}
	if d.Title == "" {
		t.Error("dashboard has no title")
	}

	// Template variables: a Prometheus data source picker, then job,
	// instance and map, each narrowed by the ones before it.
	vars := map[string]variable{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v
	}
	if v, ok := vars["datasource"]; !ok || v.Type != "datasource" || v.queryText() != "prometheus" {
		t.Errorf("datasource variable = %+v (query %q), want type datasource, query prometheus", v, v.queryText())
	}
	for _, want := range []struct{ name, metric, label string }{
		{"job", "repcache_build_info", "job"},
		{"instance", `repcache_build_info{job=~"$job"}`, "instance"},
		{"map", `repcache_commands_total{job=~"$job", instance=~"$instance"}`, "map"},
	} {
		v, ok := vars[want.name]
		if !ok {
			t.Errorf("no %s variable", want.name)
			continue
		}
		m := labelValuesRE.FindStringSubmatch(v.queryText())
		if v.Type != "query" || m == nil || m[1] != want.metric || m[2] != want.label {
			t.Errorf("%s variable: type %q query %q, want label_values(%s, %s)", want.name, v.Type, v.queryText(), want.metric, want.label)
		}
		if v.Datasource == nil || v.Datasource.UID != "${datasource}" {
			t.Errorf("%s variable does not query ${datasource}: %+v", want.name, v.Datasource)
		}
		if !v.IncludeAll || !v.Multi {
			t.Errorf("%s variable: includeAll %v multi %v, want both", want.name, v.IncludeAll, v.Multi)
		}
	}

	// Panels.
	ids := map[int]string{}
	rows := 0
	type cell struct{ x, y int }
	occupied := map[cell]string{}
	for i, p := range allPanels(d) {
		name := fmt.Sprintf("panel %d %q", p.ID, p.Title)
		if p.ID <= 0 {
			t.Errorf("%s: no id", name)
		}
		if other, dup := ids[p.ID]; dup {
			t.Errorf("%s: id also used by %s", name, other)
		}
		ids[p.ID] = name
		if p.Title == "" {
			t.Errorf("%s: no title", name)
		}
		if p.GridPos == nil || p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("%s: bad gridPos %+v", name, p.GridPos)
		} else {
			for x := p.GridPos.X; x < p.GridPos.X+p.GridPos.W; x++ {
				for y := p.GridPos.Y; y < p.GridPos.Y+p.GridPos.H; y++ {
					if other, ok := occupied[cell{x, y}]; ok {
						t.Errorf("%s overlaps %s at x=%d y=%d", name, other, x, y)
						x, y = 1<<30, 1<<30
						break
					}
					occupied[cell{x, y}] = name
				}
			}
		}
		if p.Type == "row" {
			rows++
			continue
		}
		if i == 0 {
			t.Errorf("%s: the dashboard does not start with a row", name)
		}
		if p.Description == "" {
			t.Errorf("%s: no description (the panel's (i) tells the operator what it shows)", name)
		}
		if p.FieldConfig.Defaults.Unit == "" {
			t.Errorf("%s: no unit (fieldConfig.defaults.unit)", name)
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("%s: datasource %+v, want uid ${datasource}", name, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("%s: no targets", name)
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			if tg.Expr == "" || tg.RefID == "" || refs[tg.RefID] {
				t.Errorf("%s: target %q has no expression, or a missing or repeated refId", name, tg.RefID)
			}
			refs[tg.RefID] = true
			if tg.Datasource == nil || tg.Datasource.UID != "${datasource}" {
				t.Errorf("%s target %s: datasource %+v, want uid ${datasource}", name, tg.RefID, tg.Datasource)
			}
		}
	}
	if rows < 5 {
		t.Errorf("%d rows, want the panels grouped in rows", rows)
	}

	// Expressions: every window is $__rate_interval, every selector is
	// filtered by job and instance (and map when the series has a map).
	for _, e := range dashboardExpressions(d) {
		for _, w := range rangeWindows(e.expr) {
			if w != "$__rate_interval" {
				t.Errorf("%s: window [%s], want [$__rate_interval]: %s", e.where, w, e.expr)
			}
		}
		if regexp.MustCompile(`\b(rate|irate|increase|delta|idelta|deriv|changes|resets)\(`).MatchString(e.expr) && len(rangeWindows(e.expr)) == 0 {
			t.Errorf("%s: rate without a range: %s", e.where, e.expr)
		}
		if bare := bareMetrics(e.expr); len(bare) > 0 {
			t.Errorf("%s: metrics %q without a job/instance filter: %s", e.where, bare, e.expr)
		}
		sels := selectors(e.expr)
		if len(sels) == 0 {
			t.Errorf("%s: no selector: %s", e.where, e.expr)
		}
		for _, s := range sels {
			if !s.has(`job=~"$job"`) || !s.has(`instance=~"$instance"`) {
				t.Errorf("%s: selector %s%v lacks job=~\"$job\" or instance=~\"$instance\"", e.where, s.metric, s.matchers)
			}
			if slices.Contains(mapMetrics, s.metric) && !s.has(`map=~"$map"`) {
				t.Errorf("%s: selector %s%v lacks map=~\"$map\"", e.where, s.metric, s.matchers)
			}
		}
	}

	// The panels the operators asked for.
	exprs := ""
	for _, e := range dashboardExpressions(d) {
		exprs += e.expr + "\n"
	}
	for _, want := range []string{
		"repcache_lookups_total", "repcache_commands_total", "repcache_expirations_total",
		"repcache_expired_reads_total", "repcache_request_duration_seconds_bucket",
		"repcache_backend_up", "repcache_backend_breaker_state", "repcache_backend_errors_total",
		"repcache_backup_queue_length", "repcache_backup_dropped_total", "repcache_connections_current",
		"repcache_store_bytes", "repcache_store_capacity_bytes", "process_resident_memory_bytes",
	} {
		if !strings.Contains(exprs, want+"{") {
			t.Errorf("no panel queries %s", want)
		}
	}
	latencyLine := false
	for _, p := range allPanels(d) {
		def := p.FieldConfig.Defaults
		quantile := false
		for _, tg := range p.Targets {
			quantile = quantile || (strings.Contains(tg.Expr, "histogram_quantile(0.99") && strings.Contains(tg.Expr, "repcache_request_duration_seconds_bucket"))
		}
		line := def.Custom.ThresholdsStyle.Mode != "" && def.Custom.ThresholdsStyle.Mode != "off"
		for _, st := range def.Thresholds.Steps {
			if quantile && line && st.Value != nil && *st.Value == 0.1 {
				latencyLine = true
			}
		}
	}
	if !latencyLine {
		t.Error("no request latency panel draws a threshold line at 0.1 s (postscreen's 100 ms)")
	}
}

// promtool finds promtool next to the Prometheus testenv runs, or on PATH.
func promtool(t *testing.T) string {
	t.Helper()
	p := filepath.Join(filepath.Dir(testenv.PrometheusBinary), "promtool")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	return testenv.LookPath(t, "promtool", "prometheus")
}

func TestPrometheusRules(t *testing.T) {
	bin := promtool(t)
	out, err := exec.Command(bin, "check", "rules", rulesFile).CombinedOutput()
	if err != nil {
		t.Errorf("promtool check rules %s: %v\n%s", rulesFile, err, out)
	}
	if want := fmt.Sprintf("SUCCESS: %d rules found", len(ruleNames(t))); !strings.Contains(string(out), want) {
		t.Errorf("promtool check rules: %q not in\n%s", want, out)
	}
	tests, err := filepath.Glob(rulesTests)
	if err != nil || len(tests) == 0 {
		t.Fatalf("no rule tests %s: %v", rulesTests, err)
	}
	sort.Strings(tests)
	out, err = exec.Command(bin, append([]string{"test", "rules"}, tests...)...).CombinedOutput()
	if err != nil {
		t.Errorf("promtool test rules: %v\n%s", err, out)
	}

	// Every alert has a test that expects it to fire and one that expects
	// it not to; every recording rule is evaluated by a test.
	var all strings.Builder
	for _, f := range tests {
		b, _ := os.ReadFile(f)
		all.Write(b)
	}
	text := all.String()
	names := ruleNames(t)
	slices.Sort(names)
	for _, name := range slices.Compact(names) {
		if strings.Contains(name, ":") {
			if !strings.Contains(text, name) {
				t.Errorf("recording rule %s: no test evaluates it", name)
			}
			continue
		}
		firing := regexp.MustCompile(`alertname: ` + name + `\s+exp_alerts:\s+- exp_labels:`)
		quiet := regexp.MustCompile(`alertname: ` + name + `\s+exp_alerts: \[\]`)
		if !firing.MatchString(text) {
			t.Errorf("alert %s: no test expects it to fire", name)
		}
		if !quiet.MatchString(text) {
			t.Errorf("alert %s: no test expects it to stay quiet", name)
		}
	}
}

var ruleNameRE = regexp.MustCompile(`(?m)^\s*- (record|alert): (\S+)\s*$`)

// ruleNames lists the names of the rules in rules.yml, in order (an alert
// with several rules once per rule).
func ruleNames(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range ruleNameRE.FindAllStringSubmatch(string(b), -1) {
		names = append(names, m[2])
	}
	return names
}

// TestQueriesReturnData is the integration test: repcache with both remote
// tiers (memcached cache, Redis backup) and repcache with the embedded
// store (and the same Redis as backup), a little Postfix-like traffic
// through both, a real Prometheus scraping them every second with
// ../prometheus/rules.yml loaded; then every expression of the dashboard
// and of the rules must return data.
func TestQueriesReturnData(t *testing.T) {
	began := time.Now()
	bin := buildRepcache(t)
	memcached := testenv.Memcached(t, "-I", "2m")
	redis := testenv.Redis(t, testenv.RedisOptions{})
	tiered := startRepcache(t, bin,
		"--cache.backend", "memcached", "--cache.memcached.servers", memcached,
		"--backup.backend", "redis", "--backup.redis.addrs", redis.Addr())
	embedded := startRepcache(t, bin, "--cache.memory.max_bytes", "16MiB",
		"--backup.backend", "redis", "--backup.redis.addrs", redis.Addr())
	prom := testenv.StartPrometheus(t, testenv.PrometheusOptions{
		ScrapeTargets: []string{tiered.admin, embedded.admin},
		RuleFiles:     []string{rulesFile},
	})
	t.Logf("servers up after %v", time.Since(began).Round(time.Millisecond))

	// Prometheus's service discovery hands it its targets after about 5 s;
	// the load runs meanwhile, and long enough for rates over a few scrapes.
	driveLoad(t, tiered, embedded, memcached, 8*time.Second)
	prom.WaitForTargetsUp(t, 20*time.Second)
	t.Logf("load done after %v", time.Since(began).Round(time.Millisecond))

	// The load did what it says, as Prometheus saw it once it scraped the
	// end of the load.
	for _, check := range []struct{ what, expr string }{
		{"every postscreen test expired on read, on both instances", `count(repcache_expired_reads_total{map="postscreen"} > 0) == 10`},
		{"every verify status expired on read, on both instances", `count(repcache_expired_reads_total{map="verify"} > 0) == 8`},
		{"an invalid record refused", `repcache_commands_total{map="postscreen", command="set", status="refused"} > 0`},
		{"deletes found and not found", `count(repcache_commands_total{command="delete", status=~"deleted|not_found"} > 0) == 4`},
		{"backup tier hits on both instances", `count(repcache_lookups_total{tier="backup", result="hit"} > 0) >= 2`},
		{"async backup writes", `sum(repcache_backup_writes_total{mode="async", result="ok"}) > 0`},
		{"the recording rules ran", `repcache:hit_ratio:rate5m{map="postscreen", tier="cache"}`},
	} {
		if n, _ := prom.WaitForQuery(t, check.expr, 15*time.Second); n == 0 {
			t.Errorf("%s: %s returned nothing", check.what, check.expr)
		}
	}

	instances := []string{tiered.admin, embedded.admin}
	var quoted []string
	for _, i := range instances {
		quoted = append(quoted, strings.ReplaceAll(regexp.QuoteMeta(i), `\`, `\\`))
	}
	// What Grafana puts in place of the variables for an all-values
	// selection, and a fixed window for $__rate_interval.
	substitute := strings.NewReplacer(
		"$__rate_interval", "1m",
		"$job", "repcache",
		"$instance", "("+strings.Join(quoted, "|")+")",
		"$map", "(postscreen|verify|other|none)",
		"${datasource}", "",
	).Replace

	// query evaluates expr, retrying for a few seconds while it returns
	// nothing (a rate needs two scrapes of its series).
	query := func(expr string) (int, string, error) {
		deadline := time.Now().Add(5 * time.Second)
		for {
			n, raw, err := prom.QueryE(expr)
			if err != nil || n > 0 || time.Now().After(deadline) {
				return n, raw, err
			}
			time.Sleep(250 * time.Millisecond)
		}
	}
	var report []string
	mustReturnData := func(where, expr string) {
		t.Helper()
		n, raw, err := query(expr)
		switch {
		case err != nil:
			t.Errorf("%s: %v\n  %s", where, err, expr)
		case n == 0:
			t.Errorf("%s: no data\n  %s\n  %s", where, expr, raw)
		default:
			report = append(report, fmt.Sprintf("%3d series  %s", n, where))
		}
	}

	// The dashboard's template variables, as the series queries they are.
	d := loadDashboard(t)
	for _, v := range d.Templating.List {
		m := labelValuesRE.FindStringSubmatch(v.queryText())
		if v.Type != "query" || m == nil {
			continue
		}
		expr := substitute(fmt.Sprintf("count by (%s) (%s)", m[2], m[1]))
		mustReturnData("variable "+v.Name, expr)
		_, raw, _ := prom.QueryE(expr)
		want := map[string][]string{"job": {"repcache"}, "instance": instances, "map": {"postscreen", "verify"}}[v.Name]
		for _, w := range want {
			if !strings.Contains(raw, fmt.Sprintf("%q:%q", m[2], w)) {
				t.Errorf("variable %s: value %q missing: %s", v.Name, w, raw)
			}
		}
	}
	// Every panel's every target.
	for _, e := range dashboardExpressions(d) {
		mustReturnData(e.where, substitute(e.expr))
	}

	// Every rule, as Prometheus loaded it from rules.yml.
	rules := waitRulesEvaluated(t, prom, len(ruleNames(t)))
	for _, r := range rules {
		if r.Health != "ok" {
			t.Errorf("rule %s: health %s: %s", r.Name, r.Health, r.LastError)
		}
		switch r.Type {
		case "recording":
			mustReturnData("recording rule "+r.Name+" (expr)", r.Query)
			mustReturnData("recording rule "+r.Name+" (recorded series)", r.Name)
		case "alerting":
			// A healthy system must not fire; the expression with its
			// comparisons turned into bool (and its offsets dropped: no
			// day-old data here) shows it sees the series it judges.
			n, raw, err := prom.QueryE(r.Query)
			switch {
			case err != nil:
				t.Errorf("alert %s: %v\n  %s", r.Name, err, r.Query)
			case n > 0 && r.Name == "RepcacheSlowRequests":
				t.Logf("alert %s would fire on this (busy) test machine: %s", r.Name, raw)
			case n > 0:
				t.Errorf("alert %s fires on a healthy system: %s\n  %s", r.Name, raw, r.Query)
			}
			mustReturnData("alert "+r.Name+" (without its filters)", withoutFilters(r.Query))
		}
	}
	t.Logf("expressions that returned data:\n%s", strings.Join(report, "\n"))
	t.Logf("total %v", time.Since(began).Round(time.Millisecond))
}

// waitRulesEvaluated waits until Prometheus has loaded want rules and
// evaluated each at least once.
func waitRulesEvaluated(t *testing.T, prom *testenv.PrometheusServer, want int) []testenv.Rule {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		rules := prom.Rules(t)
		done := len(rules) == want
		for _, r := range rules {
			done = done && r.Health != "unknown" && r.Health != ""
		}
		if done || time.Now().After(deadline) {
			if len(rules) != want {
				t.Fatalf("prometheus loaded %d rules, rules.yml has %d", len(rules), want)
			}
			return rules
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// driveLoad sends both instances what Postfix's postscreen and verify (and
// a careless operator) would: valid records, hits, misses, a refused
// write, deletes, keys outside every map, meta commands, records whose
// content expires by Postfix's rules while repcache still keeps them, and
// then steady traffic for d. Midway it empties memcached behind repcache's
// back, so that the tiered instance refills from Redis.
func driveLoad(t *testing.T, tiered, embedded repcache, memcached string, d time.Duration) {
	t.Helper()
	a, b := dial(t, tiered.addr), dial(t, embedded.addr)
	now := time.Now().Unix()
	const day = 86400
	// Records kept (for min_ttl, or their retention) whose content
	// expires 5 s from now by Postfix's rules, or has already.
	expiring := map[string]string{
		"postscreen:198.51.100.1":    fmt.Sprintf("%d;%d;%d;%d;%d", now-10, now-10, now-10, now-10, now-10),
		"verify:probe@example.org":   fmt.Sprintf("3:%d:0:", now-1000+5),
		"verify:defer@example.org":   fmt.Sprintf("1:0:%d:4.4.1 connection timed out", now-3*day+5),
		"verify:bounce@example.org":  fmt.Sprintf("2:0:%d:5.1.1 unknown user", now-3*day+5),
		"verify:ok@example.org":      fmt.Sprintf("0:0:%d:250 2.1.5 Ok", now-31*day+5),
		"postscreen:198.51.100.2":    fmt.Sprintf("%d;1;1;1;1", now+5),
		"verify:refresh@example.org": fmt.Sprintf("0:0:%d:250 2.1.5 Ok", now-31*day+5),
	}
	for _, c := range []*client{a, b} {
		for i := 1; i <= 20; i++ {
			c.mustSet(fmt.Sprintf("postscreen:192.0.2.%d", i), fmt.Sprintf("%d;1;1;1;1", now+day))
		}
		for i := 1; i <= 10; i++ {
			c.mustSet(fmt.Sprintf("verify:user%d@example.org", i), fmt.Sprintf("0:0:%d:250 2.1.5 Ok", now))
			c.mustSet(fmt.Sprintf("verify:nobody%d@example.org", i), fmt.Sprintf("2:0:%d:unknown user", now))
		}
		for k, v := range expiring {
			c.mustSet(k, v)
		}
		c.expect("set postscreen:192.0.2.250 0 0 7\r\ngarbage\r\n", "CLIENT_ERROR")
		c.expect("delete postscreen:192.0.2.20\r\n", "DELETED")
		c.expect("delete postscreen:192.0.2.20\r\n", "NOT_FOUND")
		v := fmt.Sprintf("%d;1;1;1;1", now+day)
		c.expect(fmt.Sprintf("add postscreen:192.0.2.1 0 0 %d\r\n%s\r\n", len(v), v), "NOT_STORED")
		c.expect("set other:counter 0 0 1\r\n0\r\n", "STORED")
		c.expect("incr other:counter 5\r\n", "5")
		c.expect("touch other:counter 300\r\n", "TOUCHED")
		c.expect("set other:short 0 1 1\r\nx\r\n", "STORED")
		c.expect("mg postscreen:192.0.2.1 v\r\n", "VA ")
		c.expect("ms other:meta 2\r\nhi\r\n", "HD")
		c.expect("md other:meta\r\n", "HD")
		c.hit("postscreen:198.51.100.1") // every postscreen test expired
		c.miss("verify:never@example.org")
	}

	start := time.Now()
	flushed := false
	for i := 0; time.Since(start) < d; i++ {
		for _, c := range []*client{a, b} {
			n := i%19 + 1
			c.hit(fmt.Sprintf("postscreen:192.0.2.%d", n))
			c.miss(fmt.Sprintf("postscreen:203.0.113.%d", i%250))
			c.hit(fmt.Sprintf("verify:user%d@example.org", i%10+1))
			c.mustSet(fmt.Sprintf("postscreen:192.0.2.%d", n), fmt.Sprintf("%d;1;1;1;1", now+day+int64(i)))
		}
		// The tiered instance writes what the embedded one reads later:
		// a cache miss there, found in the shared Redis.
		a.mustSet(fmt.Sprintf("postscreen:192.0.2.%d", 100+i%150), fmt.Sprintf("%d;1;1;1;1", now+day))
		if i >= 20 {
			b.do(fmt.Sprintf("get postscreen:192.0.2.%d\r\n", 100+(i-20)%150))
		}
		if !flushed && time.Since(start) > d/4 {
			// memcached loses everything (a restart): the tiered
			// instance now finds its records in Redis.
			mc := dial(t, memcached)
			mc.expect("flush_all\r\n", "OK")
			flushed = true
		}
		if time.Since(start) > 6*time.Second {
			for _, c := range []*client{a, b} {
				for k := range expiring {
					c.hit(k)
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
}
