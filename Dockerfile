# syntax=docker/dockerfile:1
#
# repcache's container image: the static repcache binary on distroless
# (no shell, no package manager), running as a numeric non-root user.
#
#   docker build -t repcache:dev \
#     --build-arg VERSION=$(git describe --tags --always --dirty) \
#     --build-arg REVISION=$(git rev-parse HEAD) \
#     --build-arg CREATED=$(date -u +%Y-%m-%dT%H:%M:%SZ) .
#   docker run --rm -p 11211:11211 -p 9150:9150 repcache:dev
#
# Without arguments it serves memcache on 0.0.0.0:11211 and the admin HTTP
# listener (/metrics, /livez, /readyz) on 0.0.0.0:9150 from the embedded
# store. Any argument replaces those defaults (CMD), e.g.
#   docker run ... repcache:dev --config=/etc/repcache/repcache.yaml
# as the Helm chart does; the file then decides every address.
#
# The test command builds this file unchanged with podman and runs the
# image (scripts/containers.sh, containers/image_test.go).

ARG GO_VERSION=1.26

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
ARG TARGETOS
ARG TARGETARCH
ARG VERSION=dev
WORKDIR /src
# Dependencies first, so source edits do not download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download
# .dockerignore lets in only go.mod, go.sum, cmd/ and internal/.
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/repcache ./cmd/repcache

FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="repcache" \
      org.opencontainers.image.description="memcache-protocol cache for Postfix's postscreen and verify caches" \
      org.opencontainers.image.url="https://github.com/repcache/repcache" \
      org.opencontainers.image.source="https://github.com/repcache/repcache" \
      org.opencontainers.image.documentation="https://github.com/repcache/repcache/blob/main/docs/deploy.md" \
      org.opencontainers.image.vendor="repcache" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.base.name="gcr.io/distroless/static-debian12:nonroot"
COPY --from=build /out/repcache /repcache
# distroless's "nonroot" user, by number, so that Kubernetes can verify
# runAsNonRoot without resolving a name.
USER 65532:65532
# memcache protocol; admin HTTP (metrics, /livez, /readyz).
EXPOSE 11211 9150
# No HEALTHCHECK: Kubernetes ignores it and probes /livez and /readyz on the
# admin port itself (the Helm chart's startup, liveness and readiness
# probes), and the image has no shell or HTTP client to run one with;
# elsewhere Prometheus's up{job="repcache"} and the RepcacheDown alert watch
# it.
ENTRYPOINT ["/repcache"]
CMD ["--listen=0.0.0.0:11211", "--admin.listen=0.0.0.0:9150"]
