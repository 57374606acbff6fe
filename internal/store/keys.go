package store

import (
	"crypto/sha256"
	"encoding/base64"
)

// MaxRelativeTTL is memcached's REALTIME_MAXDELTA: an exptime up to this many
// seconds is relative to now, a larger one is an absolute Unix time.
const MaxRelativeTTL = 30 * 24 * 3600

// DigestLen is the length of what AppendDigest appends.
const DigestLen = 1 + 43

// AppendDigest appends "#" and the unpadded base64url SHA-256 of key: the one
// digest scheme repcache uses wherever a key is too long to keep as it is.
func AppendDigest(dst, key []byte) []byte {
	sum := sha256.Sum256(key)
	dst = append(dst, '#')
	return base64.RawURLEncoding.AppendEncode(dst, sum[:])
}
