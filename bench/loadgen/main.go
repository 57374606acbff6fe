// Command loadgen drives the repcache benchmarks (bench/run.sh) against any
// server that speaks the memcached text protocol. It uses the standard
// library only.
//
// Records are postscreen-style: record i has the key postscreen:10.x.y.z
// (x.y.z is i in base 256, so up to 16,777,216 distinct keys) and the 18-byte
// value "1795673021;1;1;1;1".
//
// Subcommands:
//
//	load      pipelined "set ... noreply" writes over a few connections,
//	          then a version round-trip and a get per connection as a sync
//	latency   random gets of present keys, one in flight per connection,
//	          each timed; prints p50/p90/p99/p99.9/max
//	setlatency  sets of distinct keys PREFIX10.x.y.z (18-byte value), one in
//	          flight per connection, each timed until STORED; prints
//	          p50/p90/p99/p99.9/max
//	keys      print the IPs (10.x.y.z) of records, one per line
//	gcstats   summarise GODEBUG=gctrace=1 output: STW pause per cycle
//	wait      wait until a server answers "version"
//	freeport  print a free TCP port on 127.0.0.1
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Value is the postscreen record value stored for every key (18 bytes).
const Value = "1795673021;1;1;1;1"

const maxRecords = 1 << 24

func usage() {
	fmt.Fprint(os.Stderr, `usage: loadgen <command> [flags]

commands:
  load      -addr HOST:PORT -n N [-start 0] [-stride 1] [-conns 4]
            set N postscreen records (pipelined, noreply), then sync
  latency   -addr HOST:PORT -n N [-start 0] [-stride 1] [-gets 200000] [-conns 4]
            time random gets of the N loaded records, one in flight per conn
  setlatency -addr HOST:PORT -prefix P -n N [-start 0] [-stride 1] [-conns 4]
            time N sets of distinct keys P10.x.y.z, one in flight per conn
  keys      -n N [-start 0] [-stride 1]
            print the records' IPs, one per line (postmap -q - input)
  gcstats   [-file F]   parse GODEBUG=gctrace=1 lines (stdin if no -file)
  wait      -addr HOST:PORT [-timeout 10s]
  freeport  print a free TCP port on 127.0.0.1

record i is key postscreen:10.x.y.z (x.y.z = i in base 256), value
"1795673021;1;1;1;1"; the records used are start, start+stride, ...
Run "loadgen <command> -h" for a command's flags.
`)
}

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	cmd, args := os.Args[1], os.Args[2:]
	var err error
	switch cmd {
	case "load":
		err = cmdLoad(args)
	case "latency":
		err = cmdLatency(args)
	case "setlatency":
		err = cmdSetLatency(args)
	case "keys":
		err = cmdKeys(args)
	case "gcstats":
		err = cmdGCStats(args)
	case "wait":
		err = cmdWait(args)
	case "freeport":
		err = cmdFreePort()
	case "-h", "-help", "--help", "help":
		usage()
		return
	default:
		fmt.Fprintf(os.Stderr, "loadgen: unknown command %q\n\n", cmd)
		usage()
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "loadgen %s: %v\n", cmd, err)
		os.Exit(1)
	}
}

// recordSet selects the records start, start+stride, ... (n of them).
type recordSet struct {
	n, start, stride int
}

func (r *recordSet) register(fs *flag.FlagSet) {
	fs.IntVar(&r.n, "n", 1000000, "number of records")
	fs.IntVar(&r.start, "start", 0, "index of the first record")
	fs.IntVar(&r.stride, "stride", 1, "distance between record indexes")
}

func (r *recordSet) check() error {
	if r.n < 1 || r.start < 0 || r.stride < 1 {
		return errors.New("need -n >= 1, -start >= 0, -stride >= 1")
	}
	if last := r.start + (r.n-1)*r.stride; last >= maxRecords {
		return fmt.Errorf("record index %d exceeds the %d distinct 10.x.y.z keys", last, maxRecords)
	}
	return nil
}

// index returns the record index of the k-th selected record.
func (r *recordSet) index(k int) int { return r.start + k*r.stride }

