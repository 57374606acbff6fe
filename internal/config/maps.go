package config

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"

	"github.com/repcache/repcache/internal/store"
	"github.com/repcache/repcache/internal/ttl"
)

// MapConfig is one entry of "maps": a Postfix table served by repcache.
// Fields left out take the defaults of the map's kind (see ttl.Defaults).
type MapConfig struct {
	// Name identifies the map in logs, metrics and listener options.
	Name string `koanf:"name"`
	// Prefix is the fixed part of the Postfix table's key_format
	// ("postscreen:" for key_format = postscreen:%s).
	Prefix string `koanf:"prefix"`
	// Kind is postscreen, verify, fixed or passthrough.
	Kind string `koanf:"kind"`
	// Retention is postscreen_cache_retention_time (postscreen; default 7d).
	Retention time.Duration `koanf:"retention"`
	// RetentionRule is when a postscreen record's retention runs out:
	// latest_pass (default: its latest passed test + retention) or
	// first_expired (Postfix's psc_cache_validator code: its first enabled
	// test's stamp + retention). See ttl.RetentionRule.
	RetentionRule string `koanf:"retention_rule"`
	// PositiveExpire is address_verify_positive_expire_time (verify; default 31d).
	PositiveExpire time.Duration `koanf:"positive_expire"`
	// NegativeExpire is address_verify_negative_expire_time (verify; default 3d).
	NegativeExpire time.Duration `koanf:"negative_expire"`
	// TTL is the lifetime of every record of a fixed map.
	TTL time.Duration `koanf:"ttl"`
	// MinTTL and MaxTTL clamp every derived lifetime (postscreen and verify:
	// 1h and 90d; 0 max means no bound).
	MinTTL time.Duration `koanf:"min_ttl"`
	MaxTTL time.Duration `koanf:"max_ttl"`
	// ClientTTL is ignore (the client's exptime is ignored) or cap (it may
	// only shorten the derived lifetime). Default ignore.
	ClientTTL string `koanf:"client_ttl"`
	// MaxKeyLength is the longest key accepted on this map; keys over
	// limits.max_key_length are stored under a digest. Default 1024.
	MaxKeyLength int `koanf:"max_key_length"`
	// Backup is sync, async (default) or none: when a write reaches the
	// backup tier, if one is configured.
	Backup string `koanf:"backup"`
	// OnBackupError is degrade (default: the cache write stands, the
	// failure is counted) or fail (the write answers SERVER_ERROR) when a
	// sync backup write fails.
	OnBackupError string `koanf:"on_backup_error"`
}

// Rule returns the map's lifetime rule.
func (m MapConfig) Rule() ttl.Rule {
	return ttl.Rule{
		Kind: ttl.Kind(m.Kind), Retention: m.Retention, PositiveExpire: m.PositiveExpire,
		NegativeExpire: m.NegativeExpire, TTL: m.TTL, MinTTL: m.MinTTL, MaxTTL: m.MaxTTL,
		ClientTTL: ttl.ClientTTL(m.ClientTTL), RetentionRule: ttl.RetentionRule(m.RetentionRule),
	}
}

// Route returns what the map asks of the tiers (the policy fills in the
// map's name).
func (m MapConfig) Route() store.Route {
	r := store.Route{FailOnBackupError: m.OnBackupError == "fail"}
	switch m.Backup {
	case "sync":
		r.Backup = store.SyncBackup
	case "async":
		r.Backup = store.AsyncBackup
	}
	return r
}

// ListenerConfig is one entry of "listeners": an address with options.
// Addresses in "listen" serve every map, read-write.
type ListenerConfig struct {
	// Address is "host:port" or "unix:/path".
	Address string `koanf:"address"`
	// Maps lists the map names served here; empty means all. Keys outside
	// every map are refused on a listener that lists maps.
	Maps []string `koanf:"maps"`
	// ReadOnly refuses every write.
	ReadOnly bool `koanf:"read_only"`
	// Map binds the listener to one map: every key that arrives on it
	// belongs to that map, whatever it looks like (for Postfix 3.11+
	// tables with key_digest, whose keys are hashes). Exclusive with Maps.
	Map string `koanf:"map"`
}

