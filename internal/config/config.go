// Package config loads repcache's configuration.
//
// Four layers are merged with koanf, each overriding the one before:
//
//  1. built-in defaults (Default),
//  2. the YAML file named by --config, if any,
//  3. environment variables REPCACHE_<KEY>, where "__" separates levels and
//     single underscores stay inside a key (REPCACHE_CACHE__MEMORY__MAX_BYTES
//     is cache.memory.max_bytes; REPCACHE_LISTEN is split on commas),
//  4. command-line flags named exactly like the keys (--limits.max_connections),
//     but only those the user actually set, so a flag's default never masks
//     the file or the environment.
//
// Loading is strict, because a typo in a cache's config otherwise surfaces as
// a silently different limit in production: unknown keys, wrong types, YAML
// nulls and out-of-range values are all errors, and every error names the
// dotted key it is about, e.g.
//
//	config: unknown field "cache.memroy"
//	config: limits.max_connections: cannot parse "lots" as int
//	config: cache.backend: "redis" is not one of memory
//
// Load reports one error, the first in a fixed order (file problems, then
// environment problems, then type errors, then range errors, each sorted by
// key), so the same input always yields the same message.
package config

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/providers/posflag"
	"github.com/knadh/koanf/v2"
	"github.com/spf13/pflag"
)

// Config is repcache's complete configuration. The koanf tags are the key
// names used in YAML, in REPCACHE_ environment variables and as flag names.
type Config struct {
	// File is the YAML file the configuration was read from ("" for none);
	// not a configuration key.
	File string `koanf:"-"`

	// Listen is where the memcache text protocol is served: "host:port"
	// (TCP; an empty host means all interfaces) or "unix:/absolute/path".
	// Default ["127.0.0.1:11211"]. Must not be empty.
	Listen []string `koanf:"listen"`
	// UnixSocketMode is the permission, as an octal string, given to unix
	// sockets in Listen so Postfix's user can connect. Default "0660".
	UnixSocketMode string `koanf:"unix_socket_mode"`
	// ShutdownTimeout is how long in-flight requests may take to finish after
	// SIGTERM before connections are closed. Default 10s.
	ShutdownTimeout time.Duration `koanf:"shutdown_timeout"`

	// Listeners are further listen addresses with options (which maps they
	// serve, read-only). Default none.
	Listeners []ListenerConfig `koanf:"listeners"`
	// Maps are the Postfix tables repcache knows, by key prefix. Default:
	// postscreen (prefix "postscreen:") and verify (prefix "verify:") with
	// Postfix's default lifetimes.
	Maps []MapConfig `koanf:"maps"`
	// UnknownKeys is what happens to keys that match no map: allow (served
	// with memcached semantics) or reject (answered CLIENT_ERROR). Default allow.
	UnknownKeys string `koanf:"unknown_keys"`

	// OnError is what a read answers when no tier can serve it: miss
	// (default; Postfix handles a miss far better than an error: since
	// Postfix 3.11 a verify read error defers mail) or error.
	OnError string `koanf:"on_error"`

	Admin  AdminConfig  `koanf:"admin"`
	Cache  CacheConfig  `koanf:"cache"`
	Backup BackupConfig `koanf:"backup"`
	Limits LimitsConfig `koanf:"limits"`
	Log    LogConfig    `koanf:"log"`
}

// BackupConfig selects the durable backup tier.
type BackupConfig struct {
	// Backend is none or redis. Default none.
	Backend string `koanf:"backend"`
	// QueueSize bounds the async backup writes waiting; beyond it writes
	// are dropped and counted. Default 10000.
	QueueSize int `koanf:"queue_size"`
	// QueueBytes bounds the bytes (keys and values) those writes hold.
	// Default 64MiB.
	QueueBytes ByteSize `koanf:"queue_bytes"`
	// Redis configures the redis backend.
	Redis RedisConfig `koanf:"redis"`
}

