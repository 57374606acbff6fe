#!/usr/bin/env bash
# Runs every library at N=1,000,000 and N=10,000,000, each in a fresh
# process, and prints the markdown result tables.
#   ./run.sh              # all libraries, both sizes
#   LIBS="otter freecache" SIZES="1000000" REPS=1 ./run.sh
set -euo pipefail
cd "$(dirname "$0")"
out=${OUT:-results.jsonl}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
bin=$tmp/storecompare
tags=""
# repcache's own store is included once it builds (see README).
if (cd ../.. && go build ./internal/store/memory) >/dev/null 2>&1 && [ -f repcache.go ]; then
  tags="-tags repcache"
fi
go build $tags -o "$bin" .
LIBS=${LIBS:-$("$bin" -list)}
SIZES=${SIZES:-"1000000 10000000"}
REPS=${REPS:-3}
: > "$out"
# Repetitions are the outer loop so a burst of load from other processes on
# the machine hits one run of each library rather than all runs of one.
for rep in $(seq "$REPS"); do
  for n in $SIZES; do
    for lib in $LIBS; do
      echo ">> rep $rep: $lib n=$n" >&2
      # Fresh process per library, size and repetition, so RSS is clean.
      "$bin" -lib "$lib" -n "$n" >> "$out" || echo "{\"lib\":\"$lib\",\"n\":$n,\"error\":\"process failed (exit $?)\"}" >> "$out"
    done
  done
done
for lib in $LIBS; do
  "$bin" -lib "$lib" -semantics >> "$out" || echo "{\"lib\":\"$lib\",\"bigitem_ok\":false,\"bigitem_detail\":\"process failed\"}" >> "$out"
done
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(go version | cut -d' ' -f3)"
echo
"$bin" -table "$out"
