// Command storecompare loads N postscreen records into one in-memory cache
// library and measures what repcache cares about: resident memory per record,
// Go heap per record, GC stop-the-world pauses and single-goroutine Get
// latency under a mixed get/set phase with forced GCs.
//
// Run one library and one size per process so RSS is clean:
//
//	go run . -lib otter -n 1000000
//
// It prints one JSON object on stdout; `go run . -table results.jsonl`
// turns a file of such lines into the markdown tables of README.md.
package main

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// record is the postscreen cache value stored for every key (18 bytes).
var record = []byte("1795673021;1;1;1;1")

// hdrLen is the per-item metadata every byte-oriented library has to carry
// inside the value: flags(4) + CAS(8) + absolute deadline(8).
const hdrLen = 4 + 8 + 8

// adapter is the minimal surface repcache would use on a library.
type adapter interface {
	// set stores key → (flags, cas, deadline, data). deadline is absolute
	// Unix seconds; libraries with per-item TTL get deadline-now as TTL.
	set(key []byte, flags uint32, cas uint64, deadline int64, data []byte, now int64) error
	// get appends the stored encoded value (hdr+data) to buf. Adapters
	// that keep metadata natively (repcache's store) re-encode it.
	get(key []byte, buf []byte, now int64) ([]byte, bool)
	// settle waits for asynchronous writes to be applied (ristretto).
	settle()
	// evictions returns the library's own eviction counter, or -1.
	evictions() int64
	close()
}

type factory struct {
	name   string
	module string // module path, for the README
	notes  string // configuration used
	new    func(n int, budget int64) (adapter, error)
}

var factories = map[string]factory{}

func register(f factory) { factories[f.name] = f }

// encode writes the byte-oriented value layout.
func encode(dst []byte, flags uint32, cas uint64, deadline int64, data []byte) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, flags)
	dst = binary.LittleEndian.AppendUint64(dst, cas)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(deadline))
	return append(dst, data...)
}

// keyFor formats the postscreen key of record i into buf: postscreen:10.x.y.z.
func keyFor(buf []byte, i int) []byte {
	buf = append(buf[:0], "postscreen:10."...)
	buf = strconv.AppendInt(buf, int64((i>>16)&255), 10)
	buf = append(buf, '.')
	buf = strconv.AppendInt(buf, int64((i>>8)&255), 10)
	buf = append(buf, '.')
	buf = strconv.AppendInt(buf, int64(i&255), 10)
	return buf
}

// loadavg returns the 1-minute load average: the machine may be shared.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Fields(string(b))[0]
}

func vmRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb * 1024
		}
	}
	return -1
}

type result struct {
	Lib           string  `json:"lib"`
	N             int     `json:"n"`
	BudgetBytes   int64   `json:"budget_bytes"`
	Error         string  `json:"error,omitempty"`
	LoadSeconds   float64 `json:"load_s"`
	RSSLoadPer    float64 `json:"rss_per_rec_after_load"`
	RSSGCPer      float64 `json:"rss_per_rec_after_gc"`
	HeapPer       float64 `json:"heap_inuse_per_rec"`
	HeapLivePer   float64 `json:"heap_live_per_rec"`
	OffHeapPer    float64 `json:"rss_minus_heap_per_rec"`
	AvgKeyLen     float64 `json:"avg_key_len"`
	Gets          int     `json:"gets"`
	Hits          int     `json:"hits"`
	Sets          int     `json:"sets"`
	LibEvictions  int64   `json:"lib_evictions"`
	GetP50ns      float64 `json:"get_p50_ns"`
	GetP99ns      float64 `json:"get_p99_ns"`
	GetP999ns     float64 `json:"get_p999_ns"`
	GetMaxns      float64 `json:"get_max_ns"`
	SetMeanns     float64 `json:"set_mean_ns"`
	TimerP50ns    float64 `json:"timer_overhead_p50_ns"`
	NumGC         uint32  `json:"gc_cycles"`
	ForcedGCs     int     `json:"forced_gcs"`
	ForcedGCMs    float64 `json:"forced_gc_wall_mean_ms"`
	GCCPUSeconds  float64 `json:"gc_cpu_s"`
	PhaseSeconds  float64 `json:"phase_s"`
	PauseCount    uint64  `json:"stw_pauses"`
	PauseP99us    float64 `json:"stw_total_p99_us"`
	PauseMaxus    float64 `json:"stw_total_max_us"`
	StopP99us     float64 `json:"stw_stopping_p99_us"`
	CyclePauseMx  float64 `json:"gcstats_cycle_pause_max_us"`
	CyclePauseP99 float64 `json:"gcstats_cycle_pause_p99_us"`
	LoadAvgStart  string  `json:"loadavg_start"`
	LoadAvgEnd    string  `json:"loadavg_end"`
	Notes         string  `json:"notes"`
}