// appendIP appends the IP 10.x.y.z of record i.
func appendIP(b []byte, i int) []byte {
	b = append(b, "10."...)
	b = strconv.AppendInt(b, int64(i>>16&255), 10)
	b = append(b, '.')
	b = strconv.AppendInt(b, int64(i>>8&255), 10)
	b = append(b, '.')
	return strconv.AppendInt(b, int64(i&255), 10)
}

// appendKey appends the key postscreen:10.x.y.z of record i.
func appendKey(b []byte, i int) []byte {
	return appendIP(append(b, "postscreen:"...), i)
}

func parse(fs *flag.FlagSet, args []string) error {
	fs.SetOutput(os.Stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	return nil
}

func dial(addr string) (net.Conn, error) {
	return net.DialTimeout("tcp", addr, 5*time.Second)
}

func cmdKeys(args []string) error {
	fs := flag.NewFlagSet("keys", flag.ContinueOnError)
	var rs recordSet
	rs.register(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := rs.check(); err != nil {
		return err
	}
	w := bufio.NewWriterSize(os.Stdout, 64<<10)
	var b []byte
	for k := 0; k < rs.n; k++ {
		b = append(appendIP(b[:0], rs.index(k)), '\n')
		w.Write(b)
	}
	return w.Flush()
}

func cmdLoad(args []string) error {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:11211", "server address")
	conns := fs.Int("conns", 4, "connections (records are dealt round-robin)")
	quiet := fs.Bool("q", false, "no progress on stderr")
	var rs recordSet
	rs.register(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := rs.check(); err != nil {
		return err
	}
	if *conns < 1 {
		return errors.New("need -conns >= 1")
	}
	var done atomicCounter
	stop := make(chan struct{})
	if !*quiet {
		go progress("load", rs.n, &done, stop)
	}
	begin := time.Now()
	errs := make([]error, *conns)
	var wg sync.WaitGroup
	for c := 0; c < *conns; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[c] = loadConn(*addr, &rs, c, *conns, &done)
		}()
	}
	wg.Wait()
	close(stop)
	elapsed := time.Since(begin)
	if err := errors.Join(errs...); err != nil {
		return err
	}
	fmt.Printf("load n=%d conns=%d seconds=%.3f rate=%.0f\n",
		rs.n, *conns, elapsed.Seconds(), float64(rs.n)/elapsed.Seconds())
	return nil
}

// loadConn writes the records c, c+conns, ... of rs on one connection, then
// syncs: a version round-trip (the server answers in order, so every set
// before it has been processed) and a get of the connection's last key.
func loadConn(addr string, rs *recordSet, c, conns int, done *atomicCounter) error {
	conn, err := dial(addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	// noreply sets produce no output, but a server may still send errors
	// (e.g. SERVER_ERROR out of memory). Read concurrently so they can
	// never fill the socket buffers and stall the writer.
	type result struct {
		errLines []string
		err      error
	}
	resc := make(chan result, 1)
	r := bufio.NewReaderSize(conn, 64<<10)
	go func() {
		var res result
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				res.err = fmt.Errorf("reading replies: %w", err)
				break
			}
			if strings.HasPrefix(line, "VERSION ") {
				break
			}
			if len(res.errLines) < 5 {
				res.errLines = append(res.errLines, strings.TrimSpace(line))
			}
		}
		resc <- res
	}()
	w := bufio.NewWriterSize(conn, 64<<10)
	var b []byte
	last := -1
	sent := 0
	for k := c; k < rs.n; k += conns {
		last = rs.index(k)
		b = append(b[:0], "set "...)
		b = appendKey(b, last)
		b = append(b, " 0 0 "...)
		b = strconv.AppendInt(b, int64(len(Value)), 10)
		b = append(b, " noreply\r\n"...)
		b = append(b, Value...)
		b = append(b, "\r\n"...)
		if _, err := w.Write(b); err != nil {
			return err
		}
		if sent++; sent == 4096 {
			done.add(sent)
			sent = 0
		}
	}
	done.add(sent)
	if _, err := w.WriteString("version\r\n"); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	res := <-resc
	if res.err != nil {
		return res.err
	}
	if len(res.errLines) > 0 {
		return fmt.Errorf("server replied to noreply sets: %q", res.errLines)
	}
	if last >= 0 {
		key := appendKey(nil, last)
		val, found, err := get(conn, r, key)
		if err != nil {
			return err
		}
		if !found || string(val) != Value {
			return fmt.Errorf("sync get %s: found=%v value=%q", key, found, val)
		}
	}
	return nil
}

