package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/v2"
	"github.com/spf13/pflag"
)

// load parses args with a fresh flag set, as main does, and calls Load.
func load(t testing.TB, args []string, environ []string) (*Config, error) {
	t.Helper()
	fs := pflag.NewFlagSet("repcache", pflag.ContinueOnError)
	Flags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("parse flags %q: %v", args, err)
	}
	c, err := Load(fs, environ)
	if c != nil {
		c.File = "" // compared separately in TestFileIsRecorded
	}
	return c, err
}

func TestFileIsRecorded(t *testing.T) {
	fs := pflag.NewFlagSet("repcache", pflag.ContinueOnError)
	Flags(fs)
	fs.Parse([]string{"--config", "../../examples/repcache.yaml"})
	c, err := Load(fs, nil)
	if err != nil || c.File != "../../examples/repcache.yaml" {
		t.Fatalf("File = %q, %v", c.File, err)
	}
}

// with returns Default() modified by f.
func with(f func(c *Config)) *Config {
	c := Default()
	f(c)
	return c
}

func TestDefaults(t *testing.T) {
	want := &Config{
		Listen:          []string{"127.0.0.1:11211"},
		UnixSocketMode:  "0660",
		ShutdownTimeout: 10 * time.Second,
		Admin:           AdminConfig{Listen: "127.0.0.1:9150"},
		Cache:           CacheConfig{Backend: "memory", Memory: MemoryConfig{MaxBytes: 64 << 20}},
		Limits: LimitsConfig{
			MaxConnections: 1024,
			IdleTimeout:    5 * time.Minute,
			MaxKeyLength:   250,
			MaxItemSize:    1 << 20,
			MaxLineLength:  2048,
		},
		Log: LogConfig{Level: "info", Format: "text"},
		Maps: []MapConfig{
			{Name: "postscreen", Prefix: "postscreen:", Kind: "postscreen", Retention: 7 * 24 * time.Hour, RetentionRule: "latest_pass",
				MinTTL: time.Hour, MaxTTL: 90 * 24 * time.Hour, ClientTTL: "ignore", MaxKeyLength: 1024, Backup: "async", OnBackupError: "degrade"},
			{Name: "verify", Prefix: "verify:", Kind: "verify", PositiveExpire: 31 * 24 * time.Hour, NegativeExpire: 3 * 24 * time.Hour,
				MinTTL: time.Hour, MaxTTL: 90 * 24 * time.Hour, ClientTTL: "ignore", MaxKeyLength: 1024, Backup: "async", OnBackupError: "degrade"},
		},
		UnknownKeys: "allow",
		OnError:     "miss",
	}
	want.Cache.Memcached = MemcachedConfig{Servers: []string{}, Timeout: 100 * time.Millisecond, Conns: 1}
	want.Cache.MissedWritesLimit, want.Cache.ProbeInterval = 100000, time.Second
	want.Backup = BackupConfig{Backend: "none", QueueSize: 10000, QueueBytes: 64 * MiB,
		Redis: RedisConfig{Addrs: []string{}, KeyPrefix: "repcache:", Timeout: 100 * time.Millisecond}}
	if got := Default(); !reflect.DeepEqual(got, want) {
		t.Errorf("Default() = %+v, want %+v", got, want)
	}
	if err := Default().Validate(); err != nil {
		t.Errorf("Default().Validate() = %v", err)
	}
	got, err := load(t, nil, nil)
	if err != nil {
		t.Fatalf("Load with nothing set: %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Load with nothing set = %+v, want %+v", got, want)
	}
	got, err = Load(nil, nil)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("Load(nil, nil) = %+v, %v; want defaults", got, err)
	}
}