func main() {
	lib := flag.String("lib", "", "library: "+strings.Join(names(), ", "))
	n := flag.Int("n", 1_000_000, "records to load")
	budget := flag.Int64("budget", 0, "byte budget (0: 256 B per record, min 64 MiB)")
	gets := flag.Int("gets", 1_000_000, "random gets in the measured phase")
	sets := flag.Int("sets", 100_000, "random sets interleaved in the measured phase")
	forced := flag.Int("forced-gcs", 5, "runtime.GC() calls issued from a background goroutine during the phase")
	table := flag.String("table", "", "print markdown tables from a JSON-lines results file and exit")
	list := flag.Bool("list", false, "print the library names and exit")
	big := flag.Bool("semantics", false, "instead of the benchmark: with a 64 MiB budget, check a 1 MiB item and read-your-writes")
	flag.Parse()
	if *list {
		fmt.Println(strings.Join(names(), " "))
		return
	}
	if *table != "" {
		if err := printTables(*table); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	f, ok := factories[*lib]
	if !ok {
		fmt.Fprintf(os.Stderr, "unknown -lib %q; have %s\n", *lib, strings.Join(names(), ", "))
		os.Exit(2)
	}
	if *big {
		out, _ := json.Marshal(bigItem(f))
		fmt.Println(string(out))
		return
	}
	if *budget == 0 {
		*budget = max(int64(*n)*256, 64<<20)
	}
	res := run(f, *n, *budget, *gets, *sets, *forced)
	out, _ := json.Marshal(res)
	fmt.Println(string(out))
}

func names() []string {
	var s []string
	for k := range factories {
		s = append(s, k)
	}
	slices.Sort(s)
	return s
}

func memStats() runtime.MemStats {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m
}

var metricNames = []string{
	"/sched/pauses/total/gc:seconds",
	"/sched/pauses/stopping/gc:seconds",
	"/cpu/classes/gc/total:cpu-seconds",
	"/gc/cycles/total:gc-cycles",
}

func readMetrics() []metrics.Sample {
	s := make([]metrics.Sample, len(metricNames))
	for i, n := range metricNames {
		s[i].Name = n
	}
	metrics.Read(s)
	// Keep a private copy of each histogram for histDelta.
	for i := range s {
		if s[i].Value.Kind() == metrics.KindFloat64Histogram {
			h := s[i].Value.Float64Histogram()
			cp := &metrics.Float64Histogram{Counts: slices.Clone(h.Counts), Buckets: h.Buckets}
			hists[s[i].Name] = append(hists[s[i].Name], cp)
		}
	}
	return s
}

var hists = map[string][]*metrics.Float64Histogram{}

// histDelta returns count, p99 upper bound and max upper bound (seconds) of
// the samples recorded between the last two snapshots of name.
func histDelta(name string) (uint64, float64, float64) {
	h := hists[name]
	a, b := h[len(h)-2], h[len(h)-1]
	var total uint64
	d := make([]uint64, len(b.Counts))
	for i := range b.Counts {
		d[i] = b.Counts[i] - a.Counts[i]
		total += d[i]
	}
	if total == 0 {
		return 0, 0, 0
	}
	upper := func(i int) float64 {
		u := b.Buckets[i+1]
		if math.IsInf(u, 1) {
			return b.Buckets[i]
		}
		return u
	}
	var cum uint64
	p99 := -1.0
	mx := 0.0
	for i, c := range d {
		cum += c
		if p99 < 0 && float64(cum) >= 0.99*float64(total) {
			p99 = upper(i)
		}
		if c > 0 {
			mx = upper(i)
		}
	}
	return total, p99, mx
}

func run(f factory, n int, budget int64, gets, sets, forced int) (res result) {
	res = result{Lib: f.name, N: n, BudgetBytes: budget, Notes: f.notes, LoadAvgStart: loadavg()}
	defer func() {
		res.LoadAvgEnd = loadavg()
		if r := recover(); r != nil {
			res.Error = fmt.Sprint(r)
		}
	}()
	runtime.GC()
	debug.FreeOSMemory()
	rss0 := vmRSS()
	ms0 := memStats()

	a, err := f.new(n, budget)
	if err != nil {
		res.Error = err.Error()
		return
	}
	rng := rand.New(rand.NewPCG(1, 2))
	now := time.Now().Unix()
	var cas atomic.Uint64
	kbuf := make([]byte, 0, 64)
	var keyBytes int
	t0 := time.Now()
	for i := 0; i < n; i++ {
		kbuf = keyFor(kbuf, i)
		keyBytes += len(kbuf)
		// postscreen TTLs: 1 to 61 days, i.e. deadlines beyond memcached's
		// 30-day relative limit too.
		deadline := now + 86400 + rng.Int64N(60*86400)
		if err := a.set(kbuf, uint32(i), cas.Add(1), deadline, record, now); err != nil {
			res.Error = fmt.Sprintf("set %d: %v", i, err)
			return
		}
	}
	a.settle()
	res.LoadSeconds = time.Since(t0).Seconds()
	res.AvgKeyLen = float64(keyBytes) / float64(n)
	rss1 := vmRSS()
	runtime.GC()
	ms1 := memStats()
	debug.FreeOSMemory()
	rss2 := vmRSS()
	fn := float64(n)
	res.RSSLoadPer = float64(rss1-rss0) / fn
	res.RSSGCPer = float64(rss2-rss0) / fn
	res.HeapPer = float64(int64(ms1.HeapInuse)-int64(ms0.HeapInuse)) / fn
	res.HeapLivePer = float64(int64(ms1.HeapAlloc)-int64(ms0.HeapAlloc)) / fn
	res.OffHeapPer = res.RSSGCPer - float64(int64(ms1.HeapInuse)-int64(ms0.HeapInuse))/fn

	// Timer overhead: time.Now/time.Since around nothing.
	tov := make([]int64, 100_000)
	for i := range tov {
		s := time.Now()
		tov[i] = int64(time.Since(s))
	}
	slices.Sort(tov)
	res.TimerP50ns = float64(tov[len(tov)/2])

	lat := make([]int64, gets)
	gbuf := make([]byte, 0, 256)
	setEvery := 0
	if sets > 0 {
		setEvery = gets / sets
	}
	gcEvery := gets / (forced + 1)
	gcReq := make(chan struct{}, forced+1)
	gcDone := make(chan struct{})
	var gcWall time.Duration
	var gcCount, issued int
	go func() {
		for range gcReq {
			s := time.Now()
			runtime.GC()
			gcWall += time.Since(s)
			gcCount++
		}
		close(gcDone)
	}()

	var gcs0, gcs1 debug.GCStats
	debug.ReadGCStats(&gcs0)
	m0 := readMetrics()
	var setTotal time.Duration
	nsets := 0
	hits := 0
	phase0 := time.Now()
	for i := 0; i < gets; i++ {
		if forced > 0 && i > 0 && i%gcEvery == 0 && issued < forced {
			gcReq <- struct{}{}
			issued++
		}
		k := int(rng.Uint64N(uint64(n)))
		kbuf = keyFor(kbuf, k)
		s := time.Now()
		v, ok := a.get(kbuf, gbuf[:0], now)
		if ok {
			// Decode as repcache would: flags, CAS, deadline check.
			if len(v) >= hdrLen && int64(binary.LittleEndian.Uint64(v[12:20])) > now {
				hits++
			}
		}
		lat[i] = int64(time.Since(s))
		if setEvery > 0 && i%setEvery == setEvery-1 && nsets < sets {
			k := int(rng.Uint64N(uint64(n)))
			kbuf = keyFor(kbuf, k)
			deadline := now + 86400 + rng.Int64N(60*86400)
			s := time.Now()
			if err := a.set(kbuf, 7, cas.Add(1), deadline, record, now); err != nil {
				res.Error = fmt.Sprintf("phase set: %v", err)
			}
			setTotal += time.Since(s)
			nsets++
		}
	}
	close(gcReq)
	<-gcDone
	res.PhaseSeconds = time.Since(phase0).Seconds()
	m1 := readMetrics()
	debug.ReadGCStats(&gcs1)
	a.settle()
	res.LibEvictions = a.evictions()
	a.close()

	res.Gets, res.Hits, res.Sets = gets, hits, nsets
	if nsets > 0 {
		res.SetMeanns = float64(setTotal) / float64(nsets)
	}
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))]) }
	res.GetP50ns, res.GetP99ns, res.GetP999ns, res.GetMaxns = pct(0.50), pct(0.99), pct(0.999), float64(lat[len(lat)-1])

	res.ForcedGCs = gcCount
	if gcCount > 0 {
		res.ForcedGCMs = float64(gcWall) / float64(gcCount) / 1e6
	}
	res.GCCPUSeconds = m1[2].Value.Float64() - m0[2].Value.Float64()
	res.NumGC = uint32(m1[3].Value.Uint64() - m0[3].Value.Uint64())
	cnt, p99, mx := histDelta(metricNames[0])
	res.PauseCount, res.PauseP99us, res.PauseMaxus = cnt, p99*1e6, mx*1e6
	_, sp99, _ := histDelta(metricNames[1])
	res.StopP99us = sp99 * 1e6
	// Exact per-cycle pause totals from GCStats (most recent first).
	ncyc := int(gcs1.NumGC - gcs0.NumGC)
	if ncyc > len(gcs1.Pause) {
		ncyc = len(gcs1.Pause)
	}
	if ncyc > 0 {
		p := slices.Clone(gcs1.Pause[:ncyc])
		slices.Sort(p)
		res.CyclePauseMx = float64(p[len(p)-1]) / 1e3
		res.CyclePauseP99 = float64(p[int(0.99*float64(len(p)-1))]) / 1e3
	}
	return res
}