// get sends "get key" and reads the reply. It returns the value and whether
// the key was found.
func get(w io.Writer, r *bufio.Reader, key []byte) ([]byte, bool, error) {
	req := make([]byte, 0, len(key)+6)
	req = append(append(append(req, "get "...), key...), "\r\n"...)
	if _, err := w.Write(req); err != nil {
		return nil, false, err
	}
	return readGet(r, nil)
}

// readGet reads one get reply: END, or VALUE <key> <flags> <bytes> [<cas>],
// data, END. The value is appended to buf[:0]; it does not allocate when buf
// is large enough, so the latency loop never makes garbage (no client GC
// pauses in the figures).
func readGet(r *bufio.Reader, buf []byte) ([]byte, bool, error) {
	line, err := r.ReadSlice('\n')
	if err != nil {
		return nil, false, err
	}
	if string(line) == "END\r\n" {
		return buf[:0], false, nil
	}
	// VALUE <key> <flags> <bytes>: the length is the fourth field.
	rest, ok := bytes.CutPrefix(line, []byte("VALUE "))
	n := -1
	for field := 0; ok && field < 3; field++ {
		rest = bytes.TrimLeft(rest, " ")
		end := bytes.IndexAny(rest, " \r\n")
		if end <= 0 {
			ok = false
			break
		}
		if field == 2 {
			v, err := strconv.Atoi(string(rest[:end])) // no allocation: the conversion is optimised away
			if err != nil || v < 0 {
				ok = false
				break
			}
			n = v
		}
		rest = rest[end:]
	}
	if !ok || n < 0 {
		return nil, false, fmt.Errorf("unexpected get reply %q", line)
	}
	buf = slices.Grow(buf[:0], n+2)[:n+2]
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, false, err
	}
	if string(buf[n:]) != "\r\n" {
		return nil, false, fmt.Errorf("value of %d bytes not followed by CRLF", n)
	}
	line, err = r.ReadSlice('\n')
	if err != nil {
		return nil, false, err
	}
	if string(line) != "END\r\n" {
		return nil, false, fmt.Errorf("expected END, got %q", line)
	}
	return buf[:n], true, nil
}

func cmdLatency(args []string) error {
	fs := flag.NewFlagSet("latency", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:11211", "server address")
	conns := fs.Int("conns", 4, "connections, one request in flight on each")
	gets := fs.Int("gets", 200000, "total gets")
	seed := fs.Uint64("seed", 1, "random seed")
	quiet := fs.Bool("q", false, "no progress on stderr")
	var rs recordSet
	rs.register(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := rs.check(); err != nil {
		return err
	}
	if *conns < 1 || *gets < *conns {
		return errors.New("need -conns >= 1 and -gets >= -conns")
	}
	var done atomicCounter
	stop := make(chan struct{})
	if !*quiet {
		go progress("latency", *gets, &done, stop)
	}
	lat := make([][]time.Duration, *conns)
	misses := make([]int, *conns)
	errs := make([]error, *conns)
	begin := time.Now()
	var wg sync.WaitGroup
	for c := 0; c < *conns; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := *gets / *conns
			if c < *gets%*conns {
				n++
			}
			lat[c], misses[c], errs[c] = latencyConn(*addr, &rs, n, rand.New(rand.NewPCG(*seed, uint64(c))), &done)
		}()
	}
	wg.Wait()
	close(stop)
	elapsed := time.Since(begin)
	if err := errors.Join(errs...); err != nil {
		return err
	}
	all := slices.Concat(lat...)
	slices.Sort(all)
	miss := 0
	for _, m := range misses {
		miss += m
	}
	us := func(q float64) string {
		return strconv.FormatFloat(float64(quantile(all, q))/1e3, 'f', 1, 64)
	}
	fmt.Printf("latency gets=%d conns=%d misses=%d seconds=%.3f p50_us=%s p90_us=%s p99_us=%s p999_us=%s max_us=%s\n",
		len(all), *conns, miss, elapsed.Seconds(), us(0.50), us(0.90), us(0.99), us(0.999), us(1))
	if miss > 0 {
		return fmt.Errorf("%d of %d gets of loaded keys missed", miss, len(all))
	}
	return nil
}

