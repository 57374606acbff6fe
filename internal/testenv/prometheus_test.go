package testenv

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// exporter serves a fixed /metrics page on a free loopback port.
func exporter(t *testing.T, page string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprint(w, page)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// fatalRecorder is a testing.TB whose Fatal ends only the goroutine that
// called it, so that a helper's failure can itself be tested.
type fatalRecorder struct {
	testing.TB
	mu     sync.Mutex
	failed bool
	msg    string
}

func (f *fatalRecorder) Helper() {}

func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.failed, f.msg = true, fmt.Sprintf(format, args...)
	f.mu.Unlock()
	runtime.Goexit()
}

func (f *fatalRecorder) Fatal(args ...any) { f.Fatalf("%s", fmt.Sprint(args...)) }

// fails runs fn with a fatalRecorder and returns the failure message, or
// fails t when fn did not fail.
func fails(t *testing.T, what string, fn func(tb testing.TB)) string {
	t.Helper()
	rec := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(rec)
	}()
	<-done
	if !rec.failed {
		t.Fatalf("%s did not fail the test", what)
	}
	return rec.msg
}

func TestPrometheusScrapesAndQueries(t *testing.T) {
	t.Parallel()
	target := exporter(t, "# TYPE testenv_answer gauge\ntestenv_answer{kind=\"a\"} 42\ntestenv_answer{kind=\"b\"} 7\n")
	p := Prometheus(t, []string{target})
	if _, port, err := net.SplitHostPort(p.Addr()); err != nil || port == "" || !strings.HasPrefix(p.Addr(), "127.0.0.1:") {
		t.Fatalf("Addr() = %q", p.Addr())
	}
	p.WaitForTargetsUp(t, 20*time.Second)
	ts := p.Targets(t)
	if len(ts) != 1 || ts[0].ScrapeURL != "http://"+target+"/metrics" {
		t.Fatalf("targets = %+v, want one, http://%s/metrics", ts, target)
	}

	n, raw := p.WaitForQuery(t, `testenv_answer{job="repcache"}`, 10*time.Second)
	if n != 2 || !strings.Contains(raw, `"42"`) || !strings.Contains(raw, `"instance":"`+target+`"`) {
		t.Fatalf("testenv_answer: %d results: %s", n, raw)
	}
	if n, raw := p.Query(t, `up{job="repcache"} == 1`); n != 1 {
		t.Fatalf("up: %d results: %s", n, raw)
	}
	if n, _ := p.Query(t, `testenv_answer{kind="none"}`); n != 0 {
		t.Fatalf("a selector matching nothing returned %d results", n)
	}
	if n, raw := p.Query(t, `scalar(sum(testenv_answer))`); n != 1 || !strings.Contains(raw, `"49"`) {
		t.Fatalf("scalar: %d results: %s", n, raw)
	}

	msg := fails(t, "Query of an invalid expression", func(tb testing.TB) { p.Query(tb, `sum(rate(testenv_answer[1m])`) })
	if !strings.Contains(msg, "bad_data") {
		t.Fatalf("invalid expression: failure %q does not carry the API error", msg)
	}
	msg = fails(t, "WaitForQuery of an empty result", func(tb testing.TB) { p.WaitForQuery(tb, `testenv_answer{kind="none"}`, 300*time.Millisecond) })
	if !strings.Contains(msg, "no result") {
		t.Fatalf("empty WaitForQuery: failure %q", msg)
	}
}

func TestPrometheusTargetDown(t *testing.T) {
	t.Parallel()
	up := exporter(t, "testenv_up 1\n")
	down := net.JoinHostPort("127.0.0.1", fmt.Sprint(FreePort(t))) // nothing listens
	p := Prometheus(t, []string{up, down})
	msg := fails(t, "WaitForTargetsUp with a dead target", func(tb testing.TB) { p.WaitForTargetsUp(tb, 7*time.Second) })
	if !strings.Contains(msg, "1 of 2 targets up") || !strings.Contains(msg, down) {
		t.Fatalf("failure %q does not name the dead target %s", msg, down)
	}
}

func TestPrometheusLoadsRules(t *testing.T) {
	t.Parallel()
	target := exporter(t, "# TYPE testenv_requests_total counter\ntestenv_requests_total 10\n")
	rules := filepath.Join(t.TempDir(), "rules.yml")
	os.WriteFile(rules, []byte(`groups:
  - name: testenv
    rules:
      - record: testenv:up:sum
        expr: sum by (job) (up)
      - alert: TestenvAlwaysFiring
        expr: vector(1)
`), 0o644)
	p := StartPrometheus(t, PrometheusOptions{ScrapeTargets: []string{target}, RuleFiles: []string{rules}, Job: "other"})
	p.WaitForTargetsUp(t, 20*time.Second)
	if n, raw := p.WaitForQuery(t, `testenv:up:sum{job="other"}`, 10*time.Second); n != 1 {
		t.Fatalf("recorded series: %d: %s", n, raw)
	}
	rs := p.Rules(t)
	if len(rs) != 2 || rs[0].Name != "testenv:up:sum" || rs[0].Type != "recording" || rs[1].Type != "alerting" || rs[0].Group != "testenv" {
		t.Fatalf("rules = %+v", rs)
	}
	for _, r := range rs {
		if r.Health == "err" {
			t.Fatalf("rule %s: %s", r.Name, r.LastError)
		}
	}
}

func TestPrometheusConfig(t *testing.T) {
	got := prometheusConfig(PrometheusOptions{ScrapeTargets: []string{"127.0.0.1:1", "127.0.0.1:2"}, Job: "repcache", ScrapeInterval: time.Second, RuleFiles: []string{"/r.yml"}})
	want := `global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - "/r.yml"
scrape_configs:
  - job_name: "repcache"
    static_configs:
      - targets: ["127.0.0.1:1", "127.0.0.1:2"]
`
	if got != want {
		t.Fatalf("config:\n%s\nwant:\n%s", got, want)
	}
}
