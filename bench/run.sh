#!/usr/bin/env bash
# bench/run.sh — repcache vs memcached, side by side, in one run.
#
# usage: bench/run.sh [memcaslap] [postmap] [memory] [tiers] [engines]   (default: all)
#
# Sections:
#   memcaslap  memcaslap -T 2 -c 32, 90% get / 10% set, 20-byte keys,
#              24-byte values, fixed duration; runs alternate between the
#              servers; median ops/s.
#   postmap    real Postfix client: postmap -q - memcache:... over
#              POSTMAP_KEYS IPs, half of them preloaded; median wall time,
#              unpinned, all on one CPU, and postmap and server on
#              different CPUs.
#   memory     loadgen loads RECORDS postscreen records into a fresh server:
#              RSS bytes/record, get latency, Go GC pauses; then the same at
#              RECORDS_BIG (10M) and the 10M/1M get-latency ratio.
#   tiers      memcached direct vs repcache -> memcached vs twemproxy ->
#              memcached (each with its own fresh memcached): postmap wall
#              time (unpinned, and pinned: all on one CPU / postmap and
#              servers on different CPUs), memcaslap ops/s, proxy syscalls
#              and CPU per request; then set latency of repcache with a
#              sync Redis backup vs without a backup (loadgen setlatency).
#              Needs redis-server, redis-cli, nutcracker, taskset.
#   engines    the connection-engine evaluation: bench/ioengine's minimal
#              get/set over the embedded store, with a goroutine per
#              connection, with a gnet event loop and with goroutines that
#              wait on their own epoll set (hybrid), against memcached:
#              memcaslap, and postmap in every placement.
#
# Environment (defaults in brackets; BENCH_QUICK=1 switches to tiny sizes):
#   BENCH_SECONDS [20]      memcaslap duration per run
#   BENCH_RUNS [3]          memcaslap runs per server (alternating order)
#   POSTMAP_KEYS [50000]    IPs queried; every second one is preloaded
#   POSTMAP_RUNS [11]        timed postmap runs per server (after 1 warm-up)
#   POSTMAP_PINNED_RUNS [5]  the same per pinned placement (one CPU, split; 0 skips)
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
#   TIERS_SECONDS [15]      tiers: memcaslap duration per run
#   TIERS_RUNS [3]          tiers: memcaslap runs per setup
#   TIERS_POSTMAP_RUNS [7]  tiers: unpinned postmap rounds (after 1 warm-up)
#   TIERS_PINNED_RUNS [3]   tiers: rounds per pinned postmap mode (0 skips)
#   TIERS_SETS [20000]      tiers: sets per set-latency run
#   TIERS_SET_CONNS [4]     tiers: set-latency connections, one set in flight
#   TIERS_SET_RUNS [5]      tiers: set-latency runs per setup
#   TIERS_MEMCACHED_MB [1024]  tiers: memcached -m (always with -I 2m)
#   BENCH_CANDIDATE [repcache]  repcache | memcached (harness self-test:
#                           memcached on both sides) | none (baseline only);
#                           tiers is skipped unless it is repcache
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
	: "${BENCH_SECONDS:=3}" "${BENCH_RUNS:=2}" "${POSTMAP_KEYS:=2000}" "${POSTMAP_RUNS:=3}" "${POSTMAP_PINNED_RUNS:=1}"
	: "${RECORDS:=100000}" "${RECORDS_BIG:=300000}" "${LATENCY_GETS:=20000}" "${LATENCY_RUNS:=1}"
	: "${TIERS_SECONDS:=3}" "${TIERS_RUNS:=1}" "${TIERS_POSTMAP_RUNS:=2}" "${TIERS_PINNED_RUNS:=1}"
	: "${TIERS_SETS:=2000}" "${TIERS_SET_RUNS:=1}"
fi
: "${BENCH_SECONDS:=20}" "${BENCH_RUNS:=3}" "${POSTMAP_KEYS:=50000}" "${POSTMAP_RUNS:=11}" "${POSTMAP_PINNED_RUNS:=5}"
: "${RECORDS:=1000000}" "${RECORDS_BIG:=10000000}" "${MEMCACHED_BIG:=1}"
: "${LATENCY_GETS:=200000}" "${LATENCY_CONNS:=4}" "${LATENCY_RUNS:=5}" "${SETTLE_MAX:=120}" "${SETTLE_CPU_PCT:=25}" "${IDLE_SECONDS:=5}"
: "${TIERS_SECONDS:=15}" "${TIERS_RUNS:=3}" "${TIERS_POSTMAP_RUNS:=7}" "${TIERS_PINNED_RUNS:=3}"
: "${TIERS_SETS:=20000}" "${TIERS_SET_CONNS:=4}" "${TIERS_SET_RUNS:=5}" "${TIERS_MEMCACHED_MB:=1024}"
: "${BENCH_CANDIDATE:=repcache}" "${REPCACHE_BIN:=}" "${REPCACHE_MAX_BYTES:=4GiB}" "${REPCACHE_ARGS:=}"
# repcache reads every REPCACHE_* variable as configuration: these are the
# harness's own, so the servers it starts must not inherit them.
export -n REPCACHE_BIN REPCACHE_MAX_BYTES REPCACHE_ARGS

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
die() {
	log "FATAL: $*"
	exit 1
}

ALL_SECTIONS=(memcaslap postmap memory tiers engines)
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
for s in postmap engines; do
	want $s || continue
	[[ -x $POSTMAP ]] || die "postmap not found (postfix)"
	command -v taskset >/dev/null || die "taskset not found (util-linux): the $s section pins postmap and the servers"
done
want engines && { command -v memcaslap >/dev/null || die "memcaslap not found (libmemcached-tools)"; }
if want tiers && [[ $BENCH_CANDIDATE == repcache ]]; then
	[[ -x $POSTMAP ]] || die "postmap not found (postfix)"
	command -v memcaslap >/dev/null || die "memcaslap not found (libmemcached-tools)"
	command -v nutcracker >/dev/null || die "nutcracker not found (Debian nutcracker)"
	for tool in redis-server redis-cli taskset; do command -v "$tool" >/dev/null || die "$tool not found"; done
fi

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

# --- build. The tree is noted now: the checkout may change during the run.
GIT_REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo none)
if [[ -n $(git -C "$ROOT" status --porcelain -- cmd internal go.mod 2>/dev/null) ]]; then GIT_REV+="+dirty"; fi
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
# Sides: cand (the candidate), base (memcached), and the engines section's
# goroutine, gnet and hybrid (bench/ioengine).
label() {
	case $1 in
	cand) echo "$CAND_LABEL" ;;
	base) echo memcached ;;
	*) echo "ioengine-$1" ;;
	esac
}
impl() {
	case $1 in
	cand) echo "$BENCH_CANDIDATE" ;;
	base) echo memcached ;;
	*) echo "$1" ;;
	esac
}

