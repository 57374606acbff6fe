// Command repcache is a memcache-protocol cache for Postfix's postscreen and
// verify tables. With no configuration it serves 127.0.0.1:11211 from its
// embedded store.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/pflag"

	"github.com/repcache/repcache/internal/config"
	"github.com/repcache/repcache/internal/policy"
	"github.com/repcache/repcache/internal/postfixconf"
	"github.com/repcache/repcache/internal/protocol"
	"github.com/repcache/repcache/internal/server"
	"github.com/repcache/repcache/internal/store/redis"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `repcache: a memcache-protocol cache for Postfix postscreen and verify tables.

Usage:
  repcache [flags]                       serve (defaults: 127.0.0.1:11211, embedded store)
  repcache check-config --config FILE    validate a configuration and exit
  repcache postfix-config [--config FILE] [--table-dir DIR] [--key-digest]
                                         print the main.cf lines and memcache table
                                         files that point Postfix at repcache
  repcache inspect [--addr HOST:PORT] KEY
                                         print a record read through a running repcache, in words
  repcache inspect --kind postscreen|verify VALUE
                                         decode a raw record value
  repcache import --map NAME [--addr HOST:PORT] [FILE|-]
                                         load "postmap -s" output of a postscreen or verify cache
  repcache postfix-check MAIN.CF [TABLE.cf...]
                                         report memcache pitfalls in a Postfix configuration
  repcache version                       print the version

Configuration comes from --config FILE (YAML), REPCACHE_* environment
variables (REPCACHE_CACHE__MEMORY__MAX_BYTES=1GiB) and flags named like the
keys (--cache.memory.max_bytes 1GiB); flags win over the environment, which
wins over the file. See examples/repcache.yaml for every option.

Flags:
`

func main() { os.Exit(run(os.Args[1:], os.Environ(), os.Stdout, os.Stderr)) }

func run(args, environ []string, stdout, stderr io.Writer) int {
	redis.SetLogger(slog.New(slog.DiscardHandler)) // the serving log takes it below
	cmd := "serve"
	if len(args) > 0 && strings.Contains(" check-config postfix-config inspect import postfix-check version serve ", " "+args[0]+" ") {
		cmd, args = args[0], args[1:]
	}
	fs := pflag.NewFlagSet("repcache", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	config.Flags(fs)
	tableDir, keyDigest := "/etc/postfix", false
	var op opArgs
	switch cmd {
	case "postfix-config":
		fs.StringVar(&tableDir, "table-dir", tableDir, "directory where the memcache table files will live")
		fs.BoolVar(&keyDigest, "key-digest", false, "tables for Postfix 3.11+ key_digest: one listener bound to each map (listeners[].map)")
	case "inspect", "import":
		fs.StringVar(&op.addr, "addr", "", "repcache's address (default: the first TCP listen address)")
		fs.StringVar(&op.mapName, "map", "", "the map the record(s) belong to")
		if cmd == "inspect" {
			fs.StringVar(&op.kind, "kind", "", "decode a raw VALUE of this kind (postscreen, verify) instead of reading a KEY")
		}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "repcache: %v (see repcache --help)\n", err)
		return 2
	}
	takesArgs := cmd == "inspect" || cmd == "import" || cmd == "postfix-check"
	if fs.NArg() > 0 && !takesArgs {
		fmt.Fprintf(stderr, "repcache: unexpected argument %q (see repcache --help)\n", fs.Arg(0))
		return 2
	}
	switch cmd {
	case "version":
		fmt.Fprintf(stdout, "repcache %s (memcached %s protocol)\n", version, protocol.CompatVersion)
		return 0
	}
	cfg, err := config.Load(fs, environ)
	if err != nil {
		fmt.Fprintf(stderr, "repcache: %v\n", err)
		return 1
	}
	switch cmd {
	case "check-config":
		if err := check(cfg); err != nil {
			fmt.Fprintf(stderr, "repcache: %v\n", err)
			return 1
		}
		fmt.Fprintln(stdout, "configuration OK")
		return 0
	case "postfix-config":
		if err := postfixconf.Render(stdout, cfg, postfixconf.Options{TableDir: tableDir, KeyDigest: keyDigest}); err != nil {
			fmt.Fprintf(stderr, "repcache: %v\n", err)
			return 1
		}
		return 0
	case "inspect", "import", "postfix-check":
		pol := newPolicy(cfg, nil)
		var err error
		if op.addr == "" {
			op.addr = defaultAddr(cfg)
		}
		code := 0
		switch cmd {
		case "inspect":
			if err = cmdInspect(cfg, pol, op, fs.Args(), stdout); err != nil {
				code = 1
			}
		case "import":
			code, err = cmdImport(pol, op, fs.Args(), stderr)
		default:
			code, err = cmdPostfixCheck(pol, fs.Args(), stdout)
		}
		if err != nil {
			fmt.Fprintf(stderr, "repcache %s: %v\n", cmd, err)
		}
		return code
	}
	level := new(slog.LevelVar)
	level.Set(cfg.LogLevel())
	log := newLogger(cfg, stderr, level)
	redis.SetLogger(log)
	reg, reloads := newRegistry()
	pm := policy.NewMetrics(reg)
	a, err := build(cfg, pm, log, reg)
	if err != nil {
		// The same words check-config says for this configuration.
		fmt.Fprintf(stderr, "repcache: %v\n", err)
		return 1
	}
	if err := serve(cfg, a, pm, reg, reloads, log, level, func() (*config.Config, error) { return config.Load(fs, environ) }); err != nil {
		log.Error("repcache stopped", "err", err)
		return 1
	}
	return 0
}