// RedisConfig configures the Redis backup (go-redis UniversalClient).
type RedisConfig struct {
	// Addrs are host:port addresses: one server, Sentinels (with
	// MasterName) or cluster seeds (with Cluster).
	Addrs []string `koanf:"addrs"`
	// MasterName selects Sentinel failover for this master.
	MasterName string `koanf:"master_name"`
	// Cluster uses Redis Cluster.
	Cluster  bool   `koanf:"cluster"`
	Username string `koanf:"username"`
	// Password authenticates; prefer REPCACHE_BACKUP__REDIS__PASSWORD or
	// PasswordFile over writing it in the file.
	Password string `koanf:"password"`
	// PasswordFile is read at start for the password (a mounted Secret).
	PasswordFile string `koanf:"password_file"`
	DB           int    `koanf:"db"`
	// TLS connects with TLS (system roots).
	TLS bool `koanf:"tls"`
	// KeyPrefix is put before every key, so a shared Redis keeps repcache's
	// records apart (and flush_all only removes those). Default "repcache:".
	KeyPrefix string `koanf:"key_prefix"`
	// Timeout bounds every Redis call. Default 100ms.
	Timeout time.Duration `koanf:"timeout"`
	// PoolSize is the connection pool size (0: go-redis's default).
	PoolSize int `koanf:"pool_size"`
}

// AdminConfig is the HTTP admin endpoint (metrics, health).
type AdminConfig struct {
	// Listen is the admin HTTP host:port; "" disables the endpoint.
	// Default "127.0.0.1:9150".
	Listen string `koanf:"listen"`
	// Pprof serves Go's profiler under /debug/pprof/. Default false.
	Pprof bool `koanf:"pprof"`
}

// CacheConfig selects and sizes the cache tier.
type CacheConfig struct {
	// Backend is memory (the embedded store, default) or memcached (a
	// memcached pool shared by several repcache instances).
	Backend string `koanf:"backend"`
	// Memory configures the in-process backend.
	Memory MemoryConfig `koanf:"memory"`
	// Memcached configures the memcached backend.
	Memcached MemcachedConfig `koanf:"memcached"`
	// MissedWritesLimit bounds the keys remembered because their write
	// missed the cache (deleted from it once it answers); beyond it the
	// whole cache's older contents are made unservable. Default 100000.
	MissedWritesLimit int `koanf:"missed_writes_limit"`
	// ProbeInterval is how often the tiers are probed in the background
	// (readiness, recovery). Default 1s.
	ProbeInterval time.Duration `koanf:"probe_interval"`
}

// MemcachedConfig configures the memcached cache tier (internal/mcclient).
type MemcachedConfig struct {
	// Servers are host:port or /unix/path addresses; keys are spread over
	// them by ketama consistent hashing (compatible with twemproxy and
	// libmemcached), so the pool can be shared with their clients.
	Servers []string `koanf:"servers"`
	// Timeout bounds every memcached call. Default 100ms.
	Timeout time.Duration `koanf:"timeout"`
	// Conns is the number of connections per server; every request is
	// pipelined on them, whatever the number of clients, so one is usually
	// fastest (more only pays when one connection's reads saturate a core).
	// Default 1, at most 64.
	Conns int `koanf:"conns"`
}

// MemoryConfig configures the in-process memory backend.
type MemoryConfig struct {
	// MaxBytes caps the memory used by items; the oldest writes are evicted
	// first beyond it. Default 64MiB, minimum 1MiB.
	MaxBytes ByteSize `koanf:"max_bytes"`
}

// LimitsConfig bounds what a single client can make the server do.
type LimitsConfig struct {
	// MaxConnections is the number of concurrently served client
	// connections; further ones are refused. Default 1024, minimum 1.
	MaxConnections int `koanf:"max_connections"`
	// IdleTimeout cuts off a connection that sends nothing (or stalls
	// mid-command) for this long. Default 5m.
	IdleTimeout time.Duration `koanf:"idle_timeout"`
	// MaxKeyLength is the longest accepted key in bytes. Default 250
	// (memcached's limit), range 1..65535.
	MaxKeyLength int `koanf:"max_key_length"`
	// MaxItemSize is the largest accepted value. Default 1MiB, minimum 1KiB,
	// at most cache.memory.max_bytes/4 so one item cannot flush the cache.
	MaxItemSize ByteSize `koanf:"max_item_size"`
	// MaxLineLength is the longest command line, in bytes without the
	// newline, before the connection is closed. Default 2048 (memcached's),
	// minimum 512.
	MaxLineLength int `koanf:"max_line_length"`
}

