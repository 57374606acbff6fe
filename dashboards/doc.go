// Package dashboards holds repcache's Grafana dashboard (repcache.json,
// uid "repcache-overview") and the tests that keep it, and the Prometheus
// rules in ../prometheus, honest:
//
//   - a structural lint of the dashboard (template variables, units,
//     $__rate_interval, the job/instance/map filters, unique panel ids);
//   - promtool check rules and promtool test rules on ../prometheus;
//   - an integration test that runs repcache (memcached and Redis tiers,
//     and the embedded store) under a little Postfix-like traffic, scrapes it
//     with a real Prometheus that loads ../prometheus/rules.yml, and
//     evaluates every PromQL expression of the dashboard and of the rules,
//     each of which must return data.
//
// Import repcache.json in Grafana (Dashboards, New, Import) and pick the
// Prometheus data source that scrapes repcache's admin listener.
package dashboards