# start_server SIDE TAG MEMCACHED_MB GCTRACE(0|1): a fresh server on a free
# 127.0.0.1 port; sets PID[SIDE], PORT[SIDE], SLOG[SIDE].
start_server() {
	local side=$1 tag=$2 mb=$3 gctrace=$4 port pid logf try
	logf=$RUN/server-$tag-$side.log
	for try in 1 2 3; do
		port=$("$LOADGEN" freeport)
		case $(impl "$side") in
		goroutine | gnet | hybrid)
			"$IOENGINE" -engine "$(impl "$side")" -listen "127.0.0.1:$port" >"$logf" 2>&1 &
			;;
		repcache)
			local godebug=${GODEBUG:-}
			((gctrace)) && godebug=${godebug:+$godebug,}gctrace=1
			# shellcheck disable=SC2086 # REPCACHE_ARGS is word-split on purpose
			GODEBUG=$godebug "$REPCACHE_BIN" --listen "127.0.0.1:$port" --admin.listen "" \
				--cache.memory.max_bytes "$REPCACHE_MAX_BYTES" $REPCACHE_ARGS >"$logf" 2>&1 &
			;;
		*)
			memcached "${MEMCACHED_USER[@]}" -l 127.0.0.1 -p "$port" -U 0 -t 2 -m "$mb" >"$logf" 2>&1 &
			;;
		esac
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

# io_ops PID: read + write system calls of PID so far (/proc/PID/io; the
# read and write families: sendmsg, which memcached answers with, is not
# counted there).
io_ops() { awk '/^syscr:|^syscw:/ {n += $2} END {print n}' "/proc/$1/io"; }