func TestLoadValid(t *testing.T) {
	tests := []struct {
		file string
		want *Config
	}{
		{"empty.yaml", Default()},
		{"minimal.yaml", with(func(c *Config) { c.Listen = []string{"unix:/run/repcache/repcache.sock"} })},
		{"full.yaml", &Config{
			Listen:          []string{"127.0.0.1:11311", "[::1]:11311", "unix:/run/repcache/repcache.sock"},
			UnixSocketMode:  "0600",
			ShutdownTimeout: 30 * time.Second,
			Admin:           AdminConfig{Listen: ""},
			Cache:           CacheConfig{Backend: "memory", Memory: MemoryConfig{MaxBytes: GiB}, Memcached: Default().Cache.Memcached, MissedWritesLimit: 100000, ProbeInterval: time.Second},
			Limits: LimitsConfig{
				MaxConnections: 4096,
				IdleTimeout:    90 * time.Second,
				MaxKeyLength:   1024,
				MaxItemSize:    4 * MiB,
				MaxLineLength:  8192,
			},
			Log:         LogConfig{Level: "debug", Format: "json"},
			Maps:        defaultMaps(),
			UnknownKeys: "allow",
			OnError:     "miss",
			Backup:      Default().Backup,
		}},
	}
	files, _ := filepath.Glob("testdata/valid/*.yaml")
	if len(files) != len(tests) {
		t.Errorf("testdata/valid has %d files, table has %d cases", len(files), len(tests))
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := load(t, []string{"--config", filepath.Join("testdata", "valid", tt.file)}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// invalidCases maps each file in testdata/invalid to Load's exact error.
var invalidCases = map[string]string{
	"memcached_without_servers":           `config: cache.memcached.servers: must list at least one address when cache.backend is memcached`,
	"memcached_bad_server":                `config: cache.memcached.servers: "localhost" is not host:port (missing or malformed port)`,
	"redis_without_addrs":                 `config: backup.redis.addrs: must list at least one address when backup.backend is redis`,
	"redis_several_addrs_without_cluster": `config: backup.redis.addrs: lists 2 addresses: several addresses are cluster seeds (set cluster: true) or Sentinels (set master_name); a single server takes one address`,
	"redis_cluster_and_master_name":       `config: backup.redis.master_name: Sentinel (master_name) and cluster are exclusive: set one of them`,
	"redis_cluster_db":                    `config: backup.redis.db: 2 is not 0: Redis Cluster has only database 0`,
	"map_prefix_too_long":                 `config: maps[0] (vf).prefix: "vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv" is too long: at most 206 bytes with limits.max_key_length 250`,
	"bad_backup_backend":                  `config: backup.backend: "memcached" is not one of none, redis`,
	"redis_password_and_file":             `config: backup.redis.password_file: set either password or password_file, not both`,
	"bad_on_error":                        `config: on_error: "panic" is not one of miss, error`,
	"map_bad_backup":                      `config: maps[0] (vf).backup: "later" is not one of sync, async, none`,
	"redis_cluster_not_bool":              `config: backup.redis.cluster: cannot parse "yes please" as a boolean (true or false)`,
	"map_bad_kind":                        `config: maps[0] (ps).kind: "greylist" is not one of postscreen, verify, fixed, passthrough`,
	"map_unknown_field":                   `config: maps[0] (ps): unknown field "retension"`,
	"map_duplicate_name":                  `config: maps[1] (ps).name: "ps" is used by another map`,
	"map_duplicate_prefix":                `config: maps[1] (b).prefix: "x:" is already the prefix of map a`,
	"map_fixed_without_ttl":               `config: maps[0] (grey): ttl must be above 0 for a fixed map`,
	"map_min_over_max":                    `config: maps[0] (ps): min_ttl 2h0m0s is above max_ttl 1h0m0s`,
	"map_integer_duration":                `config: maps[0] (vf).positive_expire: expected a duration such as "30s" or "5m", got integer 31`,
	"map_bad_retention_rule":              `config: maps[0] (ps): unknown retention_rule "all_tests": want latest_pass or first_expired`,
	"map_bad_client_ttl":                  `config: maps[0] (vf): unknown client_ttl "honour": want ignore or cap`,
	"map_prefix_whitespace":               `config: maps[0] (vf).prefix: "vf :" contains white space, which memcache keys cannot`,
	"map_key_length_below_limit":          `config: maps[0] (vf).max_key_length: 100 is outside limits.max_key_length (250)..65535`,
	"maps_not_list":                       `config: maps: expected a list of mappings, got string "postscreen"`,
	"listener_unknown_map":                `config: listeners[0].maps: "greylist" is not the name of a configured map`,
	"listener_duplicate_address":          `config: listeners[0].address: "127.0.0.1:11211" is already listed (in listen or listeners)`,
	"listener_bound_unknown_map":          `config: listeners[0].map: "greylist" is not the name of a configured map`,
	"listener_bound_and_maps":             `config: listeners[0].map: a listener bound to map postscreen serves only that map: leave maps out`,
	"listener_unknown_field":              `config: listeners[0]: unknown field "readonly"`,
	"unknown_keys_bad":                    `config: unknown_keys: "drop" is not one of allow, reject`,
	"unknown_top_level":                   `config: unknown field "listne"`,
	"unknown_nested":                      `config: unknown field "cache.memroy"`,
	"dotted_key":                          `config: field name "cache.backend" contains "."; nest the keys instead`,
	"section_not_mapping":                 `config: cache: expected a mapping of cache.* keys, got string "memory"`,
	"null_value":                          `config: log.level: expected a string, got null`,
	"bad_backend":                         `config: cache.backend: "redis" is not one of memory, memcached`,
	"bad_byte_size":                       `config: cache.memory.max_bytes: cannot parse "64 megabytes" as a byte size (want bytes or a unit such as "64MiB")`,
	"max_bytes_too_small":                 `config: cache.memory.max_bytes: 512KiB is below the minimum of 1MiB`,
	"negative_max_connections":            `config: limits.max_connections: -5 is below the minimum of 1`,
	"max_connections_not_int":             `config: limits.max_connections: cannot parse "lots" as int`,
	"integer_duration":                    `config: limits.idle_timeout: expected a duration such as "30s" or "5m", got integer 300`,
	"bad_duration":                        `config: shutdown_timeout: cannot parse "10 seconds" as a duration (want Go syntax such as "30s" or "5m")`,
	"zero_duration":                       `config: shutdown_timeout: must be greater than 0, got 0s`,
	"bad_log_level":                       `config: log.level: "verbose" is not one of debug, info, warn, error`,
	"bad_log_format":                      `config: log.format: "logfmt" is not one of text, json`,
	"bad_unix_socket_mode":                `config: unix_socket_mode: "0999" is not an octal permission between 0000 and 0777`,
	"unquoted_unix_socket_mode":           `config: unix_socket_mode: expected a quoted octal string such as "0660", got integer 432`,
	"max_item_size_too_large":             `config: limits.max_item_size: 4MiB exceeds cache.memory.max_bytes/4 (1MiB)`,
	"max_item_size_too_small":             `config: limits.max_item_size: 512B is below the minimum of 1KiB`,
	"max_key_length_too_large":            `config: limits.max_key_length: 70000 is outside 1..65535`,
	"max_line_length_too_small":           `config: limits.max_line_length: 100 is below the minimum of 512`,
	"yaml_syntax_error":                   `config: parse testdata/invalid/yaml_syntax_error.yaml: yaml: line 2: did not find expected key`,
	"duplicate_key":                       `config: parse testdata/invalid/duplicate_key.yaml: yaml: unmarshal errors: line 3: mapping key "level" already defined at line 2`,
	"not_a_mapping":                       `config: parse testdata/invalid/not_a_mapping.yaml: yaml: unmarshal errors: line 1: cannot unmarshal !!seq as the top-level mapping of keys`,
	"listen_not_list":                     `config: listen: expected a list of strings, got string "127.0.0.1:11211"`,
	"listen_not_strings":                  `config: listen: expected a list of strings, got integer 11211 at index 0`,
	"empty_listen":                        `config: listen: must list at least one address`,
	"bad_listen_entry":                    `config: listen: "localhost" is neither host:port nor unix:/path (missing or malformed port)`,
	"relative_unix_listen":                `config: listen: "unix:repcache.sock" is neither host:port nor unix:/path (socket path must be absolute)`,
	"duplicate_listen":                    `config: listen: "127.0.0.1:11211" is listed twice`,
	"bad_admin_listen":                    `config: admin.listen: "unix:/run/repcache/admin.sock" is not host:port (unix sockets are not supported here); use "" to disable`,
	"queue_bytes_too_small":               `config: backup.queue_bytes: 512B is below the minimum of 1KiB`,
	"missed_writes_limit_zero":            `config: cache.missed_writes_limit: 0 is below the minimum of 1`,
	"memcached_conns_zero":                `config: cache.memcached.conns: 0 is outside 1..64`,
	"memcached_conns_too_many":            `config: cache.memcached.conns: 65 is outside 1..64`,
}

func TestLoadInvalid(t *testing.T) {
	files, _ := filepath.Glob("testdata/invalid/*.yaml")
	for _, f := range files {
		if _, ok := invalidCases[strings.TrimSuffix(filepath.Base(f), ".yaml")]; !ok {
			t.Errorf("%s has no expected error in invalidCases", f)
		}
	}
	for name, want := range invalidCases {
		t.Run(name, func(t *testing.T) {
			path := "testdata/invalid/" + name + ".yaml"
			if _, err := os.Stat(path); err != nil {
				t.Fatal(err)
			}
			// Twice: the message must not depend on map iteration order.
			for range 2 {
				_, err := load(t, []string{"--config", path}, nil)
				if err == nil || err.Error() != want {
					t.Fatalf("error = %v\nwant    %s", err, want)
				}
			}
		})
	}
}

func TestLoadFileErrors(t *testing.T) {
	_, err := load(t, []string{"--config", "testdata/missing.yaml"}, nil)
	if want := "config: read testdata/missing.yaml: no such file or directory"; err == nil || err.Error() != want {
		t.Errorf("missing file: error = %v, want %s", err, want)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: errors.Is(err, fs.ErrNotExist) = false for %v", err)
	}
	_, err = load(t, []string{"--config", "testdata"}, nil)
	if want := "config: read testdata: is a directory"; err == nil || err.Error() != want {
		t.Errorf("directory: error = %v, want %s", err, want)
	}
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "repcache.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestPrecedence(t *testing.T) {
	cfgFile := writeFile(t, "limits:\n  max_connections: 10\n  idle_timeout: 1m\ncache:\n  memory:\n    max_bytes: 128MiB\n")
	const envVar = "REPCACHE_LIMITS__MAX_CONNECTIONS=20"
	tests := []struct {
		name    string
		args    []string
		environ []string
		want    int
	}{
		{"defaults", nil, nil, 1024},
		{"file", []string{"--config", cfgFile}, nil, 10},
		{"env over defaults", nil, []string{envVar}, 20},
		{"env over file", []string{"--config", cfgFile}, []string{envVar}, 20},
		{"flag over defaults", []string{"--limits.max_connections=30"}, nil, 30},
		{"flag over file", []string{"--config", cfgFile, "--limits.max_connections=30"}, nil, 30},
		{"flag over env and file", []string{"--config", cfgFile, "--limits.max_connections=30"}, []string{envVar}, 30},
		// Setting a flag to the default value still counts as set.
		{"flag set to its default", []string{"--config", cfgFile, "--limits.max_connections=1024"}, []string{envVar}, 1024},
		// Other flags being set must not drag max_connections' flag default in.
		{"unchanged flag keeps file", []string{"--config", cfgFile, "--log.level=debug"}, nil, 10},
		{"unchanged flag keeps env", []string{"--log.level=debug"}, []string{envVar}, 20},
		// Variables without the prefix are not ours.
		{"unprefixed env ignored", nil, []string{"LIMITS__MAX_CONNECTIONS=20", "PATH=/bin"}, 1024},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := load(t, tt.args, tt.environ)
			if err != nil {
				t.Fatal(err)
			}
			if got.Limits.MaxConnections != tt.want {
				t.Errorf("max_connections = %d, want %d", got.Limits.MaxConnections, tt.want)
			}
		})
	}

	// Every layer leaves the keys it does not set alone.
	got, err := load(t, []string{"--config", cfgFile, "--shutdown_timeout=3s"},
		[]string{"REPCACHE_CACHE__MEMORY__MAX_BYTES=256m", "REPCACHE_LOG__FORMAT=json"})
	if err != nil {
		t.Fatal(err)
	}
	want := with(func(c *Config) {
		c.Limits.MaxConnections = 10
		c.Limits.IdleTimeout = time.Minute
		c.Cache.Memory.MaxBytes = 256 * MiB
		c.Log.Format = "json"
		c.ShutdownTimeout = 3 * time.Second
	})
	if !reflect.DeepEqual(got, want) {
		t.Errorf("mixed layers:\ngot  %+v\nwant %+v", got, want)
	}
}

func TestFlags(t *testing.T) {
	fs := pflag.NewFlagSet("repcache", pflag.ContinueOnError)
	Flags(fs)
	for key := range leaves {
		if key == "maps" || key == "listeners" {
			continue // lists of mappings: YAML only
		}
		if fs.Lookup(key) == nil {
			t.Errorf("no flag for config key %q", key)
		}
	}
	if fs.Lookup("config") == nil {
		t.Error("no --config flag")
	}

	// Each flag type reaches the Config; foreign flags are ignored.
	fs.Bool("version", false, "caller's own flag")
	err := fs.Parse([]string{
		"--listen=127.0.0.1:1,unix:/tmp/a.sock", "--listen=[::1]:2",
		"--unix_socket_mode=0600", "--shutdown_timeout=1s",
		"--admin.listen=", "--cache.backend=memory", "--cache.memory.max_bytes=1GB",
		"--limits.max_connections=7", "--limits.idle_timeout=2m", "--limits.max_key_length=100",
		"--limits.max_item_size=2MiB", "--limits.max_line_length=4096",
		"--log.level=warn", "--log.format=json", "--version", "--unknown_keys=reject",
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := Load(fs, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		Listen:          []string{"127.0.0.1:1", "unix:/tmp/a.sock", "[::1]:2"},
		UnixSocketMode:  "0600",
		ShutdownTimeout: time.Second,
		Admin:           AdminConfig{Listen: ""},
		Cache:           CacheConfig{Backend: "memory", Memory: MemoryConfig{MaxBytes: 1e9}, Memcached: Default().Cache.Memcached, MissedWritesLimit: 100000, ProbeInterval: time.Second},
		Limits:          LimitsConfig{MaxConnections: 7, IdleTimeout: 2 * time.Minute, MaxKeyLength: 100, MaxItemSize: 2 * MiB, MaxLineLength: 4096},
		Log:             LogConfig{Level: "warn", Format: "json"},
		Maps:            defaultMaps(),
		UnknownKeys:     "reject",
		OnError:         "miss",
		Backup:          Default().Backup,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}

	// Flag values are validated like any other layer.
	_, err = load(t, []string{"--log.level=loud"}, nil)
	if want := `config: log.level: "loud" is not one of debug, info, warn, error`; err == nil || err.Error() != want {
		t.Errorf("error = %v, want %s", err, want)
	}
	// Byte sizes are parsed when the flags are.
	fs = pflag.NewFlagSet("repcache", pflag.ContinueOnError)
	fs.SetOutput(new(bytes.Buffer))
	Flags(fs)
	if err := fs.Parse([]string{"--cache.memory.max_bytes=lots"}); err == nil {
		t.Error("--cache.memory.max_bytes=lots parsed without error")
	}
}

func TestEnv(t *testing.T) {
	tests := []struct {
		name    string
		environ []string
		want    *Config // nil when an error is expected
		err     string
	}{
		{
			name:    "list split on commas",
			environ: []string{"REPCACHE_LISTEN=a:1,unix:/x"},
			want:    with(func(c *Config) { c.Listen = []string{"a:1", "unix:/x"} }),
		},
		{
			name:    "list entries trimmed",
			environ: []string{"REPCACHE_LISTEN= 127.0.0.1:1 , [::1]:2"},
			want:    with(func(c *Config) { c.Listen = []string{"127.0.0.1:1", "[::1]:2"} }),
		},
		{
			name: "every type",
			environ: []string{
				"REPCACHE_CACHE__MEMORY__MAX_BYTES=512MiB",
				"REPCACHE_LIMITS__MAX_ITEM_SIZE=2097152",
				"REPCACHE_LIMITS__IDLE_TIMEOUT=30s",
				"REPCACHE_LIMITS__MAX_KEY_LENGTH=300",
				"REPCACHE_UNIX_SOCKET_MODE=0600",
			},
			want: with(func(c *Config) {
				c.Cache.Memory.MaxBytes = 512 * MiB
				c.Limits.MaxItemSize = 2 * MiB
				c.Limits.IdleTimeout = 30 * time.Second
				c.Limits.MaxKeyLength = 300
				c.UnixSocketMode = "0600"
			}),
		},
		{
			name:    "empty value disables admin",
			environ: []string{"REPCACHE_ADMIN__LISTEN="},
			want:    with(func(c *Config) { c.Admin.Listen = "" }),
		},
		{
			name:    "empty list",
			environ: []string{"REPCACHE_LISTEN="},
			err:     "config: listen: must list at least one address",
		},
		{
			name:    "unknown key",
			environ: []string{"REPCACHE_CACHE__MEMROY__MAX_BYTES=1"},
			err:     `config: unknown field "cache.memroy.max_bytes" (from environment variable REPCACHE_CACHE__MEMROY__MAX_BYTES)`,
		},
		{
			name:    "single underscore is not a level",
			environ: []string{"REPCACHE_LIMITS_MAX_CONNECTIONS=5"},
			err:     `config: unknown field "limits_max_connections" (from environment variable REPCACHE_LIMITS_MAX_CONNECTIONS)`,
		},
		{
			name:    "section is not a value",
			environ: []string{"REPCACHE_CACHE=memory"},
			err:     `config: unknown field "cache" (from environment variable REPCACHE_CACHE)`,
		},
		{
			name:    "first unknown key in sorted order",
			environ: []string{"REPCACHE_ZZZ=1", "REPCACHE_AAA=1"},
			err:     `config: unknown field "aaa" (from environment variable REPCACHE_AAA)`,
		},
		{
			name:    "type error",
			environ: []string{"REPCACHE_LIMITS__MAX_CONNECTIONS=lots"},
			err:     `config: limits.max_connections: cannot parse "lots" as int`,
		},
		{
			name:    "duration error",
			environ: []string{"REPCACHE_SHUTDOWN_TIMEOUT=10"},
			err:     `config: shutdown_timeout: cannot parse "10" as a duration (want Go syntax such as "30s" or "5m")`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := load(t, nil, tt.environ)
			if tt.want == nil {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("error = %v\nwant    %s", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// TestErrorOrder checks that with several problems the reported one is fixed:
// type errors before range errors, each by key.
func TestErrorOrder(t *testing.T) {
	path := writeFile(t, "log:\n  level: loud\nlimits:\n  max_connections: lots\n  max_key_length: x\ncache:\n  backend: redis\n")
	for range 5 {
		_, err := load(t, []string{"--config", path}, nil)
		if want := `config: limits.max_connections: cannot parse "lots" as int`; err == nil || err.Error() != want {
			t.Fatalf("error = %v, want %s", err, want)
		}
	}
	path = writeFile(t, "log:\n  level: loud\ncache:\n  backend: redis\n")
	_, err := load(t, []string{"--config", path}, nil)
	if want := `config: cache.backend: "redis" is not one of memory, memcached`; err == nil || err.Error() != want {
		t.Fatalf("error = %v, want %s", err, want)
	}
}

// TestExample checks that examples/repcache.yaml loads, documents every key
// and, as it promises, equals the defaults.
func TestExample(t *testing.T) {
	const path = "../../examples/repcache.yaml"
	got, err := load(t, []string{"--config", path}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, Default()) {
		t.Errorf("example differs from defaults:\ngot  %+v\nwant %+v", got, Default())
	}
	k := koanf.New(".")
	if err := k.Load(file.Provider(path), yaml.Parser()); err != nil {
		t.Fatal(err)
	}
	var want []string
	for key := range leaves {
		want = append(want, key)
	}
	slices.Sort(want)
	if keys := k.Keys(); !slices.Equal(keys, want) {
		t.Errorf("example sets keys %q, want every key %q", keys, want)
	}
}

func TestByteSize(t *testing.T) {
	good := []struct {
		in   string
		want ByteSize
		str  string
	}{
		{"0", 0, "0B"},
		{"100", 100, "100B"},
		{"100B", 100, "100B"},
		{"1KiB", 1024, "1KiB"},
		{"1536KiB", 1536 * KiB, "1536KiB"},
		{"64MiB", 64 * MiB, "64MiB"},
		{"64 MiB", 64 * MiB, "64MiB"},
		{"2GiB", 2 * GiB, "2GiB"},
		{"1TiB", TiB, "1TiB"},
		{"64m", 64 * MiB, "64MiB"},
		{"64M", 64 * MiB, "64MiB"},
		{"512k", 512 * KiB, "512KiB"},
		{"1g", GiB, "1GiB"},
		{"64MB", 64e6, "64MB"},
		{"1KB", 1000, "1KB"},
		{"1025", 1025, "1025B"},
		{"1024000", 1000 * KiB, "1000KiB"},
		{"1GB", 1e9, "1GB"},
	}
	for _, tt := range good {
		got, err := ParseByteSize(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
			continue
		}
		if s := got.String(); s != tt.str {
			t.Errorf("ByteSize(%d).String() = %q, want %q", got, s, tt.str)
		}
		if back, err := ParseByteSize(got.String()); err != nil || back != got {
			t.Errorf("String() of %d does not parse back: %d, %v", got, back, err)
		}
	}
	for _, in := range []string{"", "MiB", "-1", "+1", "1.5GiB", "64mb", "64 megabytes", "1 2", "0x10", "99999999999TiB", "99999999999999999999"} {
		if got, err := ParseByteSize(in); err == nil {
			t.Errorf("ParseByteSize(%q) = %d, want an error", in, got)
		}
	}
	b, err := json.Marshal(struct{ S ByteSize }{64 * MiB})
	if err != nil || string(b) != `{"S":"64MiB"}` {
		t.Errorf("json.Marshal = %s, %v", b, err)
	}
}

func TestLogger(t *testing.T) {
	for level, want := range map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError} {
		c := with(func(c *Config) { c.Log.Level = level })
		if got := c.LogLevel(); got != want {
			t.Errorf("LogLevel(%q) = %v, want %v", level, got, want)
		}
	}

}

func TestUnixSocketFileMode(t *testing.T) {
	if got := Default().UnixSocketFileMode(); got != 0o660 {
		t.Errorf("default mode = %v", got)
	}
	if got := with(func(c *Config) { c.UnixSocketMode = "600" }).UnixSocketFileMode(); got != 0o600 {
		t.Errorf(`mode "600" = %v`, got)
	}
}

// FuzzLoadYAML feeds arbitrary file contents to Load: errors are fine,
// panics and accepted-but-invalid configs are not.
func FuzzLoadYAML(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*/*.yaml")
	seeds = append(seeds, "../../examples/repcache.yaml")
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("cache: {1: x, true: y, null: z}\n"))
	f.Add([]byte("listen: &a [*a]\n"))
	f.Add([]byte("admin: {listen: 2001-01-01}\nlimits: {max_item_size: 1e3, max_connections: 18446744073709551615}\n"))
	path := filepath.Join(f.TempDir(), "fuzz.yaml")
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := load(t, []string{"--config", path}, nil)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "config: ") {
				t.Errorf("error without prefix: %v", err)
			}
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Errorf("Load accepted a config that fails Validate: %v", err)
		}
	})
}