// newLogger logs in the configured format at a level a reload can change.
func newLogger(cfg *config.Config, w io.Writer, level *slog.LevelVar) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// serve runs a, built from cfg with its collectors on reg, until SIGTERM or
// SIGINT; reload loads the configuration afresh (same file, environment
// and flags) on SIGHUP and when the file changes.
func serve(cfg *config.Config, a *app, pm *policy.Metrics, reg *prometheus.Registry, reloads reloadMetrics, log *slog.Logger, level *slog.LevelVar, reload func() (*config.Config, error)) error {
	live, st := a.live, a.tiers
	h := protocol.NewHandler(live.Layer(st.store, policy.View{}), protocol.Options{
		MaxKeyLength:  cfg.Limits.MaxKeyLength,
		MaxItemSize:   int(cfg.Limits.MaxItemSize),
		MaxLineLength: cfg.Limits.MaxLineLength,
		Version:       protocol.CompatVersion + "-repcache-" + version,
		Logger:        log,
		Registerer:    reg,
	})
	defer h.Close()
	srv := server.New(server.Options{
		Registerer:     reg,
		MaxConnections: cfg.Limits.MaxConnections,
		IdleTimeout:    cfg.Limits.IdleTimeout,
		UnixSocketMode: cfg.UnixSocketFileMode(),
		Logger:         log,
	})

	type listener struct {
		ln net.Listener
		h  *protocol.Handler
	}
	// Watch before listening: a listener accepts connections (the kernel's
	// backlog) from the moment it exists, so a change made once a client
	// could connect must not fall before the watch exists.
	changed := watchConfig(cfg, log)
	var lns []listener
	closeAll := func() {
		for _, l := range lns {
			l.ln.Close()
		}
		st.closeAll(context.Background(), log)
	}
	for _, spec := range a.listeners {
		ln, err := server.Listen(spec.addr, cfg.UnixSocketFileMode())
		if err != nil {
			closeAll()
			return fmt.Errorf("cannot listen on %s: %w", spec.addr, err)
		}
		lh := h
		if spec.view.Maps != nil || spec.view.ReadOnly {
			lh = h.ForStore(live.Layer(st.store, spec.view))
		}
		lns = append(lns, listener{ln, lh})
	}
	var draining atomic.Bool
	var admin *http.Server
	if cfg.Admin.Listen != "" {
		ln, err := net.Listen("tcp", cfg.Admin.Listen)
		if err != nil {
			closeAll()
			return fmt.Errorf("cannot listen on admin.listen %s: %w", cfg.Admin.Listen, err)
		}
		admin = &http.Server{Handler: adminMux(&draining, st.Ready, reg, cfg.Admin.Pprof), ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := admin.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("admin listener failed", "err", err)
			}
		}()
		log.Info("admin endpoint ready", "addr", ln.Addr().String())
	}

	st.watchMissedWrites(log)
	errc := make(chan error, len(lns))
	for _, l := range lns {
		go func() { errc <- srv.Serve(l.ln, l.h) }()
		log.Info("serving memcache protocol", "addr", displayAddr(l.ln), "backend", cfg.Cache.Backend, "backup", cfg.Backup.Backend)
	}
	logMaps(log, live.Load())
	if st.redis != nil {
		st.watchRedisExpiry(st.redis, live, log)
	}

	r := &running{live: live, pm: pm, h: h, srv: srv, level: level}
	inForce := cfg
	apply := func(reason string) {
		next, err := reload()
		if err == nil {
			err = check(next)
		}
		if err != nil {
			reloads.failure.Inc()
			log.Error("configuration reload refused; the configuration in force stays", "reason", reason, "err", err)
			return
		}
		live, restart := changes(cfg, inForce, next)
		for _, field := range restart {
			log.Warn("configuration change needs a restart to take effect", "field", field)
		}
		for _, s := range live {
			s.apply(r, next)
		}
		inForce = next
		reloads.success.Inc()
		reloads.last.SetToCurrentTime()
		log.Info("configuration reloaded", "reason", reason)
		logMaps(log, r.live.Load())
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)
	var runErr error