// LogConfig configures the process logger.
type LogConfig struct {
	// Level is the minimum level logged: debug, info, warn or error.
	// Default info.
	Level string `koanf:"level"`
	// Format is the log line format: text (logfmt-like) or json.
	// Default text.
	Format string `koanf:"format"`
}

// Default returns the built-in configuration, the bottom layer of Load.
func Default() *Config {
	return &Config{
		Listen:          []string{"127.0.0.1:11211"},
		UnixSocketMode:  "0660",
		ShutdownTimeout: 10 * time.Second,
		Admin:           AdminConfig{Listen: "127.0.0.1:9150"},
		Cache: CacheConfig{
			Backend:           "memory",
			Memory:            MemoryConfig{MaxBytes: 64 * MiB},
			Memcached:         MemcachedConfig{Servers: []string{}, Timeout: 100 * time.Millisecond, Conns: 1},
			MissedWritesLimit: 100000,
			ProbeInterval:     time.Second,
		},
		Backup: BackupConfig{
			Backend:    "none",
			QueueSize:  10000,
			QueueBytes: 64 * MiB,
			Redis:      RedisConfig{Addrs: []string{}, KeyPrefix: "repcache:", Timeout: 100 * time.Millisecond},
		},
		OnError: "miss",
		Limits: LimitsConfig{
			MaxConnections: 1024,
			IdleTimeout:    5 * time.Minute,
			MaxKeyLength:   250,
			MaxItemSize:    1 * MiB,
			MaxLineLength:  2048,
		},
		Log:         LogConfig{Level: "info", Format: "text"},
		Maps:        defaultMaps(),
		UnknownKeys: "allow",
	}
}

const (
	configFlag = "config"
	envPrefix  = "REPCACHE_"
)

// Flags registers one flag per config key on fs, named exactly as the key,
// plus --config for the YAML file. The defaults shown in --help are the
// built-in ones; Load only applies flags the user set.
func Flags(fs *pflag.FlagSet) {
	d := Default()
	fs.String(configFlag, "", "path of the YAML config file (optional)")
	fs.StringSlice("listen", d.Listen, `memcache listen addresses, "host:port" or "unix:/path" (repeat or comma-separate)`)
	fs.String("unix_socket_mode", d.UnixSocketMode, "octal permissions of unix listen sockets")
	fs.Duration("shutdown_timeout", d.ShutdownTimeout, "grace period for in-flight requests on shutdown")
	fs.String("admin.listen", d.Admin.Listen, `admin HTTP host:port ("" disables)`)
	fs.Bool("admin.pprof", false, "serve Go's profiler under /debug/pprof/ on the admin listener")
	fs.String("cache.backend", d.Cache.Backend, "cache tier: memory or memcached")
	fs.StringSlice("cache.memcached.servers", d.Cache.Memcached.Servers, "memcached servers, host:port (repeat or comma-separate)")
	fs.Duration("cache.memcached.timeout", d.Cache.Memcached.Timeout, "deadline of every memcached call")
	fs.Int("cache.memcached.conns", d.Cache.Memcached.Conns, "pipelined memcached connections per server")
	fs.String("backup.backend", d.Backup.Backend, "backup tier: none or redis")
	fs.Int("backup.queue_size", d.Backup.QueueSize, "async backup writes that may wait before new ones are dropped")
	fs.StringSlice("backup.redis.addrs", d.Backup.Redis.Addrs, "Redis addresses, host:port (server, Sentinels or cluster seeds)")
	fs.String("backup.redis.master_name", "", "Sentinel master name (enables Sentinel failover)")
	fs.Bool("backup.redis.cluster", false, "use Redis Cluster")
	fs.String("backup.redis.username", "", "Redis ACL user name")
	fs.String("backup.redis.password", "", "Redis password (prefer REPCACHE_BACKUP__REDIS__PASSWORD or password_file)")
	fs.String("backup.redis.password_file", "", "file holding the Redis password")
	fs.Int("backup.redis.db", 0, "Redis database number")
	fs.Bool("backup.redis.tls", false, "connect to Redis with TLS")
	fs.String("backup.redis.key_prefix", d.Backup.Redis.KeyPrefix, "prefix of every Redis key")
	fs.Duration("backup.redis.timeout", d.Backup.Redis.Timeout, "deadline of every Redis call")
	fs.Int("backup.redis.pool_size", 0, "Redis connection pool size (0: go-redis default)")
	fs.Int("cache.missed_writes_limit", d.Cache.MissedWritesLimit, "keys whose cache write failed that are remembered for invalidation")
	fs.Duration("cache.probe_interval", d.Cache.ProbeInterval, "interval of the tiers' background probes")
	queueBytes := d.Backup.QueueBytes
	fs.Var(&queueBytes, "backup.queue_bytes", "bytes the async backup writes waiting may hold (e.g. 64MiB)")
	fs.String("on_error", d.OnError, "reads no tier can answer: miss or error")
	maxBytes := d.Cache.Memory.MaxBytes
	fs.Var(&maxBytes, "cache.memory.max_bytes", "memory backend capacity (e.g. 64MiB, 1GiB)")
	fs.Int("limits.max_connections", d.Limits.MaxConnections, "maximum concurrent client connections")
	fs.Duration("limits.idle_timeout", d.Limits.IdleTimeout, "close client connections idle or stalled this long")
	fs.Int("limits.max_key_length", d.Limits.MaxKeyLength, "longest accepted key in bytes (1..65535)")
	maxItem := d.Limits.MaxItemSize
	fs.Var(&maxItem, "limits.max_item_size", "largest accepted value (>= 1KiB, <= max_bytes/4)")
	fs.Int("limits.max_line_length", d.Limits.MaxLineLength, "longest command line in bytes before the connection is closed (>= 512)")
	fs.String("unknown_keys", d.UnknownKeys, "keys matching no map: allow (memcached semantics) or reject")
	fs.String("log.level", d.Log.Level, "log level: debug, info, warn, error")
	fs.String("log.format", d.Log.Format, "log format: text, json")
}

