#!/usr/bin/env bash
# Installs the tools the Helm chart tests need (helm, kubeconform,
# helm-unittest), built from source through the Go module proxy, into
# .cache/tools/bin (gitignored). A tool already built at its pinned version is
# kept, so only the first run pays for the build (helm takes minutes on 2 cores).
#
#   scripts/helm-tools.sh          install what is missing, print the bin dir
#   HELM_TOOLS_DIR=DIR scripts/helm-tools.sh   install somewhere else
#
# The chart tests (helm/chart_test.go) look in the same directory, or take
# HELM, KUBECONFORM and HELM_UNITTEST from the environment.
set -euo pipefail
cd "$(dirname "$0")/.."

# Pinned versions; bump them here only (helm/chart_test.go reads nothing else).
HELM_VERSION=v3.22.0
KUBECONFORM_VERSION=v0.8.0
HELM_UNITTEST_VERSION=v1.1.2
# Kubernetes minor version helm assumes when no cluster is asked (helm
# v3.22 is built with client-go v0.37: Kubernetes 1.37).
HELM_K8S_MINOR=37

bin=${HELM_TOOLS_DIR:-$PWD/.cache/tools/bin}
mkdir -p "$bin"

# Each tool is built once per pinned version: $bin/.NAME.version records what
# $bin/NAME was built from, and a matching record skips the build.
current() { [ -x "$bin/$1" ] && [ "$(cat "$bin/.$1.version" 2>/dev/null)" = "$2" ]; }

# install NAME PACKAGE VERSION [LDFLAGS]: go install PACKAGE@VERSION.
install() {
  local name=$1 pkg=$2 version=$3 ldflags=${4:-}
  local want="$version $ldflags"
  current "$name" "$want" && return 0
  printf '==> go install %s@%s\n' "$pkg" "$version" >&2
  local start=$SECONDS
  GOBIN="$bin" CGO_ENABLED=0 go install -trimpath -ldflags "-s -w $ldflags" "$pkg@$version"
  echo "$want" >"$bin/.$name.version"
  printf '    %s built in %ds\n' "$name" $((SECONDS - start)) >&2
}

# install_main NAME MODULE VERSION PACKAGE [LDFLAGS]: for a module whose
# go.mod has replace directives, which "go install pkg@version" refuses:
# download the module from the proxy and build it as the main module, so its
# replaces apply.
install_main() {
  local name=$1 mod=$2 version=$3 pkg=$4 ldflags=${5:-}
  local want="$version $ldflags"
  current "$name" "$want" && return 0
  printf '==> go build %s from %s@%s\n' "$pkg" "$mod" "$version" >&2
  local start=$SECONDS dir src
  dir=$(go mod download -json "$mod@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [ -n "$dir" ] || { echo "go mod download $mod@$version failed" >&2; return 1; }
  src=$(mktemp -d)
  local rc=0
  cp -R "$dir/." "$src" && chmod -R u+w "$src" &&
    (cd "$src" && CGO_ENABLED=0 go build -trimpath -mod=readonly -ldflags "-s -w $ldflags" -o "$bin/$name" "$pkg") || rc=$?
  rm -rf "$src"
  [ "$rc" = 0 ] || return "$rc"
  echo "$want" >"$bin/.$name.version"
  printf '    %s built in %ds\n' "$name" $((SECONDS - start)) >&2
}

# What helm's own Makefile sets: its version, and the Kubernetes version it
# assumes without a cluster (client-go's minor + 1.x; without it, 1.20).
# The tests pass --kube-version explicitly anyway.
helm_ldflags="-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
helm_ldflags+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$HELM_K8S_MINOR"
helm_ldflags+=" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$HELM_K8S_MINOR"

install helm helm.sh/helm/v3/cmd/helm "$HELM_VERSION" "$helm_ldflags"
install kubeconform github.com/yannh/kubeconform/cmd/kubeconform "$KUBECONFORM_VERSION" \
  "-X main.version=$KUBECONFORM_VERSION"
install_main helm-unittest github.com/helm-unittest/helm-unittest "$HELM_UNITTEST_VERSION" ./cmd/helm-unittest \
  "-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$HELM_K8S_MINOR"

echo "$bin"