loop:
	for {
		select {
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				apply("SIGHUP")
				continue
			}
			log.Info("shutting down: finishing in-flight requests", "signal", sig.String(), "timeout", cfg.ShutdownTimeout)
			break loop
		case <-changed:
			apply("config file changed")
		case err := <-errc:
			runErr = fmt.Errorf("listener failed: %w", err)
			break loop
		}
	}
	draining.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		log.Warn("shutdown incomplete", "err", err)
	}
	st.closeAll(ctx, log)
	if admin != nil {
		admin.Shutdown(ctx)
	}
	log.Info("stopped")
	return runErr
}

func displayAddr(ln net.Listener) string {
	if ln.Addr().Network() == "unix" {
		return "unix:" + ln.Addr().String()
	}
	return ln.Addr().String()
}

// reloadMetrics count configuration reloads.
type reloadMetrics struct {
	success, failure prometheus.Counter
	last             prometheus.Gauge
}

// newRegistry holds every metric: the Go runtime and process, build
// information, config reloads, and what each package registers.
func newRegistry() (*prometheus.Registry, reloadMetrics) {
	reg := prometheus.NewRegistry()
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "repcache", Name: "build_info",
		Help: "Always 1; the labels say which repcache is running."}, []string{"version", "goversion"})
	build.WithLabelValues(version, runtime.Version()).Set(1)
	reloads := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "repcache", Name: "config_reloads_total",
		Help: "Configuration reloads, by result (success, failure)."}, []string{"result"})
	reloads.WithLabelValues("success")
	reloads.WithLabelValues("failure")
	lastReload := prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "repcache", Name: "config_last_reload_success_timestamp_seconds",
		Help: "When the configuration in force was loaded (Unix time)."})
	lastReload.SetToCurrentTime()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), build, reloads, lastReload)
	return reg, reloadMetrics{reloads.WithLabelValues("success"), reloads.WithLabelValues("failure"), lastReload}
}

// adminMux serves /metrics, the health endpoints and, when enabled, pprof.
// ready reports the cache tier's state.
func adminMux(draining *atomic.Bool, ready func() error, reg *prometheus.Registry, pprofOn bool) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/livez", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if draining.Load() {
			http.Error(w, "draining", http.StatusServiceUnavailable)
			return
		}
		if err := ready(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok\n")
	})
	if pprofOn {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}
