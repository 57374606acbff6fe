// Package postfixcheck reads a Postfix main.cf and the memcache table files
// it uses, and reports the settings that go wrong with memcache and
// repcache: ttl over memcache's 30-day limit, tables sharing a server
// without distinct key_format, cache cleanup intervals above zero, and
// prefixes no repcache map recognises.
package postfixcheck

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/repcache/repcache/internal/store"
)

// Finding is one problem, with where it was found.
type Finding struct {
	File    string
	Line    int
	Message string
}

func (f Finding) String() string {
	if f.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", f.File, f.Line, f.Message)
	}
	return fmt.Sprintf("%s: %s", f.File, f.Message)
}

// Params is a parsed Postfix configuration file: name = value, with the
// line each was set on (the last setting wins, as in Postfix).
type Params struct {
	Values map[string]string
	Lines  map[string]int
}

// Parse reads main.cf syntax: "name = value", continuation lines start
// with white space, "#" starts a comment line.
func Parse(r io.Reader) (Params, error) {
	p := Params{Values: map[string]string{}, Lines: map[string]int{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var cur string
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		switch {
		case trimmed == "" || strings.HasPrefix(trimmed, "#"):
			continue
		case line[0] == ' ' || line[0] == '\t':
			if cur != "" {
				p.Values[cur] += " " + trimmed
			}
			continue
		}
		name, value, ok := strings.Cut(line, "=")
		if !ok {
			return p, fmt.Errorf("line %d: %q is not \"name = value\"", n, line)
		}
		cur = strings.TrimSpace(name)
		p.Values[cur] = strings.TrimSpace(value)
		p.Lines[cur] = n
	}
	return p, sc.Err()
}

// ParseFile parses the file at path.
func ParseFile(path string) (Params, error) {
	f, err := os.Open(path)
	if err != nil {
		return Params{}, err
	}
	defer f.Close()
	p, err := Parse(f)
	if err != nil {
		return p, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}

var memcacheRef = regexp.MustCompile(`memcache:([^\s,]+)`)

// caches maps each cache parameter to its cleanup interval parameter.
var caches = map[string]string{
	"postscreen_cache_map": "postscreen_cache_cleanup_interval",
	"address_verify_map":   "address_verify_cache_cleanup_interval",
}

// Check reports the problems of mainCF and the memcache tables it names
// (plus extra table files); prefixes, when not nil, are the prefixes of the
// repcache maps, for the "matches no map" check.
func Check(mainCF string, extraTables []string, prefixes []string) ([]Finding, error) {
	main, err := ParseFile(mainCF)
	if err != nil {
		return nil, err
	}
	var out []Finding
	tables := map[string]bool{}
	var names []string
	for name := range main.Values {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		for _, m := range memcacheRef.FindAllStringSubmatch(main.Values[name], -1) {
			path := m[1]
			if !filepath.IsAbs(path) {
				path = filepath.Join(filepath.Dir(mainCF), path)
			}
			tables[path] = true
			if interval, ok := caches[name]; ok {
				v, set := main.Values[interval]
				if !set || !isZeroTime(v) {
					shown := v
					if !set {
						shown = "12h (the default)"
					}
					out = append(out, Finding{mainCF, main.Lines[interval], fmt.Sprintf(
						"%s is %s but %s is a memcache table, which Postfix cannot walk to clean: set %s = 0 (repcache expires records itself)",
						interval, shown, name, interval)})
				}
			}
		}
	}
	for _, t := range extraTables {
		tables[t] = true
	}
	type server struct {
		file, format string
	}
	byServer := map[string][]server{}
	var paths []string
	for p := range tables {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	for _, path := range paths {
		t, err := ParseFile(path)
		if err != nil {
			return out, fmt.Errorf("memcache table: %w", err)
		}
		if v, ok := t.Values["ttl"]; ok {
			if n, err := strconv.ParseInt(v, 10, 64); err == nil && n > store.MaxRelativeTTL {
				out = append(out, Finding{path, t.Lines["ttl"], fmt.Sprintf(
					"ttl = %d is over memcache's 30-day limit (%d): memcache reads it as an absolute date in 1970 and every record is stored already expired",
					n, store.MaxRelativeTTL)})
			}
		}
		srv := t.Values["memcache"]
		if srv == "" {
			srv = "inet:localhost:11211"
		}
		format := t.Values["key_format"]
		if format == "" {
			format = "%s"
		}
		byServer[srv] = append(byServer[srv], server{path, format})
		// With key_digest (Postfix 3.11+) keys are hashes: the listener the
		// table points at tells the map, not a prefix.
		if _, digested := t.Values["key_digest"]; prefixes != nil && !digested {
			prefix, _, _ := strings.Cut(format, "%")
			if !slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(prefix, p) && p != "" || p == prefix }) {
				out = append(out, Finding{path, t.Lines["key_format"], fmt.Sprintf(
					"key_format = %s: the prefix %q matches no repcache map (maps: %s); its records get memcached semantics, not Postfix's lifetimes",
					format, prefix, strings.Join(prefixes, ", "))})
			}
		}
	}
	var servers []string
	for s := range byServer {
		servers = append(servers, s)
	}
	slices.Sort(servers)
	for _, s := range servers {
		seen := map[string]string{}
		for _, t := range byServer[s] {
			if other, dup := seen[t.format]; dup {
				out = append(out, Finding{t.file, 0, fmt.Sprintf(
					"shares server %s and key_format %q with %s: the two tables overwrite each other's records; give each a distinct prefix",
					s, t.format, other)})
			}
			seen[t.format] = t.file
		}
	}
	return out, nil
}

// isZeroTime reports whether a Postfix time value is zero ("0", "0s", "0h"...).
func isZeroTime(v string) bool {
	v = strings.TrimRight(strings.TrimSpace(v), "smhdw")
	n, err := strconv.Atoi(v)
	return err == nil && n == 0
}