func latencyConn(addr string, rs *recordSet, n int, rng *rand.Rand, done *atomicCounter) ([]time.Duration, int, error) {
	conn, err := dial(addr)
	if err != nil {
		return nil, 0, err
	}
	defer conn.Close()
	r := bufio.NewReaderSize(conn, 16<<10)
	lat := make([]time.Duration, 0, n)
	req := make([]byte, 0, 64)
	buf := make([]byte, 0, 64)
	misses := 0
	for k := 0; k < n; k++ {
		req = append(req[:0], "get "...)
		req = appendKey(req, rs.index(rng.IntN(rs.n)))
		req = append(req, "\r\n"...)
		t0 := time.Now()
		if _, err := conn.Write(req); err != nil {
			return nil, 0, err
		}
		val, found, err := readGet(r, buf)
		lat = append(lat, time.Since(t0))
		if err != nil {
			return nil, 0, err
		}
		buf = val
		if !found || string(val) != Value {
			misses++
		}
		if k%1024 == 1023 {
			done.add(1024)
		}
	}
	return lat, misses, nil
}

func cmdSetLatency(args []string) error {
	fs := flag.NewFlagSet("setlatency", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:11211", "server address")
	conns := fs.Int("conns", 4, "connections, one request in flight on each")
	prefix := fs.String("prefix", "plain:", "key prefix (keys are PREFIX10.x.y.z)")
	exptime := fs.Int("exptime", 0, "exptime of every set")
	quiet := fs.Bool("q", false, "no progress on stderr")
	var rs recordSet
	rs.register(fs)
	fs.Lookup("n").DefValue, rs.n = "20000", 20000 // fewer than for load: every set is a round trip
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := rs.check(); err != nil {
		return err
	}
	if *conns < 1 || rs.n < *conns {
		return errors.New("need -conns >= 1 and -n >= -conns")
	}
	var done atomicCounter
	stop := make(chan struct{})
	if !*quiet {
		go progress("setlatency", rs.n, &done, stop)
	}
	lat := make([][]time.Duration, *conns)
	errs := make([]error, *conns)
	begin := time.Now()
	var wg sync.WaitGroup
	for c := 0; c < *conns; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat[c], errs[c] = setLatencyConn(*addr, []byte(*prefix), *exptime, &rs, c, *conns, &done)
		}()
	}
	wg.Wait()
	close(stop)
	elapsed := time.Since(begin)
	if err := errors.Join(errs...); err != nil {
		return err
	}
	all := slices.Concat(lat...)
	slices.Sort(all)
	us := func(q float64) string {
		return strconv.FormatFloat(float64(quantile(all, q))/1e3, 'f', 1, 64)
	}
	fmt.Printf("setlatency sets=%d conns=%d seconds=%.3f rate=%.0f p50_us=%s p90_us=%s p99_us=%s p999_us=%s max_us=%s\n",
		len(all), *conns, elapsed.Seconds(), float64(len(all))/elapsed.Seconds(), us(0.50), us(0.90), us(0.99), us(0.999), us(1))
	return nil
}

