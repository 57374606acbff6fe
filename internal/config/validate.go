package config

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Allowed values, in the order error messages list them.
var (
	backends       = []string{"memory", "memcached"}
	backupBackends = []string{"none", "redis"}
	onErrorModes   = []string{"miss", "error"}
	logLevels      = []string{"debug", "info", "warn", "error"}
	logFormats     = []string{"text", "json"}
)

// Ranges, shared with the documentation in Config.
const (
	minMaxBytes      = 1 * MiB
	minMaxItemSize   = 1 * KiB
	maxKeyLengthMax  = 65535
	minMaxLineLength = 512
	// maxMemcachedConns: every connection is a pipeline of its own with a
	// reader goroutine; beyond a few per server they only split batches.
	maxMemcachedConns = 64
)

func validate(c *Config) error {
	var errs []fieldError
	check := func(key string, err error) {
		if err != nil {
			errs = append(errs, fieldError{key, err})
		}
	}

	check("listen", checkListen(c.Listen))
	if _, err := parseMode(c.UnixSocketMode); err != nil {
		check("unix_socket_mode", err)
	}
	check("shutdown_timeout", positive(c.ShutdownTimeout))
	if c.Admin.Listen != "" {
		if why := checkHostPort(c.Admin.Listen); why != "" {
			check("admin.listen", fmt.Errorf(`%q is not host:port (%s); use "" to disable`, c.Admin.Listen, why))
		}
	}
	check("cache.backend", oneOf(c.Cache.Backend, backends))
	if c.Cache.Backend == "memcached" {
		check("cache.memcached.servers", checkServers(c.Cache.Memcached.Servers, "cache.backend is memcached", true))
	}
	check("cache.memcached.timeout", positive(c.Cache.Memcached.Timeout))
	if n := c.Cache.Memcached.Conns; n < 1 || n > maxMemcachedConns {
		check("cache.memcached.conns", fmt.Errorf("%d is outside 1..%d", n, maxMemcachedConns))
	}
	check("backup.backend", oneOf(c.Backup.Backend, backupBackends))
	if c.Backup.Backend == "redis" {
		check("backup.redis.addrs", checkServers(c.Backup.Redis.Addrs, "backup.backend is redis", false))
		errs = append(errs, redisTopology(c.Backup.Redis)...)
	}
	if c.Backup.QueueSize < 1 {
		check("backup.queue_size", fmt.Errorf("%d is below the minimum of 1", c.Backup.QueueSize))
	}
	if c.Backup.QueueBytes < 1*KiB {
		check("backup.queue_bytes", fmt.Errorf("%v is below the minimum of 1KiB", c.Backup.QueueBytes))
	}
	if c.Cache.MissedWritesLimit < 1 {
		check("cache.missed_writes_limit", fmt.Errorf("%d is below the minimum of 1", c.Cache.MissedWritesLimit))
	}
	check("cache.probe_interval", positive(c.Cache.ProbeInterval))
	check("backup.redis.timeout", positive(c.Backup.Redis.Timeout))
	if c.Backup.Redis.Password != "" && c.Backup.Redis.PasswordFile != "" {
		check("backup.redis.password_file", fmt.Errorf("set either password or password_file, not both"))
	}
	if c.Backup.Redis.DB < 0 {
		check("backup.redis.db", fmt.Errorf("%d is negative", c.Backup.Redis.DB))
	}
	if c.Backup.Redis.PoolSize < 0 {
		check("backup.redis.pool_size", fmt.Errorf("%d is negative", c.Backup.Redis.PoolSize))
	}
	check("on_error", oneOf(c.OnError, onErrorModes))
	if c.Cache.Memory.MaxBytes < minMaxBytes {
		check("cache.memory.max_bytes", fmt.Errorf("%s is below the minimum of %s", c.Cache.Memory.MaxBytes, minMaxBytes))
	}
	if c.Limits.MaxConnections < 1 {
		check("limits.max_connections", fmt.Errorf("%d is below the minimum of 1", c.Limits.MaxConnections))
	}
	check("limits.idle_timeout", positive(c.Limits.IdleTimeout))
	if k := c.Limits.MaxKeyLength; k < 1 || k > maxKeyLengthMax {
		check("limits.max_key_length", fmt.Errorf("%d is outside 1..%d", k, maxKeyLengthMax))
	}
	switch s := c.Limits.MaxItemSize; {
	case s < minMaxItemSize:
		check("limits.max_item_size", fmt.Errorf("%s is below the minimum of %s", s, minMaxItemSize))
	case s > c.Cache.Memory.MaxBytes/4:
		check("limits.max_item_size", fmt.Errorf("%s exceeds cache.memory.max_bytes/4 (%s)", s, c.Cache.Memory.MaxBytes/4))
	}
	if c.Limits.MaxLineLength < minMaxLineLength {
		check("limits.max_line_length", fmt.Errorf("%d is below the minimum of %d", c.Limits.MaxLineLength, minMaxLineLength))
	}
	check("log.level", oneOf(c.Log.Level, logLevels))
	check("log.format", oneOf(c.Log.Format, logFormats))
	errs = append(errs, validateMaps(c)...)

	if len(errs) == 0 {
		return nil
	}
	return firstError(errs)
}

