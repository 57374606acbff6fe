package redis

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	goredis "github.com/redis/go-redis/v9"
)

// The shared log of writes that missed the cache tier (tiered.MissLog): a
// set of the keys, so that an instance that starts or reconnects later
// catches up, and a channel on which each miss is announced as it happens,
// so that the other instances stop serving the cache's copy at once rather
// than when the instance that missed the write reaches the cache again.
// Messages are "k" + key (a key's write missed the cache) or "g" + number
// (the cache generation moved on: everything before it is superseded).

func (s *Store) missedKey() string { return s.internalKey("missed-writes") }

// missedChannel names the announcements. Channels are not per database,
// so the name carries it along with the key prefix.
func (s *Store) missedChannel() string {
	return s.prefix + internalPrefix + "missed-writes:" + strconv.Itoa(s.db)
}

// announceScript adds ARGV[1] to the set KEYS[1] unless that would take it
// past ARGV[2] members, and publishes it on ARGV[3]. It returns 1 when the
// key is listed, 0 when the set is full.
var announceScript = goredis.NewScript(`
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 and redis.call('SCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('PUBLISH', ARGV[3], 'k' .. ARGV[1])
return 1
`)

// AnnounceMissed implements tiered.MissLog: it lists key and tells every
// subscribed instance, unless limit keys are listed already (listed false:
// the caller moves the cache generation on instead).
func (s *Store) AnnounceMissed(ctx context.Context, key []byte, limit int) (listed bool, err error) {
	n, err := announceScript.Run(ctx, s.c, []string{s.missedKey()}, string(key), limit, s.missedChannel()).Int()
	if err != nil {
		return false, fmt.Errorf("redis announce missed write: %w", err)
	}
	return n == 1, nil
}

// MissedWrites implements tiered.MissLog: the keys listed (at most the
// limit AnnounceMissed keeps to).
func (s *Store) MissedWrites(ctx context.Context) ([]string, error) {
	keys, err := s.c.SMembers(ctx, s.missedKey()).Result()
	if err != nil {
		return nil, fmt.Errorf("redis missed writes: %w", err)
	}
	return keys, nil
}

// ClearMissed implements tiered.MissLog: keys were deleted from the cache.
func (s *Store) ClearMissed(ctx context.Context, keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	members := make([]any, len(keys))
	for i, k := range keys {
		members[i] = k
	}
	if err := s.c.SRem(ctx, s.missedKey(), members...).Err(); err != nil {
		return fmt.Errorf("redis clear missed writes: %w", err)
	}
	return nil
}

// AnnounceGeneration implements tiered.MissLog: generation g supersedes
// every listed key; the list is emptied and g announced.
func (s *Store) AnnounceGeneration(ctx context.Context, g uint64) error {
	_, err := s.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		p.Del(ctx, s.missedKey())
		p.Publish(ctx, s.missedChannel(), "g"+strconv.FormatUint(g, 10))
		return nil
	})
	if err != nil {
		return fmt.Errorf("redis announce cache generation: %w", err)
	}
	return nil
}

// SubscribeMissed calls missed with each key announced by AnnounceMissed
// and generation with each one announced by AnnounceGeneration, from any
// instance (this one included), as SubscribeExpired delivers its events:
// retried in the background when Redis is down at start. On a cluster the
// announcements reach every node, so a key may be delivered more than once.
// subscribed is called each time the subscription is confirmed (at start,
// and after a reconnection that may have lost announcements): what was
// announced before is in MissedWrites.
func (s *Store) SubscribeMissed(ctx context.Context, missed func(key string), generation func(uint64), subscribed func()) (stop func(), err error) {
	stop, err = s.watch(ctx, globEscape(s.missedChannel()), func(payload string) {
		if k, ok := strings.CutPrefix(payload, "k"); ok {
			missed(k)
		} else if g, err := strconv.ParseUint(strings.TrimPrefix(payload, "g"), 10, 64); err == nil {
			generation(g)
		}
	}, subscribed)
	if err != nil {
		err = fmt.Errorf("redis subscribe missed writes (retried in the background): %w", err)
	}
	return stop, err
}
