package main

import (
	"context"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/repcache/repcache/internal/config"
	"github.com/repcache/repcache/internal/policy"
)

// app is everything serving builds from a configuration, constructed but
// not yet listening or connected: the map policy, each listener's view of
// it, and the storage tiers (the embedded store allocated, the backend
// clients configured). serve, check-config and reload all build it with
// build, so every rule that can refuse a configuration runs in all three.
type app struct {
	live      *policy.Live
	listeners []listenerSpec
	tiers     *tiers
}

// listenerSpec is one address to serve and what may be done through it.
type listenerSpec struct {
	addr string
	view policy.View
}

// build constructs the application cfg describes. Its collectors register
// on reg and its policy records into pm (created once per process, as a
// reload builds a new policy); check-config and reload pass a scratch
// registry and no policy metrics.
func build(cfg *config.Config, pm *policy.Metrics, log *slog.Logger, reg prometheus.Registerer) (*app, error) {
	a := &app{live: policy.NewLive(newPolicy(cfg, pm))}
	// Addresses in listen serve every map; listeners entries may narrow that.
	for _, addr := range cfg.Listen {
		a.listeners = append(a.listeners, listenerSpec{addr: addr})
	}
	for _, l := range cfg.Listeners {
		v := policy.View{ReadOnly: l.ReadOnly, Bound: l.Map}
		if l.Map != "" {
			v.Maps = map[string]bool{l.Map: true}
		}
		if len(l.Maps) > 0 {
			v.Maps = map[string]bool{}
			for _, n := range l.Maps {
				v.Maps[n] = true
			}
		}
		a.listeners = append(a.listeners, listenerSpec{addr: l.Address, view: v})
	}
	var err error
	if a.tiers, err = newTiers(cfg, a.live, log, reg); err != nil {
		return nil, err
	}
	return a, nil
}

// check builds cfg as serving would and releases what it built: the error
// is what serving would refuse to start with.
func check(cfg *config.Config) error {
	quiet := slog.New(slog.DiscardHandler)
	a, err := build(cfg, nil, quiet, prometheus.NewRegistry())
	if err != nil {
		return err
	}
	a.tiers.closeAll(context.Background(), quiet)
	return nil
}

// newPolicy builds the map policy the configuration describes, recording
// into pm when it is not nil.
func newPolicy(cfg *config.Config, pm *policy.Metrics) *policy.Policy {
	maps := make([]policy.Map, len(cfg.Maps))
	for i, m := range cfg.Maps {
		maps[i] = policy.Map{Name: m.Name, Prefix: m.Prefix, Rule: m.Rule(), MaxKeyLength: m.MaxKeyLength, Route: m.Route()}
	}
	return policy.New(maps, policy.Options{RejectUnknown: cfg.UnknownKeys == "reject", StoreKeyLimit: cfg.Limits.MaxKeyLength, Metrics: pm})
}
