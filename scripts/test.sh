#!/usr/bin/env bash
# repcache's one test command: installs what the tests need from Debian's
# packages, then runs every test with the race detector and each fuzz target
# for a bounded time. The tests start their own servers on free loopback
# ports; nothing here touches a system service.
#
#   ./scripts/test.sh                 everything (CI runs exactly this)
#   FUZZ_SCALE=0.1 ./scripts/test.sh  shorter fuzzing
set -euo pipefail
cd "$(dirname "$0")/.."

# Fuzz budgets are execution counts (about 20 s each here), not durations:
# Go 1.26's fuzz coordinator can fail a duration-bounded run with "context
# deadline exceeded" at the deadline (golang/go#75804, fixed in Go 1.27).
FUZZ_SCALE=${FUZZ_SCALE:-1}

# Debian packages the tests talk to, as "program:package".
needs=(memcached:memcached redis-server:redis-server redis-cli:redis-tools nutcracker:nutcracker postfix:postfix postmap:postfix prometheus:prometheus promtool:prometheus)

start=$SECONDS
step() { printf '\n==> %s (%ds)\n' "$*" $((SECONDS - start)); }

missing=()
for n in "${needs[@]}"; do
  command -v "${n%%:*}" >/dev/null 2>&1 || [ -x "/usr/sbin/${n%%:*}" ] || missing+=("${n#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  step "installing Debian packages: ${missing[*]}"
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

step "go vet and gofmt"
go vet ./...
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi

# The container images (a Debian rootfs, the project's image, a test
# Postfix) are built while the fuzzers run: much of their first build is
# downloads and disk, which the CPU-bound fuzzers leave idle. Later runs
# reuse them and take seconds.
images_log=$(mktemp)
# In a process group of its own (setsid), so that an early exit stops the
# builds it started too.
setsid scripts/containers.sh images >"$images_log" 2>&1 &
images=$!
trap 'kill -- -"$images" 2>/dev/null || true; rm -f "$images_log"' EXIT

step "fuzzing each target (execution budgets x $FUZZ_SCALE)"
fuzz() { # package target executions
  n=$(awk -v n="$3" -v s="$FUZZ_SCALE" 'BEGIN { printf "%d", n * s + 1 }')
  go test -run '^$' -fuzz "^$2\$" -fuzztime "${n}x" -fuzzminimizetime 200x "$1" 2>&1 | grep -vE '^fuzz: elapsed'
  return "${PIPESTATUS[0]}"
}
fuzz ./internal/protocol FuzzSession 300000
fuzz ./internal/protocol FuzzSessionSplit 100000
fuzz ./internal/config FuzzLoadYAML 20000
fuzz ./internal/ttl FuzzParsePostscreen 1000000
fuzz ./internal/ttl FuzzParseVerify 1000000
fuzz ./internal/ttl FuzzDeadline 1000000

step "container images (scripts/containers.sh images, run in the background since the fuzzing began)"
if ! wait "$images"; then
  cat "$images_log"
  echo "building the container images failed" >&2
  exit 1
fi
sed 's/^/    /' "$images_log"

step "unit, differential and acceptance tests (race detector on)"
go test -race -count=1 -timeout 10m ./...

step "hostile clients without the race detector (its runtime inflates memory: the 32 MiB per-case bound holds here)"
go test -count=1 -timeout 5m -run '^TestHostile' ./cmd/repcache

step "Helm chart, Dockerfile and packaging (helm/; tools from the Go module proxy, cached)"
scripts/helm-tools.sh >/dev/null && (cd helm && go vet ./... && go test -count=1 ./...)

step "container image and pods under podman (scripts/containers.sh: image, sidecar pod, two MX on one cache)"
scripts/containers.sh