// setLatencyConn sets the records c, c+conns, ... of rs (key prefix +
// 10.x.y.z, value Value) on one connection, one at a time, timing each from
// the write of the request to the end of the STORED reply. Any other reply
// fails the run.
func setLatencyConn(addr string, prefix []byte, exptime int, rs *recordSet, c, conns int, done *atomicCounter) ([]time.Duration, error) {
	conn, err := dial(addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	r := bufio.NewReaderSize(conn, 4<<10)
	lat := make([]time.Duration, 0, (rs.n-c+conns-1)/conns)
	req := make([]byte, 0, 128)
	sent := 0
	for k := c; k < rs.n; k += conns {
		req = appendSet(req[:0], prefix, rs.index(k), exptime)
		t0 := time.Now()
		if _, err := conn.Write(req); err != nil {
			return nil, err
		}
		err := readStored(r)
		lat = append(lat, time.Since(t0))
		if err != nil {
			return nil, fmt.Errorf("set %s%s: %w", prefix, appendIP(nil, rs.index(k)), err)
		}
		if sent++; sent == 1024 {
			done.add(sent)
			sent = 0
		}
	}
	done.add(sent)
	return lat, nil
}

// appendSet appends "set PREFIX10.x.y.z 0 EXPTIME 18\r\nVALUE\r\n" for record i.
func appendSet(b, prefix []byte, i, exptime int) []byte {
	b = append(b, "set "...)
	b = appendIP(append(b, prefix...), i)
	b = append(b, " 0 "...)
	b = strconv.AppendInt(b, int64(exptime), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(len(Value)), 10)
	b = append(b, "\r\n"...)
	b = append(b, Value...)
	return append(b, "\r\n"...)
}

// readStored reads one reply line and fails unless it is STORED.
func readStored(r *bufio.Reader) error {
	line, err := r.ReadSlice('\n')
	if err != nil {
		return err
	}
	if string(line) != "STORED\r\n" {
		return fmt.Errorf("reply %q, want STORED", bytes.TrimRight(line, "\r\n"))
	}
	return nil
}

// quantile returns the nearest-rank q-quantile of sorted (q=1 is the max).
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// gcLine matches the start of a GODEBUG=gctrace=1 line:
// gc 12 @3.456s 2%: 0.021+1.2+0.015 ms clock, ...
// The first and third clock figures are the two stop-the-world phases
// (sweep termination and mark termination).
var gcLine = regexp.MustCompile(`^gc (\d+) @([0-9.]+)s [0-9]+%: ([0-9.]+)\+([0-9.]+)\+([0-9.]+) ms clock`)

func cmdGCStats(args []string) error {
	fs := flag.NewFlagSet("gcstats", flag.ContinueOnError)
	file := fs.String("file", "", "gctrace log (default stdin)")
	if err := parse(fs, args); err != nil {
		return err
	}
	in := io.Reader(os.Stdin)
	if *file != "" {
		f, err := os.Open(*file)
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	var pauses []float64 // ms
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		m := gcLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		a, err1 := strconv.ParseFloat(m[3], 64)
		c, err2 := strconv.ParseFloat(m[5], 64)
		if err := errors.Join(err1, err2); err != nil {
			return fmt.Errorf("parsing %q: %w", sc.Text(), err)
		}
		pauses = append(pauses, a+c)
	}
	if err := sc.Err(); err != nil {
		return err
	}
	slices.Sort(pauses)
	q := func(p float64) string {
		if len(pauses) == 0 {
			return "NA"
		}
		i := int(math.Ceil(p*float64(len(pauses)))) - 1
		return strconv.FormatFloat(pauses[max(0, min(i, len(pauses)-1))], 'f', 3, 64)
	}
	fmt.Printf("gc count=%d p50_ms=%s p99_ms=%s max_ms=%s\n", len(pauses), q(0.5), q(0.99), q(1))
	return nil
}

func cmdWait(args []string) error {
	fs := flag.NewFlagSet("wait", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:11211", "server address")
	timeout := fs.Duration("timeout", 10*time.Second, "give up after this long")
	if err := parse(fs, args); err != nil {
		return err
	}
	deadline := time.Now().Add(*timeout)
	var last error
	for time.Now().Before(deadline) {
		if last = versionOK(*addr); last == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s not answering after %v: %v", *addr, *timeout, last)
}

func versionOK(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := conn.Write([]byte("version\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "VERSION ") {
		return fmt.Errorf("version reply %q", line)
	}
	return nil
}

func cmdFreePort() error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer l.Close()
	fmt.Println(l.Addr().(*net.TCPAddr).Port)
	return nil
}

// atomicCounter counts completed operations for progress reports.
type atomicCounter struct{ n atomic.Int64 }

func (c *atomicCounter) add(d int) { c.n.Add(int64(d)) }

func (c *atomicCounter) get() int { return int(c.n.Load()) }

// progress reports on stderr every 2 seconds until stop is closed.
func progress(what string, total int, done *atomicCounter, stop <-chan struct{}) {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			n := done.get()
			fmt.Fprintf(os.Stderr, "  %s: %d/%d (%.0f%%)\n", what, n, total, 100*float64(n)/float64(total))
		}
	}
}