// group is every run of one library at one size.
type group struct {
	lib  string
	n    int
	runs []result
	errs []string
}

// med returns the median of f over the group's runs.
func (g *group) med(f func(r result) float64) float64 {
	v := make([]float64, len(g.runs))
	for i, r := range g.runs {
		v[i] = f(r)
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// rng formats "median (min–max)" when there is more than one run.
func (g *group) rng(f func(r result) float64, format string) string {
	m := fmt.Sprintf(format, g.med(f))
	if len(g.runs) < 2 {
		return m
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, r := range g.runs {
		lo, hi = min(lo, f(r)), max(hi, f(r))
	}
	return m + " (" + fmt.Sprintf(format, lo) + "–" + fmt.Sprintf(format, hi) + ")"
}

type bigResult struct {
	Lib    string `json:"lib"`
	BigOK  bool   `json:"bigitem_ok"`
	Detail string `json:"bigitem_detail"`
	// Read-your-writes: a Get issued right after each of 10,000 Sets of new
	// keys (no settle/Wait in between), as a memcached client expects after
	// STORED.
	RYWMisses int `json:"ryw_misses"`
	RYWTotal  int `json:"ryw_total"`
}

// bigItem checks the "1 MiB items with the default 64 MiB budget"
// requirement: the value is 1 MiB minus the key and a 100-byte allowance
// for headers, as memcached counts the whole item against its 1 MiB limit.
func bigItem(f factory) (res bigResult) {
	res.Lib = f.name
	defer func() {
		if r := recover(); r != nil {
			res.BigOK, res.Detail = false, fmt.Sprint("panic: ", r)
		}
	}()
	a, err := f.new(10_000, 64<<20)
	if err != nil {
		res.Detail = "new: " + err.Error()
		return
	}
	defer a.close()
	now := time.Now().Unix()
	kbuf := make([]byte, 0, 64)
	gbuf := make([]byte, 0, 256)
	for i := 0; i < 10_000; i++ {
		kbuf = keyFor(kbuf, i)
		if err := a.set(kbuf, 0, uint64(i+1), now+86400, record, now); err != nil {
			res.Detail = "small set: " + err.Error()
			return
		}
		res.RYWTotal++
		if _, ok := a.get(kbuf, gbuf[:0], now); !ok {
			res.RYWMisses++
		}
	}
	key := []byte("postscreen:big")
	data := make([]byte, 1<<20-len(key)-100)
	for i := range data {
		data[i] = byte(i * 7)
	}
	if err := a.set(key, 1, 99_999, now+86400, data, now); err != nil {
		res.Detail = "set 1 MiB: " + err.Error()
		return
	}
	a.settle()
	v, ok := a.get(key, nil, now)
	switch {
	case !ok:
		res.Detail = "1 MiB item not found after Set"
	case len(v) != hdrLen+len(data) || string(v[hdrLen:]) != string(data):
		res.Detail = fmt.Sprintf("1 MiB item read back wrong (%d bytes)", len(v))
	default:
		res.BigOK, res.Detail = true, fmt.Sprintf("stored and read back %d bytes", len(data))
	}
	return
}

// printTables renders the results file as markdown: one row per library and
// size, the median over its runs (with min–max for the noisy figures).
func printTables(path string) error {
	fh, err := os.Open(path)
	if err != nil {
		return err
	}
	defer fh.Close()
	var groups []*group
	var bigs []bigResult
	find := func(lib string, n int) *group {
		for _, g := range groups {
			if g.lib == lib && g.n == n {
				return g
			}
		}
		g := &group{lib: lib, n: n}
		groups = append(groups, g)
		return g
	}
	sc := bufio.NewScanner(fh)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, "{") {
			continue
		}
		if strings.Contains(line, `"bigitem_ok"`) {
			var b bigResult
			if err := json.Unmarshal([]byte(line), &b); err != nil {
				return err
			}
			bigs = append(bigs, b)
			continue
		}
		var r result
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			return err
		}
		g := find(r.Lib, r.N)
		if r.Error != "" {
			g.errs = append(g.errs, r.Error)
			continue
		}
		g.runs = append(g.runs, r)
	}
	slices.SortStableFunc(groups, func(a, b *group) int { return a.n - b.n })
	fmt.Println("### Memory (per record, after loading N records)")
	fmt.Println()
	fmt.Println("| library | N | runs | budget | load s | RSS B/rec after load | RSS B/rec after GC+FreeOSMemory | Go HeapInuse B/rec | Go live heap B/rec | hits/gets | lib evictions |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, g := range groups {
		if len(g.runs) == 0 {
			fmt.Printf("| %s | %d | 0 | | error: %s | | | | | | |\n", g.lib, g.n, strings.Join(g.errs, "; "))
			continue
		}
		r0 := g.runs[0]
		hits, gets := 0, 0
		ev := int64(0)
		for _, r := range g.runs {
			hits += r.Hits
			gets += r.Gets
			ev = max(ev, r.LibEvictions)
		}
		fmt.Printf("| %s | %d | %d | %d MiB | %.1f | %s | %.1f | %.1f | %.1f | %d/%d | %d |\n",
			g.lib, g.n, len(g.runs), r0.BudgetBytes>>20, g.med(func(r result) float64 { return r.LoadSeconds }),
			g.rng(func(r result) float64 { return r.RSSLoadPer }, "%.1f"),
			g.med(func(r result) float64 { return r.RSSGCPer }),
			g.med(func(r result) float64 { return r.HeapPer }),
			g.med(func(r result) float64 { return r.HeapLivePer }), hits, gets, ev)
	}
	fmt.Println()
	fmt.Println("### GC and Get latency (phase: 1,000,000 random gets + 100,000 sets, single goroutine, 5 forced GCs from a background goroutine)")
	fmt.Println()
	fmt.Println("Median over runs, (min–max) where shown.")
	fmt.Println()
	fmt.Println("| library | N | get p50 ns | get p99 ns | get p99.9 ns | set mean ns | GC cycles | forced GC wall ms | GC CPU s / phase s | STW p99 µs (hist, bucket upper bound) | of which stopping p99 µs | per-cycle pause max µs (GCStats) | load avg at start |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, g := range groups {
		if len(g.runs) == 0 {
			continue
		}
		la := []string{}
		for _, r := range g.runs {
			la = append(la, r.LoadAvgStart)
		}
		fmt.Printf("| %s | %d | %s | %s | %.0f | %.0f | %.0f | %.0f | %.2f / %.2f | %s | %.0f | %s | %s |\n",
			g.lib, g.n,
			g.rng(func(r result) float64 { return r.GetP50ns }, "%.0f"),
			g.rng(func(r result) float64 { return r.GetP99ns }, "%.0f"),
			g.med(func(r result) float64 { return r.GetP999ns }),
			g.med(func(r result) float64 { return r.SetMeanns }),
			g.med(func(r result) float64 { return float64(r.NumGC) }),
			g.med(func(r result) float64 { return r.ForcedGCMs }),
			g.med(func(r result) float64 { return r.GCCPUSeconds }),
			g.med(func(r result) float64 { return r.PhaseSeconds }),
			g.rng(func(r result) float64 { return r.PauseP99us }, "%.0f"),
			g.med(func(r result) float64 { return r.StopP99us }),
			g.rng(func(r result) float64 { return r.CyclePauseMx }, "%.0f"),
			strings.Join(la, ", "))
	}
	fmt.Println()
	fmt.Println("### Targets (medians)")
	fmt.Println()
	fmt.Println("| library | RSS B/rec @1M after load ≤ 101 | STW p99 @10M < 1 ms: best run / median | get p50 10M/1M | get p99 10M/1M | get within 20% |")
	fmt.Println("|---|---|---|---:|---:|---|")
	libs := []string{}
	for _, g := range groups {
		if !slices.Contains(libs, g.lib) {
			libs = append(libs, g.lib)
		}
	}
	slices.Sort(libs)
	get := func(lib string, n int) *group {
		for _, g := range groups {
			if g.lib == lib && g.n == n && len(g.runs) > 0 {
				return g
			}
		}
		return nil
	}
	for _, l := range libs {
		a, b := get(l, 1_000_000), get(l, 10_000_000)
		rssCell, stwCell, r50, r99, within := "not run", "not run", "-", "-", "-"
		if a != nil {
			v := a.med(func(r result) float64 { return r.RSSLoadPer })
			rssCell = fmt.Sprintf("%.1f %s", v, yes(v <= 101))
		}
		if b != nil {
			v := b.med(func(r result) float64 { return r.PauseP99us })
			lo := math.Inf(1)
			for _, r := range b.runs {
				lo = min(lo, r.PauseP99us)
			}
			verdict := yes(v < 1000)
			if v >= 1000 && lo < 1000 {
				verdict = "best run only"
			}
			stwCell = fmt.Sprintf("%.0f / %.0f µs %s", lo, v, verdict)
		}
		if a != nil && b != nil {
			x50 := b.med(func(r result) float64 { return r.GetP50ns }) / a.med(func(r result) float64 { return r.GetP50ns })
			x99 := b.med(func(r result) float64 { return r.GetP99ns }) / a.med(func(r result) float64 { return r.GetP99ns })
			r50, r99 = fmt.Sprintf("%.2f", x50), fmt.Sprintf("%.2f", x99)
			within = yes(x50 <= 1.2 && x99 <= 1.2)
		}
		fmt.Printf("| %s | %s | %s | %s | %s | %s |\n", l, rssCell, stwCell, r50, r99, within)
	}
	if len(bigs) > 0 {
		fmt.Println()
		fmt.Println("### Semantics checks, 64 MiB budget (measured)")
		fmt.Println()
		fmt.Println("| library | Get right after Set of a new key misses | 1 MiB item (after 10,000 records) stored and read back | detail |")
		fmt.Println("|---|---:|---|---|")
		for _, b := range bigs {
			fmt.Printf("| %s | %d of %d | %s | %s |\n", b.Lib, b.RYWMisses, b.RYWTotal, yes(b.BigOK), b.Detail)
		}
	}
	fmt.Println()
	fmt.Println("Configurations:")
	for _, l := range libs {
		for _, g := range groups {
			if g.lib == l && len(g.runs) > 0 {
				fmt.Printf("- %s: %s\n", l, g.runs[0].Notes)
				break
			}
		}
	}
	for _, g := range groups {
		if len(g.runs) > 0 {
			fmt.Printf("\nTimer overhead (time.Now+time.Since, p50): %.0f ns; included in get latencies.\n", g.runs[0].TimerP50ns)
			break
		}
	}
	return nil
}

func yes(b bool) string {
	if b {
		return "yes"
	}
	return "**no**"
}
