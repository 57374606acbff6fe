package testenv

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// PrometheusBinary is the Prometheus server the tests run (Debian package
// prometheus, which also ships promtool next to it).
const PrometheusBinary = "/usr/bin/prometheus"

// PrometheusOptions configures a private Prometheus server.
type PrometheusOptions struct {
	// ScrapeTargets are the host:port addresses whose /metrics are scraped,
	// all under one job.
	ScrapeTargets []string
	// Job is the scrape job's name. Default "repcache".
	Job string
	// RuleFiles are loaded as rule_files (recording and alerting rules),
	// evaluated every ScrapeInterval.
	RuleFiles []string
	// ScrapeInterval is both the scrape and the rule evaluation interval.
	// Default 1s.
	ScrapeInterval time.Duration
}

// PrometheusServer is a private Prometheus on a loopback port, with its
// TSDB in a t.TempDir(). It is killed when the test ends.
type PrometheusServer struct {
	addr    string
	targets int
	client  *http.Client
	out     *syncBuffer
}

// Prometheus starts a private Prometheus scraping scrapeTargets (host:port
// of a /metrics endpoint) every second under job "repcache", and waits until
// it is ready. A missing prometheus binary fails the test.
func Prometheus(t testing.TB, scrapeTargets []string) *PrometheusServer {
	t.Helper()
	return StartPrometheus(t, PrometheusOptions{ScrapeTargets: scrapeTargets})
}

// StartPrometheus starts a private Prometheus as o says, on a free
// 127.0.0.1 port, and waits until /-/ready answers 200.
func StartPrometheus(t testing.TB, o PrometheusOptions) *PrometheusServer {
	t.Helper()
	bin := PrometheusBinary
	if _, err := os.Stat(bin); err != nil {
		bin = LookPath(t, "prometheus", "prometheus")
	}
	if o.Job == "" {
		o.Job = "repcache"
	}
	if o.ScrapeInterval <= 0 {
		o.ScrapeInterval = time.Second
	}
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(prometheusConfig(o)), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &PrometheusServer{
		addr:    net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePort(t))),
		targets: len(o.ScrapeTargets),
		client:  &http.Client{Timeout: 10 * time.Second},
		out:     &syncBuffer{},
	}
	args := []string{
		"--config.file=" + cfgPath,
		"--storage.tsdb.path=" + filepath.Join(dir, "data"),
		"--web.listen-address=" + p.addr,
		"--log.level=warn",
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = p.out, p.out
	// Registered first, so it runs after run's cleanup has stopped the process.
	t.Cleanup(func() {
		if t.Failed() && p.out.String() != "" {
			t.Logf("prometheus output:\n%s", p.out.String())
		}
	})
	exited := run(t, cmd)
	if err := p.waitReady(30*time.Second, exited); err != nil {
		t.Fatalf("%s %q: %v\nconfig:\n%s\noutput:\n%s", bin, args, err, prometheusConfig(o), p.out.String())
	}
	return p
}

// prometheusConfig renders the minimal configuration: one job, static
// targets, the rule files.
func prometheusConfig(o PrometheusOptions) string {
	var b strings.Builder
	fmt.Fprintf(&b, "global:\n  scrape_interval: %s\n  scrape_timeout: %s\n  evaluation_interval: %s\n",
		o.ScrapeInterval, o.ScrapeInterval, o.ScrapeInterval)
	if len(o.RuleFiles) > 0 {
		b.WriteString("rule_files:\n")
		for _, f := range o.RuleFiles {
			abs, err := filepath.Abs(f)
			if err != nil {
				abs = f
			}
			fmt.Fprintf(&b, "  - %s\n", strconv.Quote(abs))
		}
	}
	fmt.Fprintf(&b, "scrape_configs:\n  - job_name: %s\n    static_configs:\n      - targets: [", strconv.Quote(o.Job))
	for i, target := range o.ScrapeTargets {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Quote(target))
	}
	b.WriteString("]\n")
	return b.String()
}

