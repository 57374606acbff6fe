package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/repcache/repcache/internal/config"
	"github.com/repcache/repcache/internal/importer"
	"github.com/repcache/repcache/internal/inspect"
	"github.com/repcache/repcache/internal/policy"
	"github.com/repcache/repcache/internal/postfixcheck"
	"github.com/repcache/repcache/internal/ttl"
)

// opArgs are the operations commands' own flags.
type opArgs struct {
	addr, kind, mapName string
}

// defaultAddr is the first TCP listener of the configuration.
func defaultAddr(cfg *config.Config) string {
	for _, a := range cfg.Listen {
		if !strings.HasPrefix(a, "unix:") {
			if strings.HasPrefix(a, "0.0.0.0:") || strings.HasPrefix(a, ":") {
				return "127.0.0.1:" + a[strings.LastIndex(a, ":")+1:]
			}
			return a
		}
	}
	return "127.0.0.1:11211"
}

func dialRepcache(addr string) (net.Conn, error) {
	network := "tcp"
	if p, ok := strings.CutPrefix(addr, "unix:"); ok {
		network, addr = "unix", p
	}
	c, err := net.DialTimeout(network, addr, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("cannot reach repcache at %s: %w", addr, err)
	}
	return c, nil
}

// cmdInspect prints a record in words: a key read through a running
// repcache, or a raw value with --kind.
func cmdInspect(cfg *config.Config, pol *policy.Policy, a opArgs, args []string, stdout io.Writer) error {
	if len(args) != 1 {
		return fmt.Errorf("inspect takes one KEY (or, with --kind, one VALUE)")
	}
	now := time.Now()
	if a.kind != "" {
		k, err := ttl.ParseKind(a.kind)
		if err != nil {
			return err
		}
		rule := ttl.Defaults(k)
		if m := pol.Map(a.mapName); m != nil {
			rule = m.Rule
		}
		out, err := inspect.Describe(inspect.Record{Rule: rule, Key: "(value)", Value: []byte(args[0])}, now)
		if err != nil {
			return fmt.Errorf("not a %s record: %w", k, err)
		}
		fmt.Fprint(stdout, out)
		return nil
	}
	key := args[0]
	m := pol.Lookup([]byte(key))
	if a.mapName != "" {
		if m = pol.Map(a.mapName); m == nil {
			return fmt.Errorf("no map named %q in the configuration", a.mapName)
		}
	}
	c, err := dialRepcache(a.addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "mg %s t v\r\n", key)
	r := bufio.NewReader(c)
	l, err := r.ReadString('\n')
	if err != nil {
		return fmt.Errorf("reading from repcache: %w", err)
	}
	l = strings.TrimRight(l, "\r\n")
	if l == "EN" {
		return fmt.Errorf("%s: not in the cache", key)
	}
	var size int
	var remaining int64
	if _, err := fmt.Sscanf(l, "VA %d t%d", &size, &remaining); err != nil {
		return fmt.Errorf("repcache answered %q", l)
	}
	value := make([]byte, size+2)
	if _, err := io.ReadFull(r, value); err != nil {
		return fmt.Errorf("reading the value: %w", err)
	}
	rec := inspect.Record{Key: key, Value: value[:size], Remaining: remaining, Known: true, Rule: ttl.Rule{Kind: ttl.Passthrough}}
	if m != nil {
		rec.Map, rec.Rule = m.Name, m.Rule
	}
	out, err := inspect.Describe(rec, now)
	if err != nil {
		return fmt.Errorf("%s holds a value that is not a valid %s record: %w", key, rec.Rule.Kind, err)
	}
	fmt.Fprint(stdout, out)
	return nil
}

// cmdPostfixCheck reports memcache pitfalls in a Postfix configuration;
// it returns the exit status: 0 clean, 1 findings.
func cmdPostfixCheck(pol *policy.Policy, args []string, stdout io.Writer) (int, error) {
	if len(args) < 1 {
		return 2, fmt.Errorf("postfix-check needs the path of main.cf")
	}
	var prefixes []string
	for _, m := range pol.Maps() {
		prefixes = append(prefixes, m.Prefix)
	}
	findings, err := postfixcheck.Check(args[0], args[1:], prefixes)
	for _, f := range findings {
		fmt.Fprintln(stdout, f)
	}
	if err != nil {
		return 2, err
	}
	if len(findings) > 0 {
		fmt.Fprintf(stdout, "%d problem(s) found\n", len(findings))
		return 1, nil
	}
	fmt.Fprintln(stdout, "no problems found")
	return 0, nil
}

// cmdImport loads `postmap -s` output into a running repcache. It returns
// the exit status: 0 when every line was imported or skipped as expired.
func cmdImport(pol *policy.Policy, a opArgs, args []string, stderr io.Writer) (int, error) {
	if a.mapName == "" {
		return 2, fmt.Errorf("import needs --map NAME (the map the records belong to)")
	}
	m := pol.Map(a.mapName)
	if m == nil {
		var names []string
		for _, mp := range pol.Maps() {
			names = append(names, mp.Name)
		}
		return 2, fmt.Errorf("no map named %q in the configuration (maps: %s)", a.mapName, strings.Join(names, ", "))
	}
	if m.Rule.Kind != ttl.Postscreen && m.Rule.Kind != ttl.Verify {
		return 2, fmt.Errorf("map %s is a %s map: import reads postscreen and verify caches", m.Name, m.Rule.Kind)
	}
	in := io.Reader(os.Stdin)
	name := "standard input"
	if len(args) > 1 {
		return 2, fmt.Errorf("import reads one FILE (or - for standard input)")
	}
	if len(args) == 1 && args[0] != "-" {
		f, err := os.Open(args[0])
		if err != nil {
			return 2, fmt.Errorf("cannot read %s: %w", args[0], err)
		}
		defer f.Close()
		in, name = f, args[0]
	}
	c, err := dialRepcache(a.addr)
	if err != nil {
		return 2, err
	}
	defer c.Close()
	tty := false
	if f, ok := stderr.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	sum, err := importer.Run(in, c, importer.Options{
		Map: m, Now: time.Now().Unix(),
		Problem: func(line int, msg string) { fmt.Fprintf(stderr, "%s:%d: %s\n", name, line, msg) },
		Progress: func(s importer.Summary) {
			if tty {
				fmt.Fprintf(stderr, "\r%d lines read, %d imported...", s.Lines, s.Imported)
			}
		},
	})
	if tty {
		fmt.Fprint(stderr, "\r")
	}
	fmt.Fprintf(stderr, "import into map %s: %s\n", m.Name, sum)
	if err != nil {
		return 2, err
	}
	if sum.Malformed > 0 || sum.Refused > 0 {
		return 1, nil
	}
	return 0, nil
}
