#!/usr/bin/env bash
# bench/run.sh — repcache vs memcached, side by side, in one run.
#
# usage: bench/run.sh [memcaslap] [postmap] [memory] ...   (default: all)
#
# Sections:
#   memcaslap  memcaslap -T 2 -c 32, 90% get / 10% set, 20-byte keys,
#              24-byte values, fixed duration; runs alternate between the
#              servers; median ops/s.
#   postmap    real Postfix client: postmap -q - memcache:... over
#              POSTMAP_KEYS IPs, half of them preloaded; median wall time.
#   memory     loadgen loads RECORDS postscreen records into a fresh server:
#              RSS bytes/record, get latency, Go GC pauses; then the same at
#              RECORDS_BIG (10M) and the 10M/1M get-latency ratio.
#
# Environment (defaults in brackets; BENCH_QUICK=1 switches to tiny sizes):
#   BENCH_SECONDS [20]      memcaslap duration per run
#   BENCH_RUNS [3]          memcaslap runs per server (alternating order)
#   POSTMAP_KEYS [50000]    IPs queried; every second one is preloaded
#   POSTMAP_RUNS [11]        timed postmap runs per server (after 1 warm-up)
#   RECORDS [1000000]       records for the memory section
#   RECORDS_BIG [10000000]  records for the scale part (0 skips it)
#   MEMCACHED_BIG [1]       also load memcached with RECORDS_BIG
#   LATENCY_GETS [200000]   gets per latency run (random present keys)
#   LATENCY_CONNS [4]       connections, one get in flight on each
#   LATENCY_RUNS [5]        latency runs per server; medians are reported
#   SETTLE_MAX [120]        after a load, wait at most this long for the
#   SETTLE_CPU_PCT [25]     server's CPU use to fall to this % of one CPU
#                           before measuring RSS/latency
#   IDLE_SECONDS [5]        then measure its idle CPU use over this long
#   BENCH_CANDIDATE [repcache]  repcache | memcached (harness self-test:
#                           memcached on both sides) | none (baseline only)
#   REPCACHE_BIN            use this binary instead of building ./cmd/repcache
#   REPCACHE_MAX_BYTES [4GiB]  --cache.memory.max_bytes
#   REPCACHE_ARGS           extra repcache arguments (word-split)
#
# Results: a table on stdout, bench/results/latest.json and latest.txt;
# per-run logs under bench/results/run-<timestamp>/.
set -euo pipefail
export LC_ALL=C

if [[ ${1:-} == -h || ${1:-} == --help ]]; then
	sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"
	exit 0
fi

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench
RESULTS=$BENCH/results
COMMAND_LINE="bench/run.sh${*:+ $*}"

if [[ ${BENCH_QUICK:-0} == 1 ]]; then
	: "${BENCH_SECONDS:=3}" "${BENCH_RUNS:=2}" "${POSTMAP_KEYS:=2000}" "${POSTMAP_RUNS:=3}"
	: "${RECORDS:=100000}" "${RECORDS_BIG:=300000}" "${LATENCY_GETS:=20000}" "${LATENCY_RUNS:=1}"
fi
: "${BENCH_SECONDS:=20}" "${BENCH_RUNS:=3}" "${POSTMAP_KEYS:=50000}" "${POSTMAP_RUNS:=11}"
: "${RECORDS:=1000000}" "${RECORDS_BIG:=10000000}" "${MEMCACHED_BIG:=1}"
: "${LATENCY_GETS:=200000}" "${LATENCY_CONNS:=4}" "${LATENCY_RUNS:=5}" "${SETTLE_MAX:=120}" "${SETTLE_CPU_PCT:=25}" "${IDLE_SECONDS:=5}"
: "${BENCH_CANDIDATE:=repcache}" "${REPCACHE_BIN:=}" "${REPCACHE_MAX_BYTES:=4GiB}" "${REPCACHE_ARGS:=}"

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
die() {
	log "FATAL: $*"
	exit 1
}