func (p *PrometheusServer) waitReady(timeout time.Duration, exited <-chan error) error {
	deadline := time.Now().Add(timeout)
	for {
		resp, err := p.client.Get(p.URL() + "/-/ready")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("/-/ready answered %s", resp.Status)
		}
		select {
		case werr := <-exited:
			return fmt.Errorf("exited before ready: %v", werr)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %v: %v", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Addr is the server's host:port.
func (p *PrometheusServer) Addr() string { return p.addr }

// URL is the server's base URL, http://host:port.
func (p *PrometheusServer) URL() string { return "http://" + p.addr }

// Output is what the server logged so far.
func (p *PrometheusServer) Output() string { return p.out.String() }

// apiResponse is the envelope of every /api/v1 answer.
type apiResponse struct {
	Status    string          `json:"status"`
	Data      json.RawMessage `json:"data"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
	Warnings  []string        `json:"warnings"`
}

// get calls an /api/v1 endpoint and returns its data, or an error for a
// transport failure or an API error (bad expression, timeout, ...).
func (p *PrometheusServer) get(path string, params url.Values) (json.RawMessage, error) {
	u := p.URL() + path
	if len(params) > 0 {
		u += "?" + params.Encode()
	}
	resp, err := p.client.Get(u)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	var r apiResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("%s: %s: not an API answer: %v: %.200q", path, resp.Status, err, body)
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("%s: %s: %s: %s", path, resp.Status, r.ErrorType, r.Error)
	}
	return r.Data, nil
}

// QueryE evaluates an instant query now and returns how many results it
// has (series of a vector or matrix; 1 for a scalar or string) and the raw
// JSON of its data, or the API's error.
func (p *PrometheusServer) QueryE(expr string) (resultCount int, raw string, err error) {
	data, err := p.get("/api/v1/query", url.Values{"query": {expr}})
	if err != nil {
		return 0, "", err
	}
	var d struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		return 0, string(data), fmt.Errorf("query data: %v", err)
	}
	switch d.ResultType {
	case "vector", "matrix":
		var rs []json.RawMessage
		if err := json.Unmarshal(d.Result, &rs); err != nil {
			return 0, string(data), fmt.Errorf("query result: %v", err)
		}
		return len(rs), string(data), nil
	default: // scalar, string
		return 1, string(data), nil
	}
}

// Query evaluates an instant query now through /api/v1/query and returns
// how many results it has (series of a vector or matrix; 1 for a scalar or
// string) and the raw JSON of its data. An API error (a bad expression, for
// one) fails the test.
func (p *PrometheusServer) Query(t testing.TB, expr string) (resultCount int, raw string) {
	t.Helper()
	n, raw, err := p.QueryE(expr)
	if err != nil {
		t.Fatalf("prometheus query %q: %v", expr, err)
	}
	return n, raw
}

// Target is one scrape target as /api/v1/targets reports it.
type Target struct {
	ScrapeURL string `json:"scrapeUrl"`
	Health    string `json:"health"` // up, down, unknown
	LastError string `json:"lastError"`
}

// Targets returns the active scrape targets.
func (p *PrometheusServer) Targets(t testing.TB) []Target {
	t.Helper()
	ts, err := p.targetsE()
	if err != nil {
		t.Fatalf("prometheus targets: %v", err)
	}
	return ts
}

func (p *PrometheusServer) targetsE() ([]Target, error) {
	data, err := p.get("/api/v1/targets", url.Values{"state": {"active"}})
	if err != nil {
		return nil, err
	}
	var d struct {
		ActiveTargets []Target `json:"activeTargets"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, fmt.Errorf("targets data: %v", err)
	}
	return d.ActiveTargets, nil
}

// WaitForTargetsUp waits until every configured target has been scraped
// successfully, and fails the test with each target's last error when
// that does not happen within timeout.
func (p *PrometheusServer) WaitForTargetsUp(t testing.TB, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ts, err := p.targetsE()
		up := 0
		for _, tg := range ts {
			if tg.Health == "up" {
				up++
			}
		}
		if err == nil && len(ts) == p.targets && up == p.targets {
			return
		}
		if time.Now().After(deadline) {
			var b strings.Builder
			if err != nil {
				fmt.Fprintf(&b, "\n  %v", err)
			}
			for _, tg := range ts {
				fmt.Fprintf(&b, "\n  %s: %s %s", tg.ScrapeURL, tg.Health, tg.LastError)
			}
			t.Fatalf("prometheus: %d of %d targets up after %v (%d active):%s", up, p.targets, timeout, len(ts), b.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// WaitForQuery polls an instant query until it returns at least one
// result, and returns that count and data. It fails the test on an API
// error, or when nothing was returned within timeout.
func (p *PrometheusServer) WaitForQuery(t testing.TB, expr string, timeout time.Duration) (resultCount int, raw string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		n, raw := p.Query(t, expr)
		if n > 0 {
			return n, raw
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus query %q: no result after %v: %s", expr, timeout, raw)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Rule is one loaded rule as /api/v1/rules reports it.
type Rule struct {
	Group     string
	Name      string `json:"name"`
	Query     string `json:"query"`
	Type      string `json:"type"` // recording, alerting
	Health    string `json:"health"`
	LastError string `json:"lastError"`
}

// Rules returns every loaded recording and alerting rule with its health.
func (p *PrometheusServer) Rules(t testing.TB) []Rule {
	t.Helper()
	data, err := p.get("/api/v1/rules", nil)
	if err != nil {
		t.Fatalf("prometheus rules: %v", err)
	}
	var d struct {
		Groups []struct {
			Name  string `json:"name"`
			Rules []Rule `json:"rules"`
		} `json:"groups"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("prometheus rules data: %v", err)
	}
	var rules []Rule
	for _, g := range d.Groups {
		for _, r := range g.Rules {
			r.Group = g.Name
			rules = append(rules, r)
		}
	}
	return rules
}
