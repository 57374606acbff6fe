package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"syscall"

	goredis "github.com/redis/go-redis/v9"
)

// internalPrefix follows KeyPrefix in the keys repcache keeps for itself
// (the cache generation). A NUL cannot occur in a client's key, so these
// never collide with a record; Flush keeps them.
const internalPrefix = "\x00repcache:"

func (s *Store) internalKey(name string) string { return s.prefix + internalPrefix + name }

// Ping checks that Redis answers (every master of a cluster). On a cluster
// a failure first reloads the slot map and pings again: after a failover,
// a dead master is not asked again, and the calls after the probe go to
// the promoted replica (go-redis would otherwise wait for a MOVED reply,
// which a dead master never sends).
func (s *Store) Ping(ctx context.Context) error {
	ping := func(ctx context.Context, c goredis.Cmdable) error { return c.Ping(ctx).Err() }
	err := s.forEachMaster(ctx, ping)
	if cc, ok := s.c.(*goredis.ClusterClient); ok && err != nil {
		cc.ReloadState(ctx)
		err = s.forEachMaster(ctx, ping)
	}
	if err != nil {
		return fmt.Errorf("redis ping: %w", err)
	}
	return nil
}

// onOwner runs a write; on a cluster, a write refused by its node's
// address (the master died: a refused connection applied nothing) is
// retried once after reloading the slot map, so that once the cluster has
// promoted the replica the write reaches it without waiting for a probe.
// go-redis alone would retry the dead address, which never answers MOVED.
func (s *Store) onOwner(ctx context.Context, write func() error) error {
	err := write()
	cc, ok := s.c.(*goredis.ClusterClient)
	if !ok || !refused(err) {
		return err
	}
	if rerr := cc.ForEachMaster(ctx, func(context.Context, *goredis.Client) error { return nil }); rerr != nil { // reloads the slot map
		return err
	}
	return write()
}

// refused reports a connection the node's address refused. go-redis's
// pool reports a failed dial as text ("failed to dial ...: connection
// refused") rather than wrapping the error, so the text is checked too.
func refused(err error) bool {
	return err != nil && (errors.Is(err, syscall.ECONNREFUSED) || strings.Contains(err.Error(), "connection refused"))
}

// generationScript returns the cache generation, first raising it to
// ARGV[1] when lower (or missing), or, with ARGV[2] = "next", to one above
// both. It returns {generation, 1 if the key was missing}.
var generationScript = goredis.NewScript(`
local cur = redis.call('GET', KEYS[1])
local missing = 0
if not cur then missing = 1; cur = '0' end
local g = tonumber(cur)
local floor = tonumber(ARGV[1])
if g < floor then g = floor end
if ARGV[2] == 'next' then g = g + 1 end
if missing == 1 or tostring(g) ~= cur then redis.call('SET', KEYS[1], string.format('%d', g)) end
return {g, missing}
`)

func (s *Store) generation(ctx context.Context, floor uint64, next string) (uint64, bool, error) {
	res, err := generationScript.Run(ctx, s.c, []string{s.internalKey("cache-generation")}, strconv.FormatUint(floor, 10), next).Int64Slice()
	if err != nil {
		return 0, false, fmt.Errorf("redis cache generation: %w", err)
	}
	if len(res) != 2 || res[0] < 0 {
		return 0, false, fmt.Errorf("redis cache generation: script returned %v", res)
	}
	return uint64(res[0]), res[1] == 1, nil
}

// CacheGeneration implements tiered.Generations: the generation of the
// shared cache tier, kept in Redis so every repcache instance sees it.
// missing reports that the key was gone (a Redis restarted empty).
func (s *Store) CacheGeneration(ctx context.Context, atLeast uint64) (uint64, bool, error) {
	return s.generation(ctx, atLeast, "")
}

// NextCacheGeneration implements tiered.Generations.
func (s *Store) NextCacheGeneration(ctx context.Context, above uint64) (uint64, error) {
	g, _, err := s.generation(ctx, above, "next")
	return g, err
}
