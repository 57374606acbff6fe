// Package compose holds the Docker Compose example (docker-compose.yaml:
// Postfix, repcache, memcached, Redis, Prometheus and Grafana) and the tests
// that keep it consistent: with the repcache configuration it mounts
// (repcache.yaml, which must pass repcache check-config), with the Postfix
// table files and main.cf settings repcache postfix-config prints for it,
// and with the repository's alert rules and dashboard. See docs/deploy.md.
package compose
