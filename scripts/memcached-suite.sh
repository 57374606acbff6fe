#!/usr/bin/env bash
# scripts/memcached-suite.sh — memcached's own test suite (the t/*.t files of
# a memcached source tree) against repcache and against Debian's memcached,
# file by file, each server fresh for each file, through the suite's
# T_MEMD_USE_DAEMON mode (the tests talk to a running server instead of
# starting one). The suite is not part of this project: point at a
# checkout of github.com/memcached/memcached (issue 10 used tag 1.6.18).
#
#   scripts/memcached-suite.sh MEMCACHED_SRC [t/FILE.t ...]
#
# Prints one line per file: its result against memcached and, where that
# is ok, against repcache (ok, the number of failed tests, or the exit
# status; a file is stopped after T_TIMEOUT seconds, default 60: those that
# need a memcached option or build feature wait forever on a plain server),
# and a last line counting the files that pass against memcached but not
# repcache; exits 1 if there are any. Needs perl, memcached, go.
set -euo pipefail
export LC_ALL=C
[[ $# -ge 1 && -d $1/t ]] || { echo "usage: $0 MEMCACHED_SRC [t/FILE.t ...]" >&2; exit 2; }
SRC=$(cd "$1" && pwd)
shift
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TMP=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$TMP"' EXIT
(cd "$ROOT" && go build -o "$TMP/repcache" ./cmd/repcache)
# The suite reads the server's features from "memcached-debug -h" in its
# build directory: a copy of the source's t/ with Debian's binary there.
mkdir -p "$TMP/src"
cp -r "$SRC/t" "$TMP/src/t"
ln -s "$(command -v memcached)" "$TMP/src/memcached-debug"
files=("$@")
((${#files[@]})) || files=($(cd "$TMP/src" && ls t/*.t))
freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# run SERVER FILE: the file's result against a fresh SERVER (memcached or repcache).
run() {
	local port pid out rc failed
	port=$(freeport)
	if [[ $1 == memcached ]]; then
		memcached -u root -l 127.0.0.1 -p "$port" -U 0 >/dev/null 2>&1 &
	else
		"$TMP/repcache" --listen "127.0.0.1:$port" --admin.listen "" >/dev/null 2>&1 &
	fi
	pid=$!
	for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.1; done
	out=$TMP/$1-$(basename "$2").out
	rc=0
	(cd "$TMP/src" && T_MEMD_USE_DAEMON=127.0.0.1:$port timeout "${T_TIMEOUT:-60}" perl "$2") >"$out" 2>&1 || rc=$?
	kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true
	failed=$(grep -c '^not ok' "$out" || true)
	if ((rc == 0 && failed == 0)); then echo ok; elif ((failed > 0)); then echo "$failed-failed"; else echo "exit-$rc"; fi
}
worse=0
printf '%-32s %-14s %s\n' file memcached repcache
for f in "${files[@]}"; do
	m=$(run memcached "$f")
	r=-
	[[ $m == ok ]] && r=$(run repcache "$f")
	printf '%-32s %-14s %s\n' "$f" "$m" "$r"
	if [[ $m == ok && $r != ok ]]; then worse=$((worse + 1)); fi
done
echo "files that pass against memcached but not repcache: $worse"
((worse == 0))
