#!/usr/bin/env bash
# The container stage of the test command: builds the project's Dockerfile
# with podman, from base images made on this machine (no registry is
# reachable), and runs the container tests (containers/, a Go module of its
# own): the image alone, Postfix with repcache as the chart's sidecar in one
# pod, and two Postfix MX pods sharing the chart's standalone repcache with
# memcached and Redis.
#
#   scripts/containers.sh           what ./scripts/test.sh runs (as root)
#   scripts/containers.sh images    only build the images (test.sh runs this
#                                   in the background while it fuzzes)
#
# Images already present are reused, so only the first run on a machine
# pays for the bases (a Debian rootfs from the host's apt mirror) and the
# first build. Every step that cannot run fails the stage; nothing skips.
# podman's settings come from a containers.conf of our own (CONTAINERS_CONF):
# nothing system-wide changes.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
start=$SECONDS
step() { printf '\n==> %s (%ds)\n' "$*" $((SECONDS - start)); }

sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"

# Debian packages, as "program:package".
needs=(podman:podman buildah:buildah runc:runc catatonit:catatonit newuidmap:uidmap slirp4netns:slirp4netns fuse-overlayfs:fuse-overlayfs mmdebstrap:mmdebstrap)
missing=()
for n in "${needs[@]}"; do
  command -v "${n%%:*}" >/dev/null 2>&1 || missing+=("${n#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  step "installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The machines allow 20000 open files (podman asks for 1048576 by default)
# and have a hybrid cgroup v1 layout that crun cannot use.
state=$root/.cache/containers
mkdir -p "$state"
export CONTAINERS_CONF=$state/containers.conf
cat >"$CONTAINERS_CONF" <<'CONF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
CONF

# Image names. The Go builder and the distroless stand-in carry the exact
# names the Dockerfile's FROM lines use.
debian=localhost/repcache-test/debian:bookworm
golang=$(sed -n 's/^ARG GO_VERSION=//p' Dockerfile)
golang=docker.io/library/golang:$golang
distroless=$(sed -n 's/^FROM \(gcr.io[^ ]*\).*/\1/p' Dockerfile)
postfix=localhost/repcache-test/postfix:bookworm
image=localhost/repcache:test

have() { podman image exists "$1"; }

# The Debian rootfs holds what every test container needs: the Postfix
# image, memcached and Redis run from it (Debian's own packages), and the Go
# builder is made from it.
if ! have "$debian"; then
  mirror=$( (cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null || true) |
    awk '/^deb / && $2 !~ /security/ { print $2; exit } /^URIs:/ && $2 !~ /security/ { print $2; exit }')
  [ -n "$mirror" ] || { echo "no Debian mirror in /etc/apt/sources.list*" >&2; exit 1; }
  step "Debian bookworm rootfs from $mirror"
  tar=$(mktemp --suffix=.tar)
  mmdebstrap --quiet --variant=minbase \
    --include=ca-certificates,netbase,postfix,memcached,redis-server \
    bookworm "$tar" "$mirror"
  podman import --quiet "$tar" "$debian" >/dev/null
  rm -f "$tar"
fi

# golang:1.26's stand-in: the Debian image plus this machine's Go toolchain.
gover=$(go env GOVERSION)
if ! have "$golang" || [ "$(podman image inspect --format '{{index .Labels "repcache.test.go"}}' "$golang")" != "$gover" ]; then
  step "Go builder $golang from $(go env GOROOT) ($gover)"
  c=$(buildah from --pull=never "$debian")
  buildah copy --quiet "$c" "$(go env GOROOT)" /usr/local/go >/dev/null
  buildah config --env PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env GOPATH=/go --env GOTOOLCHAIN=local --workingdir /go --label repcache.test.go="$gover" "$c"
  buildah commit --quiet --rm "$c" "$golang" >/dev/null
fi

# distroless/static's stand-in: no shell, the nonroot user 65532, the CA
# bundle and a world-writable /tmp, which is what the image relies on.
if ! have "$distroless"; then
  step "distroless stand-in $distroless"
  d=$(mktemp -d)
  mkdir -p "$d/etc/ssl/certs" "$d/tmp"
  chmod 1777 "$d/tmp"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$d/etc/passwd"
  printf 'root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n' >"$d/etc/group"
  cp /etc/ssl/certs/ca-certificates.crt "$d/etc/ssl/certs/"
  c=$(buildah from scratch)
  buildah copy --quiet "$c" "$d" / >/dev/null
  buildah config --user 65532:65532 --workingdir /home/nonroot "$c"
  buildah commit --quiet --rm "$c" "$distroless" >/dev/null
  rm -rf "$d"
fi

# The project's own Dockerfile, unchanged. Module downloads inside the
# build go to the Go module proxy through the host's trust store; layers
# and the build's module cache are kept, so an unchanged tree rebuilds in
# seconds.
step "podman build $image (Dockerfile, --pull=never)"
podman build --quiet --pull=never -t "$image" \
  -v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro \
  --build-arg TARGETOS="$(go env GOOS)" --build-arg TARGETARCH="$(go env GOARCH)" \
  --build-arg VERSION="$(git describe --tags --always --dirty 2>/dev/null || echo test)" \
  --build-arg REVISION="$(git rev-parse HEAD 2>/dev/null || echo unknown)" \
  -f Dockerfile . >/dev/null

# The test Postfix: Debian's postfix, its memcache client, postscreen.
step "podman build $postfix (containers/postfix)"
podman build --quiet --pull=never -t "$postfix" --build-arg BASE="$debian" containers/postfix >/dev/null

if [ "${1:-}" = images ]; then
  step "container images ready"
  exit 0
fi

step "container tests (containers/)"
(cd containers && go vet ./... && \
  REPCACHE_IMAGE=$image POSTFIX_IMAGE=$postfix SERVICES_IMAGE=$debian \
  HELM=${HELM:-$root/.cache/tools/bin/helm} go test -count=1 -timeout 10m ./...)
step "container stage done"
