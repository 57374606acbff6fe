package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sony/gobreaker/v2"

	"github.com/repcache/repcache/internal/config"
	"github.com/repcache/repcache/internal/policy"
	"github.com/repcache/repcache/internal/store"
	"github.com/repcache/repcache/internal/store/memcached"
	"github.com/repcache/repcache/internal/store/memory"
	"github.com/repcache/repcache/internal/store/redis"
	"github.com/repcache/repcache/internal/store/tiered"
)

// tiers are the storage tiers the configuration asks for.
type tiers struct {
	stopWatch     func()
	store         *tiered.Store
	cache, backup store.Store
	guards        []*tiered.Guard
	redis         *redis.Store // watched for expirations once serving starts (see serve)
}

// Ready reports whether the cache tier is believed reachable.
func (t *tiers) Ready() error {
	for _, g := range t.guards {
		if g.Name() == "memcached" {
			return g.Ready()
		}
	}
	return nil
}

// closeAll drains the async backup queue within ctx, then closes the tiers.
func (t *tiers) closeAll(ctx context.Context, log *slog.Logger) {
	if err := t.store.Drain(ctx); err != nil {
		log.Warn("backup queue not fully written before exit", "err", err)
	}
	if t.stopWatch != nil {
		t.stopWatch()
	}
	t.cache.Close()
	if t.backup != nil {
		t.backup.Close()
	}
}

func newTiers(cfg *config.Config, live *policy.Live, log *slog.Logger, reg prometheus.Registerer) (*tiers, error) {
	t := &tiers{}
	gm := tiered.NewGuardMetrics(reg)
	onState := func(name string, from, to gobreaker.State) {
		log.Warn("backend circuit breaker changed state", "backend", name, "from", from.String(), "to", to.String())
	}
	switch cfg.Cache.Backend {
	case "memcached":
		mc, err := memcached.New(memcached.Options{
			Servers:     cfg.Cache.Memcached.Servers,
			Timeout:     cfg.Cache.Memcached.Timeout,
			MaxItemSize: int(cfg.Limits.MaxItemSize),
		})
		if err != nil {
			return nil, fmt.Errorf("cache.memcached: %w", err)
		}
		g := tiered.NewGuard("memcached", mc, tiered.GuardOptions{Timeout: cfg.Cache.Memcached.Timeout, OnStateChange: onState}).WithMetrics(gm)
		t.cache, t.guards = g, append(t.guards, g)
	default:
		m, err := memory.New(memory.Options{MaxBytes: int64(cfg.Cache.Memory.MaxBytes), MaxItemSize: int(cfg.Limits.MaxItemSize),
			OnExpire: func(key []byte) { live.Load().Expired(key, "cache") }})
		if err != nil {
			return nil, fmt.Errorf("cache.memory: %w", err)
		}
		m.RegisterMetrics(reg)
		t.cache = m
	}
	if cfg.Backup.Backend == "redis" {
		rc := cfg.Backup.Redis
		password := rc.Password
		if rc.PasswordFile != "" {
			b, err := os.ReadFile(rc.PasswordFile)
			if err != nil {
				t.cache.Close()
				return nil, fmt.Errorf("backup.redis.password_file: %w", err)
			}
			password = strings.TrimRight(string(b), "\r\n")
		}
		var tlsConf *tls.Config
		if rc.TLS {
			tlsConf = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		r, err := redis.New(redis.Options{
			Addrs: rc.Addrs, MasterName: rc.MasterName, Cluster: rc.Cluster,
			Username: rc.Username, Password: password, DB: rc.DB, TLS: tlsConf,
			KeyPrefix: rc.KeyPrefix, Timeout: rc.Timeout, PoolSize: rc.PoolSize,
			MaxItemSize: int(cfg.Limits.MaxItemSize),
		})
		if err != nil {
			t.cache.Close()
			return nil, fmt.Errorf("backup.redis: %w", err)
		}
		g := tiered.NewGuard("redis", r, tiered.GuardOptions{Timeout: rc.Timeout, OnStateChange: onState}).WithMetrics(gm)
		t.backup, t.guards = g, append(t.guards, g)
		t.redis = r
	}
	t.store = tiered.New(t.cache, t.backup, tiered.Options{
		Rule:          live.TierRule,
		MapOf:         live.MapName,
		ErrorOnOutage: cfg.OnError == "error",
		QueueSize:     cfg.Backup.QueueSize,
		Logger:        log,
	})
	var names []string
	for _, m := range live.Load().Maps() {
		names = append(names, m.Name)
	}
	t.store.NewMetrics(reg, names)
	return t, nil
}

// watchRedisExpiry counts Redis's expirations per map from keyspace events.
// Turning the events on needs CONFIG SET; where Redis forbids it (managed
// services), the operator sets notify-keyspace-events Ex and this still works.
func (t *tiers) watchRedisExpiry(r *redis.Store, live *policy.Live, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := r.EnableExpiryEvents(ctx); err != nil {
		log.Warn("cannot enable Redis expiry events; set notify-keyspace-events Ex on the server for the backup expiration metric", "err", err)
	}
	stop, err := r.SubscribeExpired(context.Background(), func(key string) { live.Load().Expired([]byte(key), "backup") })
	if err != nil {
		log.Warn("cannot subscribe to Redis expiry events", "err", err)
		return
	}
	t.stopWatch = stop
}

// tierRule is a map's tier rule from its configuration.
func tierRule(m config.MapConfig) tiered.Rule {
	b, _ := tiered.ParseBackup(m.Backup) // validated by config
	return tiered.Rule{Backup: b, FailOnBackupError: m.OnBackupError == "fail"}
}