ALL_SECTIONS=(memcaslap postmap memory)
SECTIONS=("$@")
((${#SECTIONS[@]})) || SECTIONS=("${ALL_SECTIONS[@]}")
for s in "${SECTIONS[@]}"; do
	[[ " ${ALL_SECTIONS[*]} " == *" $s "* ]] || die "unknown section '$s' (sections: ${ALL_SECTIONS[*]})"
done
want() { [[ " ${SECTIONS[*]} " == *" $1 "* ]]; }

case $BENCH_CANDIDATE in
repcache | memcached | none) ;;
*) die "BENCH_CANDIDATE must be repcache, memcached or none" ;;
esac
CAND_LABEL=repcache
[[ $BENCH_CANDIDATE == memcached ]] && CAND_LABEL='memcached*'

for tool in memcached go awk; do command -v "$tool" >/dev/null || die "$tool not found"; done
want memcaslap && { command -v memcaslap >/dev/null || die "memcaslap not found (libmemcached-tools)"; }
POSTMAP=$(command -v postmap || echo /usr/sbin/postmap)
want postmap && { [[ -x $POSTMAP ]] || die "postmap not found (postfix)"; }

STAMP=$(date +%Y%m%d-%H%M%S)
RUN=$RESULTS/run-$STAMP
mkdir -p "$RUN"
TSV=$RUN/results.tsv
: >"$TSV"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/repcache-bench.XXXXXX")

# --- process management: every server we start is recorded and killed on exit.
declare -A PID=() PORT=() SLOG=()
cleanup() {
	local rc=$? side
	trap - EXIT INT TERM
	for side in "${!PID[@]}"; do
		kill "${PID[$side]}" 2>/dev/null || true
		wait "${PID[$side]}" 2>/dev/null || true
	done
	rm -rf "$TMP"
	exit "$rc"
}
trap cleanup EXIT
set -E
trap 'log "FATAL: command failed (line $LINENO): $BASH_COMMAND"' ERR
trap 'log "interrupted"; exit 130' INT TERM

# --- build
LOADGEN=$TMP/loadgen
log "building loadgen"
(cd "$ROOT" && go build -o "$LOADGEN" ./bench/loadgen) || die "loadgen build failed"
if [[ $BENCH_CANDIDATE == repcache ]]; then
	if [[ -z $REPCACHE_BIN ]]; then
		log "building repcache (go build ./cmd/repcache)"
		REPCACHE_BIN=$TMP/repcache
		(cd "$ROOT" && go build -o "$REPCACHE_BIN" ./cmd/repcache) ||
			die "repcache build failed (BENCH_CANDIDATE=memcached self-tests the harness; =none runs memcached only)"
	fi
	[[ -x $REPCACHE_BIN ]] || die "REPCACHE_BIN=$REPCACHE_BIN is not executable"
fi

CLK_TCK=$(getconf CLK_TCK)
MEMCACHED_USER=()
((EUID == 0)) && MEMCACHED_USER=(-u root)

SIDES=()
[[ $BENCH_CANDIDATE != none ]] && SIDES+=(cand)
SIDES+=(base)
label() { if [[ $1 == cand ]]; then echo "$CAND_LABEL"; else echo memcached; fi; }
impl() { if [[ $1 == cand ]]; then echo "$BENCH_CANDIDATE"; else echo memcached; fi; }

# start_server SIDE TAG MEMCACHED_MB GCTRACE(0|1): a fresh server on a free
# 127.0.0.1 port; sets PID[SIDE], PORT[SIDE], SLOG[SIDE].
start_server() {
	local side=$1 tag=$2 mb=$3 gctrace=$4 port pid logf try
	logf=$RUN/server-$tag-$side.log
	for try in 1 2 3; do
		port=$("$LOADGEN" freeport)
		if [[ $(impl "$side") == repcache ]]; then
			local godebug=${GODEBUG:-}
			((gctrace)) && godebug=${godebug:+$godebug,}gctrace=1
			# shellcheck disable=SC2086 # REPCACHE_ARGS is word-split on purpose
			GODEBUG=$godebug "$REPCACHE_BIN" --listen "127.0.0.1:$port" --admin.listen "" \
				--cache.memory.max_bytes "$REPCACHE_MAX_BYTES" $REPCACHE_ARGS >"$logf" 2>&1 &
		else
			memcached "${MEMCACHED_USER[@]}" -l 127.0.0.1 -p "$port" -U 0 -t 2 -m "$mb" >"$logf" 2>&1 &
		fi
		pid=$!
		PID[$side]=$pid PORT[$side]=$port SLOG[$side]=$logf
		if "$LOADGEN" wait -addr "127.0.0.1:$port" -timeout 20s 2>>"$logf"; then
			kill -0 "$pid" 2>/dev/null && return 0
		fi
		log "$(label "$side") did not come up on port $port (try $try); log tail:"
		tail -5 "$logf" >&2 || true
		stop_server "$side"
	done
	die "cannot start $(label "$side")"
}

stop_server() {
	local side=$1
	[[ -n ${PID[$side]:-} ]] || return 0
	kill "${PID[$side]}" 2>/dev/null || true
	wait "${PID[$side]}" 2>/dev/null || true
	unset "PID[$side]"
}

# cpu_ticks PID: user+system CPU time of PID in clock ticks.
cpu_ticks() { awk '{sub(/.*\) /, ""); print $12 + $13}' "/proc/$1/stat"; }

# settle PID: wait until the server's CPU use falls to SETTLE_CPU_PCT of one
# CPU (measured per second), at most SETTLE_MAX seconds, so background work
# after a load (memcached's hash table expansion) does not land in the
# latency figures of one server and not the other. The threshold is not 0:
# a server may have steady housekeeping (repcache's expiry sweeper walks the
# whole store once a minute), which is reported as "CPU while idle" instead.
# Sets SETTLED (seconds waited) and IDLE_CPU (% of one CPU over IDLE_SECONDS
# after settling).
settle() {
	local pid=$1 t0 t1 limit
	limit=$((SETTLE_CPU_PCT * CLK_TCK / 100))
	SETTLED=0
	t0=$(cpu_ticks "$pid")
	while ((SETTLED < SETTLE_MAX)); do
		sleep 1
		SETTLED=$((SETTLED + 1))
		t1=$(cpu_ticks "$pid")
		((t1 - t0 <= limit)) && break
		((SETTLED % 5 == 0)) && log "  waiting for the server to go idle: ${SETTLED}s, $((t1 - t0)) ticks in the last second"
		t0=$t1
	done
	((SETTLED < SETTLE_MAX)) || log "  server still busy after ${SETTLE_MAX}s; measuring anyway"
	t0=$(cpu_ticks "$pid")
	sleep "$IDLE_SECONDS"
	t1=$(cpu_ticks "$pid")
	IDLE_CPU=$(calc "100 * ($t1 - $t0) / $CLK_TCK / $IDLE_SECONDS" 1)
}

status_kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }

# field NAME LINE: value of NAME=... in a "key=value key=value" line.
field() { awk -v k="$1" '{for (i = 1; i <= NF; i++) if (index($i, k "=") == 1) print substr($i, length(k) + 2)}' <<<"$2"; }

median() { tr ' ' '\n' | { grep -v '^$' || true; } | sort -g | awk '{v[NR] = $1} END {if (NR == 0) print "NA"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

calc() { awk "BEGIN {printf \"%.${2:-3}f\", $1}"; }

# record SECTION METRIC UNIT CAND BASE TARGET DETAIL
# TARGET: "ratio>=X", "ratio<=X", "cand<=X", "cand<X" or "" (information only).
# The ratio is CAND/BASE; NA when either is missing.
record() {
	local section=$1 metric=$2 unit=$3 cand=${4:-NA} base=${5:-NA} target=${6:-} detail=${7:-}
	local ratio=NA verdict=
	[[ -z $cand ]] && cand=NA
	[[ -z $base ]] && base=NA
	if [[ $cand != NA && $base != NA ]] && awk "BEGIN {exit !($base != 0)}"; then
		ratio=$(calc "$cand / $base" 3)
	fi
	if [[ -n $target ]]; then
		local what=${target%%[<>]*} op=${target#"${target%%[<>]*}"} lim val
		lim=${op##*[<>=]}
		op=${op%"$lim"}
		if [[ $what == ratio ]]; then val=$ratio; else val=$cand; fi
		if [[ $val == NA ]]; then
			verdict=n/a
		elif awk "BEGIN {exit !($val $op $lim)}"; then
			verdict=PASS
		else
			verdict=MISS
		fi
	fi
	# empty fields are written as "-": bash's read would merge adjacent tabs
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$section" "$metric" "$unit" "$cand" "$base" "$ratio" \
		"${target:--}" "${verdict:--}" "${detail:--}" >>"$TSV"
	log "result: $section / $metric: $CAND_LABEL=$cand memcached=$base ratio=$ratio ${verdict:+[$target: $verdict]}"
}

# ---------------------------------------------------------------- memcaslap
section_memcaslap() {
	log "== memcaslap: -T 2 -c 32, get 0.9 / set 0.1, key 20 B, value 24 B, ${BENCH_SECONDS}s x $BENCH_RUNS runs per server"
	local cfg=$RUN/memcaslap.cfg
	cat >"$cfg" <<'EOF'
# memcaslap -F: key length min max proportion / value length ... / cmd type proportion (0 set, 1 get)
key
20 20 1
value
24 24 1
cmd
0 0.1
1 0.9
EOF
	local side
	for side in "${SIDES[@]}"; do start_server "$side" memcaslap 4096 0; done
	declare -A ops=()
	local i order n=0 total=$((BENCH_RUNS * ${#SIDES[@]})) out tps
	for ((i = 1; i <= BENCH_RUNS; i++)); do
		# alternate which server goes first: A B, B A, A B, ...
		order=("${SIDES[@]}")
		((i % 2 == 0 && ${#SIDES[@]} == 2)) && order=("${SIDES[1]}" "${SIDES[0]}")
		for side in "${order[@]}"; do
			n=$((n + 1))
			out=$RUN/memcaslap-$side-$i.out
			log "memcaslap [$n/$total] $(label "$side") run $i (${BENCH_SECONDS}s)"
			timeout $((BENCH_SECONDS + 120)) memcaslap -s "127.0.0.1:${PORT[$side]}" -T 2 -c 32 \
				-F "$cfg" -t "${BENCH_SECONDS}s" >"$out" 2>&1 || die "memcaslap failed, see $out"
			tps=$(awk '/^Run time:/ {for (i = 1; i <= NF; i++) if ($i == "TPS:") print $(i + 1)}' "$out" | tail -1)
			[[ $tps =~ ^[0-9]+$ && $tps -gt 0 ]] || die "no TPS in memcaslap output, see $out"
			log "  $tps ops/s"
			ops[$side]+="$tps "
		done
	done
	for side in "${SIDES[@]}"; do stop_server "$side"; done
	local c b
	c=$(median <<<"${ops[cand]:-}")
	b=$(median <<<"${ops[base]}")
	record memcaslap "ops/s (median of $BENCH_RUNS, ${BENCH_SECONDS}s each)" ops/s "$c" "$b" "ratio>=1.00" \
		"$CAND_LABEL: ${ops[cand]:-} memcached: ${ops[base]}"
}

# ---------------------------------------------------------------- postmap
section_postmap() {
	local preload=$(((POSTMAP_KEYS + 1) / 2))
	log "== postmap: $POSTMAP_KEYS lookups (postmap -q -), $preload preloaded, 1 warm-up + $POSTMAP_RUNS timed runs per server"
	local keys=$RUN/postmap-keys.txt side dir
	"$LOADGEN" keys -n "$POSTMAP_KEYS" >"$keys"
	for side in "${SIDES[@]}"; do
		start_server "$side" postmap 4096 0
		# every second key (indexes 0, 2, 4, ...) is present: hits and misses interleave
		"$LOADGEN" load -q -addr "127.0.0.1:${PORT[$side]}" -n "$preload" -stride 2 >/dev/null ||
			die "preload of $(label "$side") failed"
		dir=$RUN/postfix-$side
		mkdir -p "$dir"
		# postmap -c needs a main.cf; compatibility_level avoids backwards-
		# compatibility warnings. The table path must be absolute: a relative
		# memcache:name is taken as a main.cf parameter prefix.
		printf 'compatibility_level = 3.6\n' >"$dir/main.cf"
		printf 'memcache = inet:127.0.0.1:%s\nkey_format = postscreen:%%s\n' "${PORT[$side]}" >"$dir/postscreen.cf"
	done
	declare -A wall=()
	local i order n=0 total=$(((POSTMAP_RUNS + 1) * ${#SIDES[@]})) out t0 t1 secs lines
	for ((i = 0; i <= POSTMAP_RUNS; i++)); do
		order=("${SIDES[@]}")
		((i % 2 == 1 && ${#SIDES[@]} == 2)) && order=("${SIDES[1]}" "${SIDES[0]}")
		for side in "${order[@]}"; do
			n=$((n + 1))
			dir=$RUN/postfix-$side
			out=$RUN/postmap-$side.out
			t0=$EPOCHREALTIME
			"$POSTMAP" -c "$dir" -q - "memcache:$dir/postscreen.cf" <"$keys" >"$out" 2>"$out.err" ||
				die "postmap against $(label "$side") failed: $(tail -2 "$out.err")"
			t1=$EPOCHREALTIME
			secs=$(calc "$t1 - $t0" 4)
			lines=$(grep -c $'\t1795673021;1;1;1;1$' "$out" || true)
			[[ $lines == "$preload" && $(wc -l <"$out") == "$preload" ]] ||
				die "postmap against $(label "$side") printed $lines hits / $(wc -l <"$out") lines, expected $preload"
			if ((i == 0)); then
				log "postmap [$n/$total] $(label "$side") warm-up: ${secs}s, $lines hits (not counted)"
			else
				log "postmap [$n/$total] $(label "$side") run $i: ${secs}s, $lines hits"
				wall[$side]+="$secs "
			fi
		done
	done
	for side in "${SIDES[@]}"; do stop_server "$side"; done
	local c b
	c=$(median <<<"${wall[cand]:-}")
	b=$(median <<<"${wall[base]}")
	record postmap "wall time, $POSTMAP_KEYS lookups, $preload hits (median of $POSTMAP_RUNS)" s "$c" "$b" "ratio<=1.10" \
		"$CAND_LABEL: ${wall[cand]:-} memcached: ${wall[base]}"
	c=$(tr ' ' '\n' <<<"${wall[cand]:-}" | grep . | sort -g | head -1 || true)
	b=$(tr ' ' '\n' <<<"${wall[base]}" | grep . | sort -g | head -1)
	record postmap "wall time, fastest of $POSTMAP_RUNS" s "$c" "$b"
}

# ---------------------------------------------------------------- memory
# measure_load SIDE TAG N MEMCACHED_MB: fresh server, load N records, RSS,
# wait for idle, RSS, latency runs, GC stats.
# Sets M_BPR M_RSS_MB M_HWM_MB M_RATE M_SETTLE M_IDLE M_P50 M_P99 M_LAT_DETAIL M_GC.
measure_load() {
	local side=$1 tag=$2 n=$3 mb=$4 pid rss0 rss1 hwm out r p50s="" p99s=""
	start_server "$side" "$tag" "$mb" 1
	pid=${PID[$side]}
	sleep 1
	rss0=$(status_kb "$pid" VmRSS)
	log "$(label "$side"): loading $n records (RSS before: ${rss0} kB)"
	out=$("$LOADGEN" load -addr "127.0.0.1:${PORT[$side]}" -n "$n") || die "load into $(label "$side") failed"
	M_RATE=$(field rate "$out")
	settle "$pid"
	M_SETTLE=$SETTLED M_IDLE=$IDLE_CPU
	rss1=$(status_kb "$pid" VmRSS)
	hwm=$(status_kb "$pid" VmHWM)
	M_BPR=$(calc "($rss1 - $rss0) * 1024 / $n" 1)
	M_RSS_MB=$(calc "$rss1 / 1024" 1)
	M_HWM_MB=$(calc "$hwm / 1024" 1)
	log "  loaded at $M_RATE sets/s; idle after ${M_SETTLE}s (then ${M_IDLE}% CPU); RSS after: ${rss1} kB (peak $hwm kB) => $M_BPR bytes/record"
	for ((r = 1; r <= LATENCY_RUNS; r++)); do
		log "$(label "$side"): latency run $r/$LATENCY_RUNS ($LATENCY_GETS random gets of present keys, $LATENCY_CONNS conns)"
		out=$("$LOADGEN" latency -addr "127.0.0.1:${PORT[$side]}" -n "$n" -gets "$LATENCY_GETS" \
			-conns "$LATENCY_CONNS" -seed "$r") || die "latency run against $(label "$side") failed"
		log "  $out"
		p50s+="$(field p50_us "$out") "
		p99s+="$(field p99_us "$out") "
	done
	M_P50=$(median <<<"$p50s")
	M_P99=$(median <<<"$p99s")
	M_LAT_DETAIL="p99 runs: $p99s"
	stop_server "$side"
	M_GC=$("$LOADGEN" gcstats -file "${SLOG[$side]}")
	[[ $(impl "$side") == repcache ]] && log "  GC: $M_GC"
	return 0
}

section_memory() {
	local side
	declare -A bpr=() rss=() hwm=() rate=() idle=() icpu=() p50=() p99=() gcp99=() gcmax=() gcn=() det=()
	log "== memory: $RECORDS records, one server at a time"
	for side in "${SIDES[@]}"; do
		measure_load "$side" mem1 "$RECORDS" 4096
		bpr[$side]=$M_BPR rss[$side]=$M_RSS_MB hwm[$side]=$M_HWM_MB rate[$side]=$M_RATE idle[$side]=$M_SETTLE icpu[$side]=$M_IDLE
		p50[$side]=$M_P50 p99[$side]=$M_P99 det[$side]=$M_LAT_DETAIL
		gcn[$side]=$(field count "$M_GC") gcp99[$side]=$(field p99_ms "$M_GC") gcmax[$side]=$(field max_ms "$M_GC")
	done
	local N=$RECORDS
	record memory "bytes/record at N=$N (VmRSS delta / N)" B "${bpr[cand]:-}" "${bpr[base]}" "cand<=101"
	record memory "VmRSS after loading $N" MB "${rss[cand]:-}" "${rss[base]}"
	record memory "VmHWM (peak RSS) after loading $N" MB "${hwm[cand]:-}" "${hwm[base]}"
	record memory "load rate, $N pipelined noreply sets" sets/s "${rate[cand]:-}" "${rate[base]}"
	record memory "busy time after the load (CPU > ${SETTLE_CPU_PCT}%)" s "${idle[cand]:-}" "${idle[base]}"
	record memory "CPU while idle after the load (${IDLE_SECONDS}s)" % "${icpu[cand]:-}" "${icpu[base]}"
	record memory "get p50 at N=$N (median of $LATENCY_RUNS)" us "${p50[cand]:-}" "${p50[base]}"
	record memory "get p99 at N=$N (median of $LATENCY_RUNS)" us "${p99[cand]:-}" "${p99[base]}" "" \
		"$CAND_LABEL ${det[cand]:-} memcached ${det[base]}"
	if [[ $BENCH_CANDIDATE == repcache ]]; then
		record memory "GC pause p99 at N=$N (load+gets)" ms "${gcp99[cand]}" NA "" "cycles: ${gcn[cand]}, max ${gcmax[cand]} ms"
	fi

	if ((RECORDS_BIG <= 0)); then
		log "RECORDS_BIG=0: skipping the scale part"
		return 0
	fi
	local big_sides=()
	for side in "${SIDES[@]}"; do
		[[ $side == base && $MEMCACHED_BIG != 1 ]] && continue
		big_sides+=("$side")
	done
	declare -A bbpr=() brss=() brate=() bidle=() bicpu=() bp50=() bp99=() bgcp99=() bgcmax=() bgcn=() bdet=()
	log "== memory at scale: $RECORDS_BIG records (${big_sides[*]/cand/$CAND_LABEL})"
	for side in "${big_sides[@]}"; do
		measure_load "$side" mem2 "$RECORDS_BIG" 8192
		bbpr[$side]=$M_BPR brss[$side]=$M_RSS_MB brate[$side]=$M_RATE bidle[$side]=$M_SETTLE bicpu[$side]=$M_IDLE
		bp50[$side]=$M_P50 bp99[$side]=$M_P99 bdet[$side]=$M_LAT_DETAIL
		bgcn[$side]=$(field count "$M_GC") bgcp99[$side]=$(field p99_ms "$M_GC") bgcmax[$side]=$(field max_ms "$M_GC")
	done
	N=$RECORDS_BIG
	record scale "bytes/record at N=$N" B "${bbpr[cand]:-}" "${bbpr[base]:-}"
	record scale "VmRSS after loading $N" MB "${brss[cand]:-}" "${brss[base]:-}"
	record scale "load rate, $N pipelined noreply sets" sets/s "${brate[cand]:-}" "${brate[base]:-}"
	record scale "busy time after the load (CPU > ${SETTLE_CPU_PCT}%)" s "${bidle[cand]:-}" "${bidle[base]:-}"
	record scale "CPU while idle after the load (${IDLE_SECONDS}s)" % "${bicpu[cand]:-}" "${bicpu[base]:-}"
	if [[ $BENCH_CANDIDATE == repcache ]]; then
		record scale "GC pause p99 at N=$N (load+gets)" ms "${bgcp99[cand]}" NA "cand<1" "cycles: ${bgcn[cand]}"
		record scale "GC pause max at N=$N (load+gets)" ms "${bgcmax[cand]}" NA
		record scale "GC cycles at N=$N (load+gets)" count "${bgcn[cand]}" NA
	fi
	record scale "get p50 at N=$N (median of $LATENCY_RUNS)" us "${bp50[cand]:-}" "${bp50[base]:-}"
	record scale "get p99 at N=$N (median of $LATENCY_RUNS)" us "${bp99[cand]:-}" "${bp99[base]:-}" "" \
		"$CAND_LABEL ${bdet[cand]:-} memcached ${bdet[base]:-}"
	local rc=NA rb=NA
	[[ -n ${bp99[cand]:-} && -n ${p99[cand]:-} ]] && rc=$(calc "${bp99[cand]} / ${p99[cand]}" 3)
	[[ -n ${bp99[base]:-} && -n ${p99[base]:-} ]] && rb=$(calc "${bp99[base]} / ${p99[base]}" 3)
	record scale "get p99 ratio N=$N / N=$RECORDS (each server)" x "$rc" "$rb" "cand<=1.20"
}

# ---------------------------------------------------------------- report
machine_info() {
	CPU_MODEL=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
	NPROC=$(nproc)
	KERNEL=$(uname -r)
	GO_VERSION=$(go env GOVERSION)
	MEMCACHED_VERSION=$(memcached -V 2>&1 | awk '{print $2}')
	POSTFIX_VERSION=$(postconf -h mail_version 2>/dev/null || echo NA)
	MEMCASLAP_VERSION=$(memcaslap -V 2>&1 | awk '{print $2; exit}' || echo NA)
	LOADAVG_END=$(cut -d' ' -f1-3 /proc/loadavg)
	GIT_REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo none)
	[[ -n $(git -C "$ROOT" status --porcelain -- cmd internal go.mod 2>/dev/null) ]] && GIT_REV+="+dirty"
	REPCACHE_VERSION=NA
	[[ $BENCH_CANDIDATE == repcache ]] && REPCACHE_VERSION=$("$REPCACHE_BIN" version 2>&1 | head -1 || echo NA)
	MEM_TOTAL_GB=$(awk '/^MemTotal:/ {printf "%.1f", $2 / 1048576}' /proc/meminfo)
}

json_str() { local s=${1//\\/\\\\}; s=${s//\"/\\\"}; s=${s//$'\t'/ }; printf '"%s"' "$s"; }
json_num() { if [[ $1 == NA || -z $1 ]]; then printf null; else printf '%s' "$1"; fi; }

report() {
	machine_info
	local txt=$RUN/results.txt json=$RUN/results.json
	{
		printf 'repcache benchmark  %s  (%s)\n' "$(date -Iseconds)" "$COMMAND_LINE"
		printf 'machine: %s CPUs, %s, %s GB RAM, Linux %s; %s, memcached %s, postfix %s\n' \
			"$NPROC" "$CPU_MODEL" "$MEM_TOTAL_GB" "$KERNEL" "$GO_VERSION" "$MEMCACHED_VERSION" "$POSTFIX_VERSION"
		printf 'repcache: %s (tree %s); load average at start %s, at end %s\n' \
			"$REPCACHE_VERSION" "$GIT_REV" "$LOADAVG_START" "$LOADAVG_END"
		[[ $BENCH_CANDIDATE == memcached ]] && printf 'SELF-TEST: memcached* (memcached %s) stands in for repcache\n' "$MEMCACHED_VERSION"
		[[ $BENCH_CANDIDATE == none ]] && printf 'repcache not run (BENCH_CANDIDATE=none)\n'
		printf '\n'
		awk -F'\t' -v cl="$CAND_LABEL" '
			BEGIN { printf "%-9s  %-52s  %-6s  %12s  %12s  %7s  %-12s  %s\n", "section", "metric", "unit", cl, "memcached", "ratio", "target", "verdict"
			        printf "%-9s  %-52s  %-6s  %12s  %12s  %7s  %-12s  %s\n", "-------", "------", "----", "--------", "---------", "-----", "------", "-------" }
			{ c = ($4 == "NA") ? "" : $4; b = ($5 == "NA") ? "" : $5; r = ($6 == "NA") ? "" : $6
			  t = ($7 == "-") ? "" : $7; v = ($8 == "-") ? "" : $8
			  printf "%-9s  %-52s  %-6s  %12s  %12s  %7s  %-12s  %s\n", $1, $2, $3, c, b, r, t, v }' "$TSV"
		printf '\nratio = %s / memcached. targets: "ratio" compares the two, "cand" is %s alone.\n' "$CAND_LABEL" "$CAND_LABEL"
	} >"$txt"
	{
		printf '{\n  "date": %s,\n  "command": %s,\n  "candidate": %s,\n' \
			"$(json_str "$(date -Iseconds)")" "$(json_str "$COMMAND_LINE")" "$(json_str "$BENCH_CANDIDATE")"
		printf '  "repcache_version": %s,\n  "tree": %s,\n  "loadavg_start": %s,\n  "loadavg_end": %s,\n' \
			"$(json_str "$REPCACHE_VERSION")" "$(json_str "$GIT_REV")" "$(json_str "$LOADAVG_START")" "$(json_str "$LOADAVG_END")"
		printf '  "machine": {"nproc": %s, "cpu": %s, "mem_gb": %s, "kernel": %s, "go": %s, "memcached": %s, "postfix": %s, "memcaslap": %s},\n' \
			"$NPROC" "$(json_str "$CPU_MODEL")" "$MEM_TOTAL_GB" "$(json_str "$KERNEL")" "$(json_str "$GO_VERSION")" \
			"$(json_str "$MEMCACHED_VERSION")" "$(json_str "$POSTFIX_VERSION")" "$(json_str "$MEMCASLAP_VERSION")"
		printf '  "config": {"bench_seconds": %s, "bench_runs": %s, "postmap_keys": %s, "postmap_runs": %s, "records": %s, "records_big": %s, "memcached_big": %s, "latency_gets": %s, "latency_conns": %s, "latency_runs": %s, "settle_max": %s, "settle_cpu_pct": %s, "idle_seconds": %s, "repcache_max_bytes": %s, "repcache_args": %s},\n' \
			"$BENCH_SECONDS" "$BENCH_RUNS" "$POSTMAP_KEYS" "$POSTMAP_RUNS" "$RECORDS" "$RECORDS_BIG" "$MEMCACHED_BIG" \
			"$LATENCY_GETS" "$LATENCY_CONNS" "$LATENCY_RUNS" "$SETTLE_MAX" "$SETTLE_CPU_PCT" "$IDLE_SECONDS" "$(json_str "$REPCACHE_MAX_BYTES")" "$(json_str "$REPCACHE_ARGS")"
		printf '  "results": [\n'
		local first=1 section metric unit c b r target verdict detail
		while IFS=$'\t' read -r section metric unit c b r target verdict detail; do
			((first)) || printf ',\n'
			[[ $target == - ]] && target=
			[[ $verdict == - ]] && verdict=
			[[ $detail == - ]] && detail=
			first=0
			printf '    {"section": %s, "metric": %s, "unit": %s, "repcache": %s, "memcached": %s, "ratio": %s, "target": %s, "verdict": %s, "detail": %s}' \
				"$(json_str "$section")" "$(json_str "$metric")" "$(json_str "$unit")" "$(json_num "$c")" "$(json_num "$b")" \
				"$(json_num "$r")" "$(json_str "$target")" "$(json_str "$verdict")" "$(json_str "$detail")"
		done <"$TSV"
		printf '\n  ]\n}\n'
	} >"$json"
	cp "$txt" "$RESULTS/latest.txt"
	cp "$json" "$RESULTS/latest.json"
	cat "$txt"
	log "results: $RESULTS/latest.txt, $RESULTS/latest.json (logs: $RUN)"
}

START=$SECONDS
LOADAVG_START=$(cut -d' ' -f1-3 /proc/loadavg)
log "sections: ${SECTIONS[*]}; candidate: $CAND_LABEL; logs: $RUN"
for s in "${SECTIONS[@]}"; do "section_$s"; done
report
log "done in $((SECONDS - START))s"