const defaultMapKeyLength = 1024

// mapDefaults returns a map entry of kind k with every field at its default.
func mapDefaults(k ttl.Kind) MapConfig {
	r := ttl.Defaults(k)
	return MapConfig{
		Kind: string(k), Retention: r.Retention, PositiveExpire: r.PositiveExpire, NegativeExpire: r.NegativeExpire,
		TTL: r.TTL, MinTTL: r.MinTTL, MaxTTL: r.MaxTTL, ClientTTL: string(r.ClientTTL), RetentionRule: string(r.RetentionRule),
		MaxKeyLength: defaultMapKeyLength, Backup: "async", OnBackupError: "degrade",
	}
}

// defaultMaps are served when no maps are configured: Postfix's two caches
// with Postfix's own default lifetimes.
func defaultMaps() []MapConfig {
	ps, vf := mapDefaults(ttl.Postscreen), mapDefaults(ttl.Verify)
	ps.Name, ps.Prefix = "postscreen", "postscreen:"
	vf.Name, vf.Prefix = "verify", "verify:"
	return []MapConfig{ps, vf}
}

var (
	mapConfigType      = reflect.TypeFor[[]MapConfig]()
	listenerConfigType = reflect.TypeFor[[]ListenerConfig]()
)

// decodeMaps decodes the "maps" value of the merged layers: each entry is
// laid over the defaults of its kind, strictly (unknown keys are errors).
func decodeMaps(raw any) ([]MapConfig, error) {
	if v, ok := raw.([]MapConfig); ok {
		return v, nil
	}
	entries, err := entriesOf("maps", raw)
	if err != nil {
		return nil, err
	}
	out := make([]MapConfig, 0, len(entries))
	for i, e := range entries {
		at := fmt.Sprintf("maps[%d]", i)
		if name, ok := e["name"].(string); ok && name != "" {
			at = fmt.Sprintf("maps[%d] (%s)", i, name)
		}
		kind, _ := e["kind"].(string)
		k, err := ttl.ParseKind(kind)
		if err != nil {
			return nil, fmt.Errorf("config: %s.kind: %q is not one of postscreen, verify, fixed, passthrough", at, kind)
		}
		m := mapDefaults(k)
		if err := decodeEntry(at, e, &m); err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

func decodeListeners(raw any) ([]ListenerConfig, error) {
	if v, ok := raw.([]ListenerConfig); ok {
		return v, nil
	}
	entries, err := entriesOf("listeners", raw)
	if err != nil || len(entries) == 0 {
		return nil, err
	}
	out := make([]ListenerConfig, len(entries))
	for i, e := range entries {
		if err := decodeEntry(fmt.Sprintf("listeners[%d]", i), e, &out[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func entriesOf(key string, raw any) ([]map[string]any, error) {
	if raw == nil {
		return nil, nil
	}
	list, ok := raw.([]any)
	if !ok {
		return nil, fmt.Errorf("config: %s: expected a list of mappings, got %s", key, describe(raw))
	}
	out := make([]map[string]any, len(list))
	for i, v := range list {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("config: %s[%d]: expected a mapping, got %s", key, i, describe(v))
		}
		out[i] = m
	}
	return out, nil
}

// decodeEntry decodes one list entry into dst with the strict hook,
// reporting the first problem by field name.
func decodeEntry(at string, e map[string]any, dst any) error {
	known := map[string]bool{}
	t := reflect.TypeOf(dst).Elem()
	for i := range t.NumField() {
		known[t.Field(i).Tag.Get("koanf")] = true
	}
	keys := make([]string, 0, len(e))
	for k := range e {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !known[k] {
			return fmt.Errorf("config: %s: unknown field %q", at, k)
		}
		if e[k] == nil {
			return fmt.Errorf("config: %s.%s: expected a value, got null", at, k)
		}
	}
	d, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		DecodeHook: decodeHook, ErrorUnused: true, TagName: "koanf", Result: dst,
		MatchName: func(mapKey, fieldName string) bool { return mapKey == fieldName },
	})
	if err != nil {
		return err
	}
	if err := d.Decode(e); err != nil {
		msg := decodeError(err).Error()
		return fmt.Errorf("config: %s.%s", at, strings.TrimPrefix(msg, "config: "))
	}
	return nil
}

var unknownKeyModes = []string{"allow", "reject"}

// validateMaps checks maps, listeners and unknown_keys together, since
// listeners name maps and addresses may not repeat across listen and
// listeners.
func validateMaps(c *Config) []fieldError {
	var errs []fieldError
	add := func(key string, format string, args ...any) {
		errs = append(errs, fieldError{key, fmt.Errorf(format, args...)})
	}
	if err := oneOf(c.UnknownKeys, unknownKeyModes); err != nil {
		errs = append(errs, fieldError{"unknown_keys", err})
	}
	names, prefixes := map[string]bool{}, map[string]string{}
	for i, m := range c.Maps {
		at := fmt.Sprintf("maps[%d]", i)
		if m.Name != "" {
			at = fmt.Sprintf("maps[%d] (%s)", i, m.Name)
		}
		switch {
		case m.Name == "":
			add(at+".name", "must not be empty")
		case names[m.Name]:
			add(at+".name", "%q is used by another map", m.Name)
		}
		names[m.Name] = true
		if other, dup := prefixes[m.Prefix]; dup {
			add(at+".prefix", "%q is already the prefix of map %s", m.Prefix, other)
		}
		prefixes[m.Prefix] = m.Name
		if strings.ContainsAny(m.Prefix, " \t\r\n") {
			add(at+".prefix", "%q contains white space, which memcache keys cannot", m.Prefix)
		}
		if err := oneOf(m.Backup, []string{"sync", "async", "none"}); err != nil {
			add(at+".backup", "%v", err)
		}
		if err := oneOf(m.OnBackupError, []string{"degrade", "fail"}); err != nil {
			add(at+".on_backup_error", "%v", err)
		}
		if err := m.Rule().Validate(); err != nil {
			add(at, "%v", err)
		}
		if m.MaxKeyLength < c.Limits.MaxKeyLength || m.MaxKeyLength > maxKeyLengthMax {
			add(at+".max_key_length", "%d is outside limits.max_key_length (%d)..%d", m.MaxKeyLength, c.Limits.MaxKeyLength, maxKeyLengthMax)
		}
		// A long key is kept under its map's prefix and a digest, which
		// must itself fit limits.max_key_length.
		if len(m.Prefix)+store.DigestLen > c.Limits.MaxKeyLength {
			add(at+".prefix", "%q is too long: at most %d bytes with limits.max_key_length %d", m.Prefix, c.Limits.MaxKeyLength-store.DigestLen, c.Limits.MaxKeyLength)
		}
	}
	seen := map[string]bool{}
	for _, a := range c.Listen {
		seen[a] = true
	}
	for i, l := range c.Listeners {
		at := fmt.Sprintf("listeners[%d]", i)
		if err := checkListen([]string{l.Address}); err != nil {
			add(at+".address", "%v", err)
		} else if seen[l.Address] {
			add(at+".address", "%q is already listed (in listen or listeners)", l.Address)
		}
		seen[l.Address] = true
		for _, n := range l.Maps {
			if !names[n] {
				add(at+".maps", "%q is not the name of a configured map", n)
			}
		}
		switch {
		case l.Map != "" && len(l.Maps) > 0:
			add(at+".map", "a listener bound to map %s serves only that map: leave maps out", l.Map)
		case l.Map != "" && !names[l.Map]:
			add(at+".map", "%q is not the name of a configured map", l.Map)
		}
	}
	return errs
}
