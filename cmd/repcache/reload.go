package main

import (
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/repcache/repcache/internal/config"
	"github.com/repcache/repcache/internal/policy"
	"github.com/repcache/repcache/internal/protocol"
	"github.com/repcache/repcache/internal/server"
)

// running is what a reload can change in the running process.
type running struct {
	live  *policy.Live
	pm    *policy.Metrics
	h     *protocol.Handler
	srv   *server.Server
	level *slog.LevelVar
}

// setting is one configuration field (or section) and how a reload treats
// it: apply puts next's value in force; nil means it only takes effect at a
// restart. Settings sharing a setter apply it with all of next's values.
type setting struct {
	name  string
	get   func(*config.Config) any
	apply func(r *running, next *config.Config)
}

func applyPolicy(r *running, next *config.Config) { r.live.Swap(newPolicy(next, r.pm)) }
func applyItemLimits(r *running, next *config.Config) {
	r.h.SetLimits(next.Limits.MaxKeyLength, int(next.Limits.MaxItemSize))
}
func applyConnLimits(r *running, next *config.Config) {
	r.srv.SetLimits(next.Limits.MaxConnections, next.Limits.IdleTimeout)
}

// settings is the one table of every configuration field, read by both the
// apply step and the restart-only report (TestEverySettingIsInTheTable
// keeps it complete): listeners, backends, the admin listener and the
// limits that size per-connection buffers need a restart.
var settings = []setting{
	{"listen", func(c *config.Config) any { return c.Listen }, nil},
	{"listeners", func(c *config.Config) any { return c.Listeners }, nil},
	{"unix_socket_mode", func(c *config.Config) any { return c.UnixSocketMode }, nil},
	{"shutdown_timeout", func(c *config.Config) any { return c.ShutdownTimeout }, nil},
	{"admin", func(c *config.Config) any { return c.Admin }, nil},
	{"cache", func(c *config.Config) any { return c.Cache }, nil},
	{"backup", func(c *config.Config) any { return c.Backup }, nil},
	{"on_error", func(c *config.Config) any { return c.OnError }, nil},
	{"limits.max_line_length", func(c *config.Config) any { return c.Limits.MaxLineLength }, nil},
	{"log.format", func(c *config.Config) any { return c.Log.Format }, nil},
	{"maps", func(c *config.Config) any { return c.Maps }, applyPolicy},
	{"unknown_keys", func(c *config.Config) any { return c.UnknownKeys }, applyPolicy},
	{"limits.max_key_length", func(c *config.Config) any { return c.Limits.MaxKeyLength }, func(r *running, next *config.Config) {
		applyPolicy(r, next) // the digest threshold
		applyItemLimits(r, next)
	}},
	{"limits.max_item_size", func(c *config.Config) any { return c.Limits.MaxItemSize }, applyItemLimits},
	{"limits.max_connections", func(c *config.Config) any { return c.Limits.MaxConnections }, applyConnLimits},
	{"limits.idle_timeout", func(c *config.Config) any { return c.Limits.IdleTimeout }, applyConnLimits},
	{"log.level", func(c *config.Config) any { return c.Log.Level }, func(r *running, next *config.Config) { r.level.Set(next.LogLevel()) }},
}

// changes compares next with what is in force: live settings with the
// configuration last applied (inForce), restart-only ones with the one the
// process started with (started). It returns the live settings to apply
// and the names of the restart-only ones that differ.
func changes(started, inForce, next *config.Config) (apply []setting, restart []string) {
	for _, s := range settings {
		switch {
		case s.apply == nil && !reflect.DeepEqual(s.get(started), s.get(next)):
			restart = append(restart, s.name)
		case s.apply != nil && !reflect.DeepEqual(s.get(inForce), s.get(next)):
			apply = append(apply, s)
		}
	}
	return apply, restart
}

// watchConfig reports changes of the config file, coalesced over a quarter
// second so that an editor's several writes make one reload. It watches
// the file's directory, not the file, so the watch survives what editors,
// config tools and Kubernetes do to a file: write in place, delete and
// create again, rename another file over it, and swap the ConfigMap
// "..data" symlink the file points through. A change is any event on the
// file's name, or any event after which the file (symlinks followed) is
// another file or has another size or modification time; while the file
// is missing (deleted, not yet written again) nothing is reported.
func watchConfig(cfg *config.Config, log *slog.Logger) <-chan struct{} {
	out := make(chan struct{}, 1)
	if cfg.File == "" {
		return out
	}
	path := filepath.Clean(cfg.File)
	w, err := fsnotify.NewWatcher()
	if err == nil {
		err = w.Add(filepath.Dir(path))
	}
	if err != nil {
		log.Warn("cannot watch the config file; reload with SIGHUP", "file", cfg.File, "err", err)
		return out
	}
	events := make(chan struct{}, 1)
	last, _ := os.Stat(path) // before returning: the file as it was when the watch began
	go func() {
		for {
			select {
			case ev, ok := <-w.Events:
				if !ok {
					return
				}
				cur, _ := os.Stat(path)
				if cur == nil || filepath.Clean(ev.Name) != path && sameFile(last, cur) {
					last = cur // gone: wait for it to come back
					continue
				}
				last = cur
				select {
				case events <- struct{}{}:
				default:
				}
			case err, ok := <-w.Errors:
				if !ok {
					return
				}
				log.Warn("watching the config file: an event may have been missed; reload with SIGHUP if a change was not applied", "file", cfg.File, "err", err)
			}
		}
	}()
	go func() {
		for range events {
			time.Sleep(250 * time.Millisecond)
			select {
			case <-events:
			default:
			}
			select {
			case out <- struct{}{}:
			default:
			}
		}
	}()
	return out
}

// sameFile reports whether a and b (either may be nil: no file) are the
// same file unchanged.
func sameFile(a, b os.FileInfo) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return os.SameFile(a, b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime())
}

func logMaps(log *slog.Logger, p *policy.Policy) {
	for _, m := range p.Maps() {
		log.Info("map", "name", m.Name, "prefix", m.Prefix, "kind", string(m.Rule.Kind), "min_ttl", m.Rule.MinTTL, "max_ttl", m.Rule.MaxTTL)
	}
}
