package main

import (
	"log/slog"
	"reflect"
	"time"

	"github.com/knadh/koanf/providers/file"

	"github.com/repcache/repcache/internal/config"
	"github.com/repcache/repcache/internal/policy"
)

// restartOnly names the settings that differ between cur and next and only
// take effect at a restart: listeners, backends, the admin listener, and the
// limits that size per-connection buffers.
func restartOnly(cur, next *config.Config) []string {
	var out []string
	for _, f := range []struct {
		name string
		a, b any
	}{
		{"listen", cur.Listen, next.Listen},
		{"listeners", cur.Listeners, next.Listeners},
		{"unix_socket_mode", cur.UnixSocketMode, next.UnixSocketMode},
		{"admin", cur.Admin, next.Admin},
		{"cache", cur.Cache, next.Cache},
		{"backup", cur.Backup, next.Backup},
		{"on_error", cur.OnError, next.OnError},
		{"limits.max_line_length", cur.Limits.MaxLineLength, next.Limits.MaxLineLength},
		{"log.format", cur.Log.Format, next.Log.Format},
		{"shutdown_timeout", cur.ShutdownTimeout, next.ShutdownTimeout},
	} {
		if !reflect.DeepEqual(f.a, f.b) {
			out = append(out, f.name)
		}
	}
	return out
}

// watchConfig reports changes of the config file (ConfigMap symlink swaps
// included: koanf watches the file's directory), coalesced over a quarter
// second so that an editor's several writes make one reload.
func watchConfig(cfg *config.Config, log *slog.Logger) <-chan struct{} {
	out := make(chan struct{}, 1)
	if cfg.File == "" {
		return out
	}
	events := make(chan struct{}, 1)
	if err := file.Provider(cfg.File).Watch(func(_ any, err error) {
		if err != nil {
			log.Warn("watching the config file failed; reload with SIGHUP", "file", cfg.File, "err", err)
			return
		}
		select {
		case events <- struct{}{}:
		default:
		}
	}); err != nil {
		log.Warn("cannot watch the config file; reload with SIGHUP", "file", cfg.File, "err", err)
		return out
	}
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

func logMaps(log *slog.Logger, p *policy.Policy) {
	for _, m := range p.Maps() {
		log.Info("map", "name", m.Name, "prefix", m.Prefix, "kind", string(m.Rule.Kind), "min_ttl", m.Rule.MinTTL, "max_ttl", m.Rule.MaxTTL)
	}
}
