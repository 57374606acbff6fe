// The container tests (scripts/containers.sh runs them after building the
// images): the image alone, Postfix with repcache as the chart's sidecar
// in one pod, and two Postfix MX pods sharing the chart's standalone
// repcache with memcached and Redis, all under podman. A module of its own,
// so that "go test ./..." at the root (which has no images) never runs them.
module github.com/repcache/repcache/containers

go 1.26.8

require go.yaml.in/yaml/v3 v3.0.5