# ctx_switches PID: context switches of all of PID's threads so far.
ctx_switches() { cat /proc/"$1"/task/*/status 2>/dev/null | awk '/ctxt_switches/ {n += $2} END {print n}'; }

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

# record SECTION METRIC UNIT CAND BASE TARGET DETAIL [CAND_LABEL BASE_LABEL]
# TARGET: "ratio>=X", "ratio<=X", "cand<=X", "cand<X" or "" (information only).
# The ratio is CAND/BASE; NA when either is missing. The labels name what
# the two values are (default: the candidate and memcached).
record() {
	local section=$1 metric=$2 unit=$3 cand=${4:-NA} base=${5:-NA} target=${6:-} detail=${7:-}
	local cl=${8:-$CAND_LABEL} bl=${9:-memcached}
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
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$section" "$metric" "$unit" "$cand" "$base" "$ratio" \
		"${target:--}" "${verdict:--}" "${detail:--}" "$cl" "$bl" >>"$TSV"
	log "result: $section / $metric: $cl=$cand $bl=$base ratio=$ratio ${verdict:+[$target: $verdict]}"
}

# ---------------------------------------------------------------- memcaslap
MEMCASLAP_CFG=
# memcaslap_rounds SIDE...: BENCH_RUNS memcaslap runs on each running
# server, rotating their order; appends each run's ops/s to OPS[SIDE] and
# sets PER_OP[SIDE] to the server's "CPU-us context-switches read+write-
# syscalls" per request over all its runs.
declare -A OPS=() PER_OP=()
memcaslap_rounds() {
	if [[ -z $MEMCASLAP_CFG ]]; then
		MEMCASLAP_CFG=$RUN/memcaslap.cfg
		cat >"$MEMCASLAP_CFG" <<'EOF'
# memcaslap -F: key length min max proportion / value length ... / cmd type proportion (0 set, 1 get)
key
20 20 1
value
24 24 1
cmd
0 0.1
1 0.9
EOF
	fi
	local sides=("$@") i j side order n=0 total=$((BENCH_RUNS * $#)) out tps pid t0 c0 i0 nops
	declare -A ticks=() csw=() rw=() reqs=()
	for ((i = 1; i <= BENCH_RUNS; i++)); do
		# rotate which server goes first: A B C, B C A, C A B, ...
		order=()
		for ((j = 0; j < $#; j++)); do order+=("${sides[(i - 1 + j) % $#]}"); done
		for side in "${order[@]}"; do
			n=$((n + 1))
			out=$RUN/memcaslap-$side-$i.out
			log "memcaslap [$n/$total] $(label "$side") run $i (${BENCH_SECONDS}s)"
			pid=${PID[$side]} t0=$(cpu_ticks "${PID[$side]}") c0=$(ctx_switches "${PID[$side]}") i0=$(io_ops "${PID[$side]}")
			timeout $((BENCH_SECONDS + 120)) memcaslap -s "127.0.0.1:${PORT[$side]}" -T 2 -c 32 \
				-F "$MEMCASLAP_CFG" -t "${BENCH_SECONDS}s" >"$out" 2>&1 || die "memcaslap failed, see $out"
			ticks[$side]=$((${ticks[$side]:-0} + $(cpu_ticks "$pid") - t0))
			csw[$side]=$((${csw[$side]:-0} + $(ctx_switches "$pid") - c0))
			rw[$side]=$((${rw[$side]:-0} + $(io_ops "$pid") - i0))
			tps=$(awk '/^Run time:/ {for (i = 1; i <= NF; i++) if ($i == "TPS:") print $(i + 1)}' "$out" | tail -1)
			nops=$(awk '/^Run time:/ {for (i = 1; i <= NF; i++) if ($i == "Ops:") print $(i + 1)}' "$out" | tail -1)
			[[ $tps =~ ^[0-9]+$ && $tps -gt 0 && $nops =~ ^[0-9]+$ ]] || die "no TPS in memcaslap output, see $out"
			reqs[$side]=$((${reqs[$side]:-0} + nops))
			log "  $tps ops/s"
			OPS[$side]+="$tps "
		done
	done
	for side in "${sides[@]}"; do
		PER_OP[$side]="$(calc "${ticks[$side]} * 1000000 / $CLK_TCK / ${reqs[$side]}" 2) $(calc "${csw[$side]} / ${reqs[$side]}" 3) $(calc "${rw[$side]} / ${reqs[$side]}" 2)"
	done
}

# record_per_op SECTION SIDE BASE [LABEL BASELABEL]: the per-request costs
# memcaslap_rounds measured, SIDE against BASE.
record_per_op() {
	local a b what i
	read -ra a <<<"${PER_OP[$2]}"
	read -ra b <<<"${PER_OP[$3]}"
	what=("server CPU per request" "server context switches per request" "server read+write syscalls per request (memcached's sendmsg not counted)")
	local units=(us count count)
	for i in 0 1 2; do
		record "$1" "memcaslap: ${what[$i]}${4:+ [$4/${5:-memcached}]}" "${units[$i]}" "${a[$i]}" "${b[$i]}" "" "" "${4:-$CAND_LABEL}" "${5:-memcached}"
	done
}

section_memcaslap() {
	log "== memcaslap: -T 2 -c 32, get 0.9 / set 0.1, key 20 B, value 24 B, ${BENCH_SECONDS}s x $BENCH_RUNS runs per server"
	local side
	for side in "${SIDES[@]}"; do start_server "$side" memcaslap 4096 0; done
	memcaslap_rounds "${SIDES[@]}"
	for side in "${SIDES[@]}"; do stop_server "$side"; done
	record memcaslap "ops/s (median of $BENCH_RUNS, ${BENCH_SECONDS}s each)" ops/s \
		"$(median <<<"${OPS[cand]:-}")" "$(median <<<"${OPS[base]}")" "ratio>=1.00" \
		"$CAND_LABEL: ${OPS[cand]:-} memcached: ${OPS[base]}"
	[[ -n ${PER_OP[cand]:-} ]] && record_per_op memcaslap cand base
}

# ---------------------------------------------------------------- postmap
# postmap_prepare SIDE: preload every second of the POSTMAP_KEYS IPs into
# the running server SIDE and write its Postfix table config.
postmap_prepare() {
	local side=$1 dir=$RUN/postfix-$1
	[[ -s $RUN/postmap-keys.txt ]] || "$LOADGEN" keys -n "$POSTMAP_KEYS" >"$RUN/postmap-keys.txt"
	# every second key (indexes 0, 2, 4, ...) is present: hits and misses interleave
	"$LOADGEN" load -q -addr "127.0.0.1:${PORT[$side]}" -n "$(((POSTMAP_KEYS + 1) / 2))" -stride 2 >/dev/null ||
		die "preload of $(label "$side") failed"
	mkdir -p "$dir"
	# postmap -c needs a main.cf; compatibility_level avoids backwards-
	# compatibility warnings. The table path must be absolute: a relative
	# memcache:name is taken as a main.cf parameter prefix.
	printf 'compatibility_level = 3.6\n' >"$dir/main.cf"
	printf 'memcache = inet:127.0.0.1:%s\nkey_format = postscreen:%%s\n' "${PORT[$side]}" >"$dir/postscreen.cf"
}

# Placements of postmap and the servers (the tiers section has the same
# three): free: nothing pinned; one: postmap and the server on CPU 0;
# split: postmap on CPU 0, the server on CPU 1.
declare -A PLACEMENT=([free]="unpinned" [one]="all on CPU 0" [split]="postmap CPU 0, server CPU 1")

# postmap_rounds MODE RUNS SIDE...: 1 warm-up and RUNS timed postmap runs
# against each prepared server, rotating their order, in placement MODE;
# sets WALL[SIDE] to the timed runs' seconds.
declare -A WALL=()
postmap_rounds() {
	local mode=$1 runs=$2 side i j order tset=() all_cpus preload=$(((POSTMAP_KEYS + 1) / 2))
	shift 2
	local sides=("$@") n=0 total=$(((runs + 1) * $#)) dir out t0 t1 secs lines
	all_cpus=$(taskset -p $$ | awk '{print $NF}')
	for side in "${sides[@]}"; do
		WALL[$side]=
		case $mode in
		one) pin 1 "${PID[$side]}" ;;
		split) pin 2 "${PID[$side]}" ;;
		esac
	done
	[[ $mode == free ]] || tset=(taskset -c 0)
	for ((i = 0; i <= runs; i++)); do
		order=()
		for ((j = 0; j < $#; j++)); do order+=("${sides[(i + j) % $#]}"); done
		for side in "${order[@]}"; do
			n=$((n + 1))
			dir=$RUN/postfix-$side
			out=$RUN/postmap-$side.out
			t0=$EPOCHREALTIME
			"${tset[@]}" "$POSTMAP" -c "$dir" -q - "memcache:$dir/postscreen.cf" <"$RUN/postmap-keys.txt" >"$out" 2>"$out.err" ||
				die "postmap against $(label "$side") failed: $(tail -2 "$out.err")"
			t1=$EPOCHREALTIME
			secs=$(calc "$t1 - $t0" 4)
			lines=$(grep -c $'\t1795673021;1;1;1;1$' "$out" || true)
			[[ $lines == "$preload" && $(wc -l <"$out") == "$preload" ]] ||
				die "postmap against $(label "$side") printed $lines hits / $(wc -l <"$out") lines, expected $preload"
			if ((i == 0)); then
				log "postmap $mode [$n/$total] $(label "$side") warm-up: ${secs}s, $lines hits (not counted)"
			else
				log "postmap $mode [$n/$total] $(label "$side") run $i: ${secs}s, $lines hits"
				WALL[$side]+="$secs "
			fi
		done
	done
	if [[ $mode != free ]]; then
		for side in "${sides[@]}"; do pin "$all_cpus" "${PID[$side]}"; done
	fi
}

# postmap_placements SIDE...: postmap_rounds in each placement
# (POSTMAP_RUNS unpinned, POSTMAP_PINNED_RUNS pinned), calling
# "postmap_record MODE RUNS" after each.
postmap_placements() {
	local mode runs
	for mode in free one split; do
		runs=$POSTMAP_RUNS
		[[ $mode == free ]] || runs=$POSTMAP_PINNED_RUNS
		((runs > 0)) || continue
		postmap_rounds "$mode" "$runs" "$@"
		postmap_record "$mode" "$runs"
	done
}

section_postmap() {
	local side
	log "== postmap: $POSTMAP_KEYS lookups (postmap -q -), every second one preloaded; 1 warm-up + $POSTMAP_RUNS timed runs unpinned, $POSTMAP_PINNED_RUNS per pinned placement"
	for side in "${SIDES[@]}"; do
		start_server "$side" postmap 4096 0
		postmap_prepare "$side"
	done
	postmap_record() {
		record postmap "wall time, $POSTMAP_KEYS lookups, ${PLACEMENT[$1]} (median of $2)" s \
			"$(median <<<"${WALL[cand]:-}")" "$(median <<<"${WALL[base]}")" "ratio<=1.10" \
			"$CAND_LABEL: ${WALL[cand]:-} memcached: ${WALL[base]}"
	}
	postmap_placements "${SIDES[@]}"
	for side in "${SIDES[@]}"; do stop_server "$side"; done
}

# ---------------------------------------------------------------- engines
# The connection-engine evaluation (issue 10): bench/ioengine serves one
# minimal get/set code path over repcache's embedded store with a goroutine
# per connection, with a gnet event loop, and with goroutines that wait on
# an epoll set of their own (hybrid); memcached is the yardstick.
section_engines() {
	local sides=(goroutine gnet hybrid base) side
	log "== engines: bench/ioengine goroutine per connection vs gnet event loop vs hybrid vs memcached (memcaslap; postmap in every placement)"
	IOENGINE=$TMP/ioengine
	(cd "$ROOT/bench/ioengine" && go build -o "$IOENGINE" .) || die "ioengine build failed"
	for side in "${sides[@]}"; do start_server "$side" engines 4096 0; done
	for side in "${sides[@]}"; do OPS[$side]=; done
	memcaslap_rounds "${sides[@]}"
	for side in goroutine gnet hybrid; do
		record engines "memcaslap ops/s, median of $BENCH_RUNS [$side/memcached]" ops/s \
			"$(median <<<"${OPS[$side]}")" "$(median <<<"${OPS[base]}")" "" "$side: ${OPS[$side]} memcached: ${OPS[base]}" "$side" memcached
		record_per_op engines "$side" base "$side" memcached
	done
	for side in "${sides[@]}"; do postmap_prepare "$side"; done
	postmap_record() {
		for side in goroutine gnet hybrid; do
			record engines "postmap s, ${PLACEMENT[$1]}, median of $2 [$side/memcached]" s \
				"$(median <<<"${WALL[$side]}")" "$(median <<<"${WALL[base]}")" "" "$side: ${WALL[$side]} memcached: ${WALL[base]}" "$side" memcached
		done
	}
	postmap_placements "${sides[@]}"
	for side in "${sides[@]}"; do stop_server "$side"; done
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

# ---------------------------------------------------------------- tiers
# Three setups, each in front of its own fresh memcached (-I 2m, the same
# flags for all three): memcached direct, repcache -> memcached
# (cache.backend memcached, no backup) and twemproxy (nutcracker) ->
# memcached. Then repcache with a sync Redis backup against repcache without
# a backup, for set latency.

# spawn NAME KIND LAUNCHER [ARGS...]: run "LAUNCHER PORT ARGS..." in the
# background on a free 127.0.0.1 port (the launcher must exec the server, so
# that $! is the server's pid), wait until it answers (KIND memcache: a
# "version" round-trip; redis: PING), up to 3 tries. Sets PID[NAME],
# PORT[NAME], SLOG[NAME]; cleanup kills it on exit.
spawn() {
	local name=$1 kind=$2 launcher=$3 port pid logf try t
	shift 3
	logf=$RUN/server-tiers-$name.log
	for try in 1 2 3; do
		port=$("$LOADGEN" freeport)
		"$launcher" "$port" "$@" >"$logf" 2>&1 &
		pid=$!
		PID[$name]=$pid PORT[$name]=$port SLOG[$name]=$logf
		for ((t = 0; t < 40; t++)); do
			kill -0 "$pid" 2>/dev/null || break
			if [[ $kind == redis ]]; then
				[[ $(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null) == PONG ]] && return 0
				sleep 0.5
			else
				"$LOADGEN" wait -addr "127.0.0.1:$port" -timeout 500ms 2>/dev/null && kill -0 "$pid" 2>/dev/null && return 0
			fi
		done
		log "$name did not come up on port $port (try $try); log tail:"
		tail -5 "$logf" >&2 || true
		stop_server "$name"
	done
	die "cannot start $name"
}

launch_memcached() { exec memcached "${MEMCACHED_USER[@]}" -l 127.0.0.1 -p "$1" -U 0 -t 2 -m "$TIERS_MEMCACHED_MB" -I 2m; }

# launch_repcache PORT MEMCACHED_PORT [REDIS_PORT [CONFIG]]
launch_repcache() {
	local args=(--listen "127.0.0.1:$1" --admin.listen "" --cache.backend memcached --cache.memcached.servers "127.0.0.1:$2")
	[[ -n ${3:-} ]] && args+=(--backup.backend redis --backup.redis.addrs "127.0.0.1:$3")
	[[ -n ${4:-} ]] && args=(--config "$4" "${args[@]}")
	# shellcheck disable=SC2086 # REPCACHE_ARGS is word-split on purpose
	exec "$REPCACHE_BIN" "${args[@]}" $REPCACHE_ARGS
}

# launch_nutcracker PORT MEMCACHED_PORT: a one-server ketama pool. The stats
# listener (default 0.0.0.0:22222) is moved to a free 127.0.0.1 port.
launch_nutcracker() {
	local cfg=$RUN/nutcracker.yml stats
	stats=$("$LOADGEN" freeport)
	cat >"$cfg" <<EOF
tiers:
  listen: 127.0.0.1:$1
  hash: fnv1a_64
  distribution: ketama
  servers:
    - 127.0.0.1:$2:1
  preconnect: true
  auto_eject_hosts: false
EOF
	nutcracker -t -c "$cfg" || exit 1
	exec nutcracker -c "$cfg" -o "$RUN/nutcracker.log" -s "$stats" -a 127.0.0.1
}

launch_redis() {
	mkdir -p "$TMP/redis-$1"
	# AOF with fsync once a second (Redis's recommended durable setting);
	# no RDB snapshots during the runs.
	exec redis-server --port "$1" --bind 127.0.0.1 --dir "$TMP/redis-$1" --save "" \
		--appendonly yes --appendfsync everysec --daemonize no
}

# pin MASK PID...: CPU affinity of every thread of each PID.
pin() {
	local p
	for p in "${@:2}"; do taskset -a -p "$1" "$p" >/dev/null || die "taskset -a -p $1 $p failed"; done
}

# mc_stat PORT NAME: one value of a memcached's "stats" (NA if absent).
mc_stat() {
	local fd v
	exec {fd}<>"/dev/tcp/127.0.0.1/$1" || return 1
	printf 'stats\r\nquit\r\n' >&"$fd"
	v=$(timeout 5 cat <&"$fd" | tr -d '\r' | awk -v k="$2" '$1 == "STAT" && $2 == k {print $3}')
	exec {fd}<&-
	echo "${v:-NA}"
}


section_tiers() {
	if [[ $BENCH_CANDIDATE != repcache ]]; then
		log "== tiers: skipped (needs repcache; BENCH_CANDIDATE=$BENCH_CANDIDATE)"
		return 0
	fi
	local preload=$(((POSTMAP_KEYS + 1) / 2)) keys=$RUN/tiers-postmap-keys.txt
	local setups=(direct repcache twemproxy) s
	declare -A desc=([direct]="memcached direct" [repcache]="repcache -> memcached" [twemproxy]="twemproxy -> memcached")
	declare -A chain=()
	log "== tiers: memcached direct, repcache -> memcached, twemproxy -> memcached (one fresh memcached -I 2m each)"
	spawn mc-direct memcache launch_memcached
	spawn mc-repcache memcache launch_memcached
	spawn mc-twemproxy memcache launch_memcached
	spawn repcache memcache launch_repcache "${PORT[mc-repcache]}"
	spawn twemproxy memcache launch_nutcracker "${PORT[mc-twemproxy]}"
	declare -A addr=([direct]=127.0.0.1:${PORT[mc-direct]} [repcache]=127.0.0.1:${PORT[repcache]} [twemproxy]=127.0.0.1:${PORT[twemproxy]})
	chain=([direct]="${PID[mc-direct]}" [repcache]="${PID[repcache]} ${PID[mc-repcache]}" [twemproxy]="${PID[twemproxy]} ${PID[mc-twemproxy]}")
	local all_cpus
	all_cpus=$(taskset -p $$ | awk '{print $NF}')

	# --- postmap: the existing section's workload, through each setup.
	"$LOADGEN" keys -n "$POSTMAP_KEYS" >"$keys"
	local dir
	for s in "${setups[@]}"; do
		"$LOADGEN" load -q -addr "${addr[$s]}" -n "$preload" -stride 2 >/dev/null || die "preload through ${desc[$s]} failed"
		dir=$RUN/tiers-postfix-$s
		mkdir -p "$dir"
		printf 'compatibility_level = 3.6\n' >"$dir/main.cf"
		printf 'memcache = inet:%s\nkey_format = postscreen:%%s\n' "${addr[$s]}" >"$dir/t.cf"
	done
	# tiers_postmap SETUP MODE: one timed postmap run; prints the seconds,
	# and the read+write syscalls and CPU microseconds per lookup of the
	# setup's front process (the proxy; memcached itself when direct).
	# MODE free: nothing pinned; one: postmap and the setup's processes all
	# on CPU 0; split: postmap on CPU 0, the setup's processes on CPU 1.
	tiers_postmap() {
		local s=$1 mode=$2 dir=$RUN/tiers-postfix-$1 out=$RUN/tiers-postmap-$1.out t0 t1 lines tset=()
		local front=${chain[$1]%% *} io0 io1 tk0 tk1
		# shellcheck disable=SC2086 # chain holds a list of pids
		case $mode in
		one) pin 1 ${chain[$s]} && tset=(taskset -c 0) ;;
		split) pin 2 ${chain[$s]} && tset=(taskset -c 0) ;;
		esac
		io0=$(io_ops "$front") tk0=$(cpu_ticks "$front")
		t0=$EPOCHREALTIME
		"${tset[@]}" "$POSTMAP" -c "$dir" -q - "memcache:$dir/t.cf" <"$keys" >"$out" 2>"$out.err" ||
			die "postmap through ${desc[$s]} failed: $(tail -2 "$out.err")"
		t1=$EPOCHREALTIME
		io1=$(io_ops "$front") tk1=$(cpu_ticks "$front")
		# shellcheck disable=SC2086
		[[ $mode != free ]] && pin "$all_cpus" ${chain[$s]}
		lines=$(grep -c $'\t1795673021;1;1;1;1$' "$out" || true)
		[[ $lines == "$preload" && $(wc -l <"$out") == "$preload" ]] ||
			die "postmap through ${desc[$s]} printed $lines hits / $(wc -l <"$out") lines, expected $preload"
		printf '%s %s %s\n' "$(calc "$t1 - $t0" 4)" "$(calc "($io1 - $io0) / $POSTMAP_KEYS" 2)" \
			"$(calc "1e6 * ($tk1 - $tk0) / $CLK_TCK / $POSTMAP_KEYS" 2)"
	}
	declare -A wall=() psys=() pcpu=()
	local modes=(free) mode runs first i n total order secs line
	((TIERS_PINNED_RUNS > 0)) && modes+=(one)
	((TIERS_PINNED_RUNS > 0 && $(nproc) >= 2)) && modes+=(split)
	for mode in "${modes[@]}"; do
		# one untimed warm-up round before the unpinned runs (the first
		# lookups after a start are often slow); the pinned modes follow
		# with warm servers and need none
		runs=$TIERS_POSTMAP_RUNS first=0
		[[ $mode != free ]] && runs=$TIERS_PINNED_RUNS first=1
		log "tiers postmap ($mode): $POSTMAP_KEYS lookups, $preload preloaded; $((1 - first)) warm-up + $runs timed rounds"
		n=0 total=$(((runs + 1 - first) * 3))
		for ((i = first; i <= runs; i++)); do
			# rotate the order: each setup goes first, second and third in turn
			order=("${setups[@]:i%3}" "${setups[@]:0:i%3}")
			for s in "${order[@]}"; do
				n=$((n + 1))
				line=$(tiers_postmap "$s" "$mode")
				secs=${line%% *}
				if ((i == 0)); then
					log "postmap/$mode [$n/$total] ${desc[$s]} warm-up: ${secs}s (not counted)"
				else
					log "postmap/$mode [$n/$total] ${desc[$s]} round $i: ${secs}s; ${desc[$s]%% *} process per lookup: $(cut -d' ' -f2 <<<"$line") read+write syscalls, $(cut -d' ' -f3 <<<"$line") CPU-us"
					wall[$s.$mode]+="$secs "
					psys[$s.$mode]+="$(cut -d' ' -f2 <<<"$line") " pcpu[$s.$mode]+="$(cut -d' ' -f3 <<<"$line") "
				fi
			done
		done
	done

	# --- memcaslap: the existing section's settings, through each setup.
	local cfg=$RUN/tiers-memcaslap.cfg out tps ops before after ticks0 ticks1
	cat >"$cfg" <<'EOF'
key
20 20 1
value
24 24 1
cmd
0 0.1
1 0.9
EOF
	declare -A tput=() sysc=() cpuus=() errs=() misses=() newconn=()
	local conns0 conns1
	log "tiers memcaslap: -T 2 -c 32, get 0.9 / set 0.1, key 20 B, value 24 B, ${TIERS_SECONDS}s x $TIERS_RUNS runs per setup"
	n=0 total=$((TIERS_RUNS * 3))
	for ((i = 0; i < TIERS_RUNS; i++)); do
		order=("${setups[@]:i%3}" "${setups[@]:0:i%3}")
		for s in "${order[@]}"; do
			n=$((n + 1))
			out=$RUN/tiers-memcaslap-$s-$((i + 1)).out
			log "memcaslap [$n/$total] ${desc[$s]} run $((i + 1)) (${TIERS_SECONDS}s)"
			local proxy=${chain[$s]%% *}
			conns0=$(mc_stat "${PORT[mc-$s]}" total_connections)
			before=$(io_ops "$proxy") ticks0=$(cpu_ticks "$proxy")
			timeout $((TIERS_SECONDS + 120)) memcaslap -s "${addr[$s]}" -T 2 -c 32 -F "$cfg" -t "${TIERS_SECONDS}s" >"$out" 2>&1 ||
				die "memcaslap through ${desc[$s]} failed, see $out"
			after=$(io_ops "$proxy") ticks1=$(cpu_ticks "$proxy")
			conns1=$(mc_stat "${PORT[mc-$s]}" total_connections)
			# connections the backend memcached accepted per second (minus our stats connection)
			newconn[$s]+="$(calc "($conns1 - $conns0 - 1) / $TIERS_SECONDS" 1) "
			tps=$(awk '/^Run time:/ {for (i = 1; i <= NF; i++) if ($i == "TPS:") print $(i + 1)}' "$out" | tail -1)
			ops=$(awk '/^Run time:/ {for (i = 1; i <= NF; i++) if ($i == "Ops:") print $(i + 1)}' "$out" | tail -1)
			[[ $tps =~ ^[0-9]+$ && $tps -gt 0 && $ops -gt 0 ]] || die "no TPS in memcaslap output, see $out"
			tput[$s]+="$tps "
			sysc[$s]+="$(calc "($after - $before) / $ops" 2) "
			cpuus[$s]+="$(calc "1e6 * ($ticks1 - $ticks0) / $CLK_TCK / $ops" 2) "
			# memcaslap prints "<fd REPLY" for every unexpected reply (e.g. SERVER_ERROR)
			errs[$s]=$((${errs[$s]:-0} + $(grep -c '^<[0-9]' "$out" || true)))
			misses[$s]=$((${misses[$s]:-0} + $(awk '/^get_misses:/ {n = $2} END {print n + 0}' "$out")))
			log "  $tps ops/s; ${desc[$s]%% *} process: $(calc "($after - $before) / $ops" 2) read+write syscalls and $(calc "1e6 * ($ticks1 - $ticks0) / $CLK_TCK / $ops" 2) CPU-us per request; backend memcached accepted $(calc "($conns1 - $conns0 - 1) / $TIERS_SECONDS" 1) connections/s (open now: $(($(mc_stat "${PORT[mc-$s]}" curr_connections) - 1))); error replies so far ${errs[$s]}, get misses ${misses[$s]}"
		done
	done
	for s in repcache twemproxy mc-direct mc-repcache mc-twemproxy; do stop_server "$s"; done

	# --- set latency: repcache + memcached cache, with and without a sync
	# Redis backup; the same config (map "plain", backup: sync) on both.
	local conf=$RUN/tiers-plain.yaml
	cat >"$conf" <<'EOF'
maps:
  - {name: plain, prefix: "plain:", kind: passthrough, backup: sync}
EOF
	log "tiers set latency: $TIERS_SETS sets of distinct plain: keys over $TIERS_SET_CONNS connections x $TIERS_SET_RUNS runs; sync Redis backup vs none"
	spawn redis redis launch_redis
	spawn mc-sync memcache launch_memcached
	spawn mc-nobackup memcache launch_memcached
	spawn repcache-sync memcache launch_repcache "${PORT[mc-sync]}" "${PORT[redis]}" "$conf"
	spawn repcache-nobackup memcache launch_repcache "${PORT[mc-nobackup]}" "" "$conf"
	local sides=(repcache-sync repcache-nobackup) k line
	declare -A p50=() p99=() p999=() pmax=() rate=()
	for s in "${sides[@]}"; do # warm-up: connection pools to memcached and Redis
		"$LOADGEN" setlatency -q -addr "127.0.0.1:${PORT[$s]}" -prefix plain: -n 1000 -start $((1 << 23)) \
			-conns "$TIERS_SET_CONNS" >/dev/null || die "set warm-up against $s failed"
	done
	for ((i = 0; i < TIERS_SET_RUNS; i++)); do
		order=("${sides[@]}")
		((i % 2)) && order=("${sides[1]}" "${sides[0]}")
		for s in "${order[@]}"; do
			k=0
			[[ $s == repcache-nobackup ]] && k=1
			line=$("$LOADGEN" setlatency -q -addr "127.0.0.1:${PORT[$s]}" -prefix plain: -n "$TIERS_SETS" \
				-start $(((2 * i + k) * TIERS_SETS)) -conns "$TIERS_SET_CONNS") || die "setlatency against $s failed"
			log "setlatency $s run $((i + 1)): $line"
			p50[$s]+="$(field p50_us "$line") " p99[$s]+="$(field p99_us "$line") "
			p999[$s]+="$(field p999_us "$line") " pmax[$s]+="$(field max_us "$line") " rate[$s]+="$(field rate "$line") "
		done
	done
	local dbsize want=$((TIERS_SET_RUNS * TIERS_SETS + 1000))
	dbsize=$(redis-cli -h 127.0.0.1 -p "${PORT[redis]}" dbsize)
	log "Redis holds $dbsize keys after $want sync-backed sets"
	((dbsize >= want)) || die "Redis holds $dbsize keys, expected at least $want: the sync backup did not happen"
	for s in redis mc-sync mc-nobackup "${sides[@]}"; do stop_server "$s"; done

	# --- results. The two value columns hold the setups named in brackets.
	local m c b target
	for mode in "${modes[@]}"; do
		# issue 11: repcache <= 1.5 x direct in every CPU placement
		target='ratio<=1.50'
		case $mode in
		free) m="median of $TIERS_POSTMAP_RUNS, unpinned" ;;
		one) m="median of $TIERS_PINNED_RUNS, all on CPU 0" ;;
		split) m="median of $TIERS_PINNED_RUNS, postmap CPU 0, servers CPU 1" ;;
		esac
		b=$(median <<<"${wall[direct.$mode]}")
		c=$(median <<<"${wall[repcache.$mode]}")
		record tiers "postmap s, $m [repcache/direct]" s "$c" "$b" "$target" \
			"repcache: ${wall[repcache.$mode]} direct: ${wall[direct.$mode]}" repcache direct
		c=$(median <<<"${wall[twemproxy.$mode]}")
		record tiers "postmap s, $m [twemproxy/direct]" s "$c" "$b" "" \
			"twemproxy: ${wall[twemproxy.$mode]} direct: ${wall[direct.$mode]}" twemproxy direct
	done
	# the proxies' own cost per lookup, from the runs with everything on one
	# CPU (no cross-CPU wake-ups; the unpinned runs if that mode is off)
	mode=free
	[[ " ${modes[*]} " == *" one "* ]] && mode=one
	record tiers "postmap: proxy read+write syscalls per lookup ($mode) [repcache/twemproxy]" count \
		"$(median <<<"${psys[repcache.$mode]}")" "$(median <<<"${psys[twemproxy.$mode]}")" "ratio<=1.00" \
		"repcache: ${psys[repcache.$mode]} twemproxy: ${psys[twemproxy.$mode]}" repcache twemproxy
	record tiers "postmap: proxy CPU per lookup ($mode) [repcache/twemproxy]" us \
		"$(median <<<"${pcpu[repcache.$mode]}")" "$(median <<<"${pcpu[twemproxy.$mode]}")" "" \
		"repcache: ${pcpu[repcache.$mode]} twemproxy: ${pcpu[twemproxy.$mode]} (memcached direct: ${pcpu[direct.$mode]})" repcache twemproxy
	local mr md mt
	md=$(median <<<"${tput[direct]}") mr=$(median <<<"${tput[repcache]}") mt=$(median <<<"${tput[twemproxy]}")
	record tiers "memcaslap ops/s, median of $TIERS_RUNS [repcache/direct]" ops/s "$mr" "$md" "" \
		"repcache: ${tput[repcache]} direct: ${tput[direct]}" repcache direct
	record tiers "memcaslap ops/s, median of $TIERS_RUNS [twemproxy/direct]" ops/s "$mt" "$md" "" \
		"twemproxy: ${tput[twemproxy]} direct: ${tput[direct]}" twemproxy direct
	record tiers "memcaslap ops/s, median of $TIERS_RUNS [repcache/twemproxy]" ops/s "$mr" "$mt" "ratio>=1.20" \
		"repcache: ${tput[repcache]} twemproxy: ${tput[twemproxy]}" repcache twemproxy
	record tiers "memcaslap error replies, sum of $TIERS_RUNS runs [repcache/twemproxy]" count "${errs[repcache]}" "${errs[twemproxy]}" "" \
		"error replies: repcache ${errs[repcache]} twemproxy ${errs[twemproxy]} direct ${errs[direct]}; get misses: repcache ${misses[repcache]} twemproxy ${misses[twemproxy]} direct ${misses[direct]}" repcache twemproxy
	record tiers "memcaslap: proxy read+write syscalls per request [repcache/twemproxy]" count \
		"$(median <<<"${sysc[repcache]}")" "$(median <<<"${sysc[twemproxy]}")" "ratio<=1.00" \
		"repcache: ${sysc[repcache]} twemproxy: ${sysc[twemproxy]}" repcache twemproxy
	record tiers "memcaslap: new connections/s at the backend memcached [repcache/twemproxy]" 1/s \
		"$(median <<<"${newconn[repcache]}")" "$(median <<<"${newconn[twemproxy]}")" "" \
		"repcache: ${newconn[repcache]} twemproxy: ${newconn[twemproxy]} direct (memcaslap's own): ${newconn[direct]}" repcache twemproxy
	record tiers "memcaslap: proxy CPU per request [repcache/twemproxy]" us \
		"$(median <<<"${cpuus[repcache]}")" "$(median <<<"${cpuus[twemproxy]}")" "" \
		"repcache: ${cpuus[repcache]} twemproxy: ${cpuus[twemproxy]}" repcache twemproxy
	record tiers "set p50, median of $TIERS_SET_RUNS [sync Redis backup/no backup]" us \
		"$(median <<<"${p50[repcache-sync]}")" "$(median <<<"${p50[repcache-nobackup]}")" "" \
		"sync backup: ${p50[repcache-sync]} no backup: ${p50[repcache-nobackup]}" "repcache+redis" repcache
	record tiers "set p99, median of $TIERS_SET_RUNS [sync Redis backup/no backup]" us \
		"$(median <<<"${p99[repcache-sync]}")" "$(median <<<"${p99[repcache-nobackup]}")" "" \
		"sync backup: ${p99[repcache-sync]} no backup: ${p99[repcache-nobackup]}" "repcache+redis" repcache
	record tiers "set p99.9, median of $TIERS_SET_RUNS [sync Redis backup/no backup]" us \
		"$(median <<<"${p999[repcache-sync]}")" "$(median <<<"${p999[repcache-nobackup]}")" "" \
		"sync backup: ${p999[repcache-sync]} no backup: ${p999[repcache-nobackup]}; max: ${pmax[repcache-sync]} / ${pmax[repcache-nobackup]}" "repcache+redis" repcache
	record tiers "sets/s, $TIERS_SET_CONNS conns, median of $TIERS_SET_RUNS [sync Redis backup/no backup]" sets/s \
		"$(median <<<"${rate[repcache-sync]}")" "$(median <<<"${rate[repcache-nobackup]}")" "" \
		"sync backup: ${rate[repcache-sync]} no backup: ${rate[repcache-nobackup]}" "repcache+redis" repcache
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
	REPCACHE_VERSION=NA
	[[ $BENCH_CANDIDATE == repcache ]] && REPCACHE_VERSION=$("$REPCACHE_BIN" version 2>&1 | head -1 || echo NA)
	MEM_TOTAL_GB=$(awk '/^MemTotal:/ {printf "%.1f", $2 / 1048576}' /proc/meminfo)
	REDIS_VERSION=NA NUTCRACKER_VERSION=NA
	command -v redis-server >/dev/null && REDIS_VERSION=$(redis-server --version | sed -n 's/.* v=\([^ ]*\).*/\1/p')
	command -v nutcracker >/dev/null && NUTCRACKER_VERSION=$(nutcracker -V 2>&1 | sed -n 's/.*nutcracker-\([0-9.]*\).*/\1/p' | head -1)
}

