package dashboards

import (
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The dashboard lint and the integration test read PromQL with the small
// scanner below rather than Prometheus's parser, which is not a dependency
// of this module. It only needs to tell string literals, label matcher
// braces and range brackets apart.

// maskStrings returns expr with the inside of every string literal
// replaced by 'x' (same length, so positions line up), so that braces,
// brackets and operators inside label values are not mistaken for syntax.
func maskStrings(expr string) string {
	b := []byte(expr)
	var quote byte
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case quote == 0 && (c == '"' || c == '\'' || c == '`'):
			quote = c
		case quote != 0 && c == quote:
			quote = 0
		case quote != 0 && c == '\\' && quote != '`' && i+1 < len(b):
			b[i], b[i+1] = 'x', 'x'
			i++
		case quote != 0:
			b[i] = 'x'
		}
	}
	return string(b)
}

// selector is one vector selector: a metric name (possibly empty) and its
// label matchers as written, e.g. `job=~"$job"`.
type selector struct {
	metric   string
	matchers []string
}

func (s selector) has(matcher string) bool { return slices.Contains(s.matchers, matcher) }

var (
	identBefore = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*\s*$`)
	rangeRE     = regexp.MustCompile(`\[([^\]]*)\]`)
	identRE     = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
)

// selectors returns every brace selector of expr with the metric name
// written before it.
func selectors(expr string) []selector {
	masked := maskStrings(expr)
	var out []selector
	for i := 0; i < len(masked); i++ {
		if masked[i] != '{' {
			continue
		}
		end := strings.IndexByte(masked[i:], '}')
		if end < 0 {
			break
		}
		s := selector{metric: strings.TrimSpace(identBefore.FindString(masked[:i]))}
		inner, innerMasked := expr[i+1:i+end], masked[i+1:i+end]
		start := 0
		for j := 0; j <= len(innerMasked); j++ {
			if j == len(innerMasked) || innerMasked[j] == ',' {
				if m := strings.TrimSpace(inner[start:j]); m != "" {
					s.matchers = append(s.matchers, normalizeMatcher(m))
				}
				start = j + 1
			}
		}
		out = append(out, s)
		i += end
	}
	return out
}

// normalizeMatcher removes the blanks around a matcher's operator.
func normalizeMatcher(m string) string {
	for _, op := range []string{"=~", "!~", "!=", "="} {
		if k := strings.Index(maskStrings(m), op); k >= 0 {
			return strings.TrimSpace(m[:k]) + op + strings.TrimSpace(m[k+len(op):])
		}
	}
	return m
}

// rangeWindows returns the contents of every [...] of expr: range
// selector windows and subquery ranges.
func rangeWindows(expr string) []string {
	var out []string
	for _, m := range rangeRE.FindAllStringSubmatchIndex(maskStrings(expr), -1) {
		out = append(out, expr[m[2]:m[3]])
	}
	return out
}

// bareMetrics returns the names of metrics written without braces (outside
// every brace pair), among those that look like metric names: the
// dashboard always writes its selectors with braces so that it can filter
// them.
func bareMetrics(expr string) []string {
	masked := maskStrings(expr)
	depth := make([]int, len(masked)) // brace depth at each byte
	d := 0
	for i := range masked {
		if masked[i] == '{' {
			d++
		}
		depth[i] = d
		if masked[i] == '}' {
			d--
		}
	}
	var out []string
	for _, loc := range identRE.FindAllStringIndex(masked, -1) {
		start, end := loc[0], loc[1]
		name := masked[start:end]
		// an identifier glued to a digit, '.' or '$' is part of a number,
		// a duration or a template variable
		glued := start > 0 && strings.ContainsRune("0123456789.$", rune(masked[start-1]))
		rest := strings.TrimLeft(masked[end:], " \t\n")
		if depth[start] == 0 && !glued && isMetricName(name) && !strings.HasPrefix(rest, "{") {
			out = append(out, name)
		}
	}
	return out
}

func isMetricName(name string) bool {
	return name == "up" || strings.HasPrefix(name, "repcache_") || strings.HasPrefix(name, "process_") || strings.HasPrefix(name, "go_")
}

var offsetRE = regexp.MustCompile(`\s+offset\s+-?[0-9a-z]+`)

// withoutFilters turns an alerting expression into one that returns every
// series it looks at: each comparison gets the bool modifier (so it
// yields 0 or 1 instead of dropping series), and offsets are removed
// (a test run has no day-old data). `up == 0 or absent(up)` becomes
// `up == bool 0 or absent(up)`, which returns up whether or not the alert
// would fire.
func withoutFilters(expr string) string {
	expr = offsetRE.ReplaceAllString(expr, "")
	masked := maskStrings(expr)
	var b strings.Builder
	depth := 0
	for i := 0; i < len(masked); i++ {
		c := masked[i]
		switch c {
		case '{':
			depth++
		case '}':
			depth--
		}
		b.WriteByte(expr[i])
		if depth > 0 {
			continue
		}
		op := 0
		switch {
		case (c == '=' || c == '!' || c == '>' || c == '<') && i+1 < len(masked) && masked[i+1] == '=':
			op = 2
		case c == '>' || c == '<':
			op = 1
		}
		if op == 0 {
			continue
		}
		if op == 2 {
			i++
			b.WriteByte(expr[i])
		}
		if rest := strings.TrimLeft(masked[i+1:], " \t\n"); !strings.HasPrefix(rest, "bool") {
			b.WriteString(" bool")
		}
	}
	return b.String()
}

func TestPromQLScanner(t *testing.T) {
	expr := `sum by (map) (rate(repcache_lookups_total{job=~"$job", instance =~ "$instance", result="a}[b]"}[$__rate_interval]))
/ ignoring(x) up{job="repcache"} > 0.1 and process_cpu_seconds_total`
	sels := selectors(expr)
	if len(sels) != 2 || sels[0].metric != "repcache_lookups_total" || sels[1].metric != "up" {
		t.Fatalf("selectors = %+v", sels)
	}
	if !sels[0].has(`instance=~"$instance"`) || !sels[0].has(`result="a}[b]"`) || len(sels[0].matchers) != 3 {
		t.Fatalf("matchers = %q", sels[0].matchers)
	}
	if got := rangeWindows(expr); !slices.Equal(got, []string{"$__rate_interval"}) {
		t.Fatalf("rangeWindows = %q", got)
	}
	if got := bareMetrics(expr); !slices.Equal(got, []string{"process_cpu_seconds_total"}) {
		t.Fatalf("bareMetrics = %q", got)
	}
	for in, want := range map[string]string{
		`up{job="repcache"} == 0 or absent(up{job="repcache"})`:   `up{job="repcache"} == bool 0 or absent(up{job="repcache"})`,
		`a < 0.5 * (a offset 1d) and on (x) b > 0.1`:              `a < bool 0.5 * (a) and on (x) b > bool 0.1`,
		`a{c!="x", d=~"y>z"} >= 1 != bool 2 <= 3`:                 `a{c!="x", d=~"y>z"} >= bool 1 != bool 2 <= bool 3`,
		`increase(x[10m]) > 0`:                                    `increase(x[10m]) > bool 0`,
		`(b offset 1d) > 0.1`:                                     `(b) > bool 0.1`,
		`sum(rate(repcache_x{a="b"}[5m])) / sum(rate(y[5m])) < 1`: `sum(rate(repcache_x{a="b"}[5m])) / sum(rate(y[5m])) < bool 1`,
	} {
		if got := withoutFilters(in); got != want {
			t.Errorf("withoutFilters(%q)\n = %q\nwant %q", in, got, want)
		}
	}
}