// Load builds the configuration from defaults, the file named by --config,
// the REPCACHE_ variables in environ (pass os.Environ()) and the flags set on
// fs, then validates it. fs must already be parsed; it may be nil (no file,
// no flags). Flags on fs that are not config keys are ignored, so the caller
// may register its own (--version, ...).
func Load(fs *pflag.FlagSet, environ []string) (*Config, error) {
	k := koanf.New(".")
	if err := k.Load(confmap.Provider(defaultsMap(), ""), nil); err != nil {
		return nil, fmt.Errorf("config: load defaults: %w", err)
	}

	if fs != nil {
		if f := fs.Lookup(configFlag); f != nil && f.Value.String() != "" {
			m, err := readFile(f.Value.String())
			if err != nil {
				return nil, err
			}
			if err := k.Load(confmap.Provider(m, ""), nil); err != nil {
				return nil, fmt.Errorf("config: %s: %w", f.Value.String(), err)
			}
		}
	}

	m, err := readEnv(environ)
	if err != nil {
		return nil, err
	}
	if err := k.Load(confmap.Provider(m, "."), nil); err != nil {
		return nil, fmt.Errorf("config: environment: %w", err)
	}

	if fs != nil {
		// A nil koanf makes posflag skip every flag the user did not change.
		p := posflag.ProviderWithFlag(fs, ".", nil, func(f *pflag.Flag) (string, any) {
			if _, ok := leaves[f.Name]; !ok {
				return "", nil
			}
			return f.Name, posflag.FlagVal(fs, f)
		})
		if err := k.Load(p, nil); err != nil {
			return nil, fmt.Errorf("config: flags: %w", err)
		}
	}

	// The lists of mappings are decoded entry by entry (maps over their
	// kind's defaults), then the rest in one go.
	maps, err := decodeMaps(k.Get("maps"))
	if err != nil {
		return nil, err
	}
	listeners, err := decodeListeners(k.Get("listeners"))
	if err != nil {
		return nil, err
	}
	k.Delete("maps")
	k.Delete("listeners")
	cfg := &Config{}
	err = k.UnmarshalWithConf("", cfg, koanf.UnmarshalConf{DecoderConfig: &mapstructure.DecoderConfig{
		DecodeHook:  decodeHook,
		ErrorUnused: true, // backstop: unknown keys are normally caught per layer with better messages
		MatchName:   func(mapKey, fieldName string) bool { return mapKey == fieldName },
		TagName:     "koanf",
	}})
	if err != nil {
		return nil, decodeError(err)
	}
	cfg.Maps, cfg.Listeners = maps, listeners
	if fs != nil {
		if f := fs.Lookup(configFlag); f != nil {
			cfg.File = f.Value.String()
		}
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// readFile reads and parses the YAML file at path and checks its keys.
func readFile(path string) (map[string]any, error) {
	b, err := file.Provider(path).ReadBytes()
	if err != nil {
		// os errors repeat the path ("open x: ..."); keep only the cause.
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fmt.Errorf("config: read %s: %w", path, err)
	}
	// A scratch koanf normalises the parser's output (map[any]any keys).
	fk := koanf.New(".")
	if err := fk.Load(bytesProvider(b), yaml.Parser()); err != nil {
		// yaml.v3 reports type errors over several indented lines.
		msg := strings.ReplaceAll(err.Error(), ":\n  ", ": ")
		msg = strings.ReplaceAll(msg, "\n  ", "; ")
		msg = strings.ReplaceAll(msg, "into map[string]interface {}", "as the top-level mapping of keys")
		return nil, fmt.Errorf("config: parse %s: %s", path, msg)
	}
	m := fk.Raw()
	if err := checkTree(m, root, ""); err != nil {
		return nil, err
	}
	return m, nil
}

// bytesProvider hands already-read bytes to a koanf parser.
type bytesProvider []byte

func (b bytesProvider) ReadBytes() ([]byte, error) { return b, nil }
func (b bytesProvider) Read() (map[string]any, error) {
	return nil, errors.New("bytesProvider does not support Read")
}

// readEnv returns the REPCACHE_ variables of environ as a flat map keyed by
// dotted config key.
func readEnv(environ []string) (map[string]any, error) {
	origin := map[string]string{} // key -> variable name, for error messages
	p := env.Provider("", env.Opt{
		Prefix:      envPrefix,
		EnvironFunc: func() []string { return environ },
		TransformFunc: func(name, value string) (string, any) {
			key := strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(name, envPrefix)), "__", ".")
			origin[key] = name
			return key, value
		},
	})
	m, err := p.Read()
	if err != nil {
		return nil, fmt.Errorf("config: environment: %w", err)
	}
	keys := make([]string, 0, len(m))
	for key := range m {
		keys = append(keys, key)
	}
	slices.Sort(keys)
	for _, key := range keys {
		n, ok := leaves[key]
		if !ok {
			return nil, fmt.Errorf("config: unknown field %q (from environment variable %s)", key, origin[key])
		}
		if n.typ == stringSliceType {
			parts := []string{} // "" is an empty list, which validation rejects
			if v := m[key].(string); v != "" {
				parts = strings.Split(v, ",")
			}
			for i := range parts {
				parts[i] = strings.TrimSpace(parts[i])
			}
			m[key] = parts
		}
	}
	return m, nil
}

// Validate checks ranges and allowed values. Load calls it; call it yourself
// after building or modifying a Config by hand.
func (c *Config) Validate() error {
	return validate(c)
}

// LogLevel returns Log.Level as a slog.Level (info if it is not valid).
func (c *Config) LogLevel() slog.Level {
	switch c.Log.Level {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// UnixSocketFileMode returns UnixSocketMode as a file mode to chmod unix
// sockets with (0660 if it is not valid, which Load never returns).
func (c *Config) UnixSocketFileMode() fs.FileMode {
	m, err := parseMode(c.UnixSocketMode)
	if err != nil {
		return 0o660
	}
	return m
}

// parseMode parses an octal permission string such as "0660".
func parseMode(s string) (fs.FileMode, error) {
	v, err := strconv.ParseUint(s, 8, 32)
	if err != nil || v > 0o777 {
		return 0, fmt.Errorf("%q is not an octal permission between 0000 and 0777", s)
	}
	return fs.FileMode(v), nil
}