json_str() { local s=${1//\\/\\\\}; s=${s//\"/\\\"}; s=${s//$'\t'/ }; printf '"%s"' "$s"; }
json_num() { if [[ $1 == NA || -z $1 ]]; then printf null; else printf '%s' "$1"; fi; }

report() {
	machine_info
	local txt=$RUN/results.txt json=$RUN/results.json
	{
		printf 'repcache benchmark  %s  (%s)\n' "$(date -Iseconds)" "$COMMAND_LINE"
		printf 'machine: %s CPUs, %s, %s GB RAM, Linux %s; %s, memcached %s, postfix %s, redis %s, nutcracker %s\n' \
			"$NPROC" "$CPU_MODEL" "$MEM_TOTAL_GB" "$KERNEL" "$GO_VERSION" "$MEMCACHED_VERSION" "$POSTFIX_VERSION" "$REDIS_VERSION" "$NUTCRACKER_VERSION"
		printf 'repcache: %s (tree %s); load average at start %s, at end %s\n' \
			"$REPCACHE_VERSION" "$GIT_REV" "$LOADAVG_START" "$LOADAVG_END"
		[[ $BENCH_CANDIDATE == memcached ]] && printf 'SELF-TEST: memcached* (memcached %s) stands in for repcache\n' "$MEMCACHED_VERSION"
		[[ $BENCH_CANDIDATE == none ]] && printf 'repcache not run (BENCH_CANDIDATE=none)\n'
		printf '\n'
		# two passes: the metric column is as wide as the longest metric
		awk -F'\t' -v cl="$CAND_LABEL" '
			NR == FNR { if (length($2) > w) w = length($2); next }
			FNR == 1 { if (w < 52) w = 52; f = "%-9s  %-" w "s  %-6s  %12s  %12s  %7s  %-12s  %s\n"
			           printf f, "section", "metric", "unit", cl, "memcached", "ratio", "target", "verdict"
			           printf f, "-------", "------", "----", "--------", "---------", "-----", "------", "-------" }
			{ c = ($4 == "NA") ? "" : $4; b = ($5 == "NA") ? "" : $5; r = ($6 == "NA") ? "" : $6
			  t = ($7 == "-") ? "" : $7; v = ($8 == "-") ? "" : $8
			  printf f, $1, $2, $3, c, b, r, t, v }
			END { if (!f) printf "(no results)\n" }' "$TSV" "$TSV"
		printf '\nratio = %s / memcached. targets: "ratio" compares the two, "cand" is %s alone.\n' "$CAND_LABEL" "$CAND_LABEL"
		if grep -q '^tiers' "$TSV"; then
			printf 'tiers rows: the two value columns hold the setups named in brackets [first/second]; ratio = first / second.\n'
		fi
	} >"$txt"
	{
		printf '{\n  "date": %s,\n  "command": %s,\n  "candidate": %s,\n' \
			"$(json_str "$(date -Iseconds)")" "$(json_str "$COMMAND_LINE")" "$(json_str "$BENCH_CANDIDATE")"
		printf '  "repcache_version": %s,\n  "tree": %s,\n  "loadavg_start": %s,\n  "loadavg_end": %s,\n' \
			"$(json_str "$REPCACHE_VERSION")" "$(json_str "$GIT_REV")" "$(json_str "$LOADAVG_START")" "$(json_str "$LOADAVG_END")"
		printf '  "machine": {"nproc": %s, "cpu": %s, "mem_gb": %s, "kernel": %s, "go": %s, "memcached": %s, "postfix": %s, "memcaslap": %s, "redis": %s, "nutcracker": %s},\n' \
			"$NPROC" "$(json_str "$CPU_MODEL")" "$MEM_TOTAL_GB" "$(json_str "$KERNEL")" "$(json_str "$GO_VERSION")" \
			"$(json_str "$MEMCACHED_VERSION")" "$(json_str "$POSTFIX_VERSION")" "$(json_str "$MEMCASLAP_VERSION")" \
			"$(json_str "$REDIS_VERSION")" "$(json_str "$NUTCRACKER_VERSION")"
		printf '  "config": {"bench_seconds": %s, "bench_runs": %s, "postmap_keys": %s, "postmap_runs": %s, "records": %s, "records_big": %s, "memcached_big": %s, "latency_gets": %s, "latency_conns": %s, "latency_runs": %s, "settle_max": %s, "settle_cpu_pct": %s, "idle_seconds": %s, "repcache_max_bytes": %s, "repcache_args": %s, ' \
			"$BENCH_SECONDS" "$BENCH_RUNS" "$POSTMAP_KEYS" "$POSTMAP_RUNS" "$RECORDS" "$RECORDS_BIG" "$MEMCACHED_BIG" \
			"$LATENCY_GETS" "$LATENCY_CONNS" "$LATENCY_RUNS" "$SETTLE_MAX" "$SETTLE_CPU_PCT" "$IDLE_SECONDS" "$(json_str "$REPCACHE_MAX_BYTES")" "$(json_str "$REPCACHE_ARGS")"
		printf '"tiers_seconds": %s, "tiers_runs": %s, "tiers_postmap_runs": %s, "tiers_pinned_runs": %s, "tiers_sets": %s, "tiers_set_conns": %s, "tiers_set_runs": %s, "tiers_memcached_mb": %s},\n' \
			"$TIERS_SECONDS" "$TIERS_RUNS" "$TIERS_POSTMAP_RUNS" "$TIERS_PINNED_RUNS" "$TIERS_SETS" "$TIERS_SET_CONNS" "$TIERS_SET_RUNS" "$TIERS_MEMCACHED_MB"
		printf '  "results": [\n'
		local first=1 section metric unit c b r target verdict detail cl bl
		while IFS=$'\t' read -r section metric unit c b r target verdict detail cl bl; do
			((first)) || printf ',\n'
			[[ $target == - ]] && target=
			[[ $verdict == - ]] && verdict=
			[[ $detail == - ]] && detail=
			first=0
			printf '    {"section": %s, "metric": %s, "unit": %s, "repcache": %s, "memcached": %s, "ratio": %s, "target": %s, "verdict": %s, "detail": %s, "labels": [%s, %s]}' \
				"$(json_str "$section")" "$(json_str "$metric")" "$(json_str "$unit")" "$(json_num "$c")" "$(json_num "$b")" \
				"$(json_num "$r")" "$(json_str "$target")" "$(json_str "$verdict")" "$(json_str "$detail")" \
				"$(json_str "$cl")" "$(json_str "$bl")"
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