// redisTopology checks that the Redis settings name one topology: a
// single server, Sentinels (master_name) or cluster seeds (cluster).
func redisTopology(r RedisConfig) []fieldError {
	var errs []fieldError
	switch {
	case r.Cluster && r.MasterName != "":
		errs = append(errs, fieldError{"backup.redis.master_name", fmt.Errorf("Sentinel (master_name) and cluster are exclusive: set one of them")})
	case len(r.Addrs) > 1 && !r.Cluster && r.MasterName == "":
		errs = append(errs, fieldError{"backup.redis.addrs", fmt.Errorf("lists %d addresses: several addresses are cluster seeds (set cluster: true) or Sentinels (set master_name); a single server takes one address", len(r.Addrs))})
	}
	if r.Cluster && r.DB != 0 {
		errs = append(errs, fieldError{"backup.redis.db", fmt.Errorf("%d is not 0: Redis Cluster has only database 0", r.DB)})
	}
	return errs
}

// checkServers checks a backend's address list, needed because why.
func checkServers(addrs []string, why string, unixOK bool) error {
	if len(addrs) == 0 {
		return fmt.Errorf("must list at least one address when %s", why)
	}
	for _, a := range addrs {
		if unixOK && strings.HasPrefix(a, "/") {
			continue
		}
		if reason := checkHostPort(a); reason != "" {
			return fmt.Errorf("%q is not host:port (%s)", a, reason)
		}
	}
	return nil
}

func oneOf(v string, allowed []string) error {
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	return fmt.Errorf("%q is not one of %s", v, strings.Join(allowed, ", "))
}

func positive(d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("must be greater than 0, got %s", d)
	}
	return nil
}

func checkListen(addrs []string) error {
	if len(addrs) == 0 {
		return fmt.Errorf("must list at least one address")
	}
	seen := map[string]bool{}
	for _, a := range addrs {
		if seen[a] {
			return fmt.Errorf("%q is listed twice", a)
		}
		seen[a] = true
		if path, ok := strings.CutPrefix(a, "unix:"); ok {
			if !strings.HasPrefix(path, "/") {
				return fmt.Errorf("%q is neither host:port nor unix:/path (socket path must be absolute)", a)
			}
			continue
		}
		if why := checkHostPort(a); why != "" {
			return fmt.Errorf("%q is neither host:port nor unix:/path (%s)", a, why)
		}
	}
	return nil
}

// checkHostPort returns why addr is not a TCP listen address, or "".
// The host may be empty (all interfaces), an IP, or a host name; the port
// must be numeric (0 picks a free port, which tests use).
func checkHostPort(addr string) string {
	if strings.HasPrefix(addr, "unix:") {
		return "unix sockets are not supported here"
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "missing or malformed port"
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return "port must be a number 0..65535"
	}
	if host == "" {
		return ""
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return ""
	}
	if !isHostName(host) {
		return "bad host"
	}
	return ""
}

// isHostName reports whether s is a plausible DNS name (RFC 1123 labels).
func isHostName(s string) bool {
	if len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(s, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}
