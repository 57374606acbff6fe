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

	"github.com/repcache/repcache/internal/config"
	"github.com/repcache/repcache/internal/guard"
	"github.com/repcache/repcache/internal/policy"
	"github.com/repcache/repcache/internal/store"
	"github.com/repcache/repcache/internal/store/memcached"
	"github.com/repcache/repcache/internal/store/memory"
	"github.com/repcache/repcache/internal/store/redis"
	"github.com/repcache/repcache/internal/store/tiered"
)

// tiers are the storage tiers the configuration asks for.
type tiers struct {
	stops         []func() // the Redis subscriptions
	tiered        *tiered.Store
	store         store.Store // tiered, as the policy layer calls it
	cache, backup store.Store
	cacheGuard    *guard.Guard
	redis         *redis.Store // watched for expirations once serving starts (see serve)
	missLog       *redis.Store // the shared record of missed cache writes (nil: the cache is not shared)
}

// Ready reports whether the cache tier is believed reachable: its breaker
// is not open and it answered its last background probe.
func (t *tiers) Ready() error {
	if t.cacheGuard != nil {
		if err := t.cacheGuard.Ready(); err != nil {
			return err
		}
	}
	return t.tiered.Ready()
}

// closeAll drains the async backup queue within ctx, then closes the tiers.
func (t *tiers) closeAll(ctx context.Context, log *slog.Logger) {
	if err := t.tiered.Drain(ctx); err != nil {
		log.Warn("backup queue not fully written before exit", "err", err)
	}
	for _, stop := range t.stops {
		stop()
	}
	t.cache.Close()
	if t.backup != nil {
		t.backup.Close()
	}
}

func newTiers(cfg *config.Config, live *policy.Live, log *slog.Logger, reg prometheus.Registerer) (*tiers, error) {
	t := &tiers{}
	gm := guard.NewMetrics(reg)
	var o tiered.Options
	switch cfg.Cache.Backend {
	case "memcached":
		mc, err := memcached.New(memcached.Options{
			Servers:     cfg.Cache.Memcached.Servers,
			Timeout:     cfg.Cache.Memcached.Timeout,
			Conns:       cfg.Cache.Memcached.Conns,
			MaxItemSize: int(cfg.Limits.MaxItemSize),
		})
		if err != nil {
			return nil, fmt.Errorf("cache.memcached: %w", err)
		}
		g := guard.New("memcached", mc, guard.Options{Timeout: cfg.Cache.Memcached.Timeout, Metrics: gm, Logger: log})
		t.cache, t.cacheGuard = g, g
		o.CachePing = g // the store's Ping, under the breaker
	default:
		m, err := memory.New(memory.Options{MaxBytes: int64(cfg.Cache.Memory.MaxBytes), MaxItemSize: int(cfg.Limits.MaxItemSize),
			OnExpire: func(key []byte) { live.Load().Expired(key, "cache") }, Registerer: reg})
		if err != nil {
			return nil, fmt.Errorf("cache.memory: %w", err)
		}
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
		g := guard.New("redis", r, guard.Options{Timeout: rc.Timeout, Metrics: gm, Logger: log})
		t.backup = g
		t.redis = r
		o.BackupPing = g
		if t.cacheGuard != nil {
			// A cache shared with other instances carries the generation
			// they all read from Redis, and they tell each other there of
			// the writes that missed it (see watchMissedWrites).
			o.Generations = r
			o.MissLog, t.missLog = tiered.GuardedMissLog(g, r), r
		}
	}
	o.ErrorOnOutage = cfg.OnError == "error"
	o.QueueSize = cfg.Backup.QueueSize
	o.QueueBytes = int64(cfg.Backup.QueueBytes)
	o.InvalidationLimit = cfg.Cache.MissedWritesLimit
	o.ProbeInterval = cfg.Cache.ProbeInterval
	o.Logger = log
	o.Registerer = reg
	for _, m := range live.Load().Maps() {
		o.Maps = append(o.Maps, m.Name)
	}
	t.tiered = tiered.New(t.cache, t.backup, o)
	t.store = t.tiered
	return t, nil
}

// watchRedisExpiry counts Redis's expirations per map from keyspace events.
// Turning the events on needs CONFIG SET; where Redis forbids it (managed
// services), the operator sets notify-keyspace-events Ex and this still works.
func (t *tiers) watchRedisExpiry(r *redis.Store, live *policy.Live, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := r.EnableExpiryEvents(ctx)
	if err != nil {
		log.Warn("cannot enable Redis expiry events; set notify-keyspace-events Ex on the server for the backup expiration metric", "err", err)
	}
	enabled := err == nil
	stop, err := r.SubscribeExpired(ctx, func(key string) { live.Load().Expired([]byte(key), "backup") })
	if err != nil {
		log.Warn("cannot subscribe to Redis expiry events yet; retrying in the background", "err", err)
	}
	t.stops = append(t.stops, stop, keepExpiryEvents(r, enabled, log))
}

// expiryEventsCheck is how often the expiry events are checked: CONFIG
// SET does not survive a Redis restart.
const expiryEventsCheck = 5 * time.Second

// keepExpiryEvents turns Redis's expiry events on again after a restart
// turned them off; it logs once per change between enabled and not.
func keepExpiryEvents(r *redis.Store, enabled bool, log *slog.Logger) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(expiryEventsCheck)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			cctx, ccancel := context.WithTimeout(ctx, 2*time.Second)
			err := r.EnableExpiryEvents(cctx)
			ccancel()
			switch {
			case err == nil && !enabled:
				log.Info("Redis expiry events enabled")
			case err != nil && enabled && ctx.Err() == nil:
				log.Warn("cannot keep Redis expiry events enabled; set notify-keyspace-events Ex on the server for the backup expiration metric", "err", err)
			}
			enabled = err == nil
		}
	}()
	return func() { cancel(); <-done }
}

// watchMissedWrites listens, on a memcached pool shared with other
// instances, for the writes any of them could not make there, so that none
// serves memcached's older copy meanwhile. It starts before serving.
func (t *tiers) watchMissedWrites(log *slog.Logger) {
	if t.missLog == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	stop, err := t.missLog.SubscribeMissed(ctx, t.tiered.RemoteMiss, t.tiered.RemoteGeneration, t.tiered.RemoteSubscribed)
	if err != nil {
		log.Warn("cannot subscribe to other instances' missed cache writes yet; retrying in the background (meanwhile they are read from Redis every probe)", "err", err)
	}
	t.stops = append(t.stops, stop)
}
