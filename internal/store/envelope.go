package store

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Remote tiers (a memcached pool, Redis) keep each record inside an
// envelope, because they cannot carry repcache's item metadata themselves:
// memcached does not tell a client an item's remaining lifetime, and client
// libraries do not expose its CAS ids. The envelope makes flags, the CAS
// unique and the absolute deadline travel with the value, so every tier
// answers exactly as the embedded one does.
//
// Layout (big-endian):
//
//	offset  size  field
//	0       1     version (EnvelopeVersion)
//	1       4     flags
//	5       8     CAS unique
//	13      8     deadline, Unix seconds (0: never), signed
//	21      ...   value
const (
	EnvelopeVersion    = 0x01
	EnvelopeHeaderSize = 21
)

// ErrMalformedEnvelope is wrapped by DecodeEnvelope's errors: a remote tier
// returned bytes that repcache did not write (another client's value, a
// corrupted or newer-format record). It concerns that one record only.
var ErrMalformedEnvelope = errors.New("store: malformed envelope")

// EncodeEnvelope appends it.Flags, it.CAS, it.Deadline and it.Value to dst in the
// envelope layout and returns the extended slice. it.Key is not stored: the
// tier keeps the key itself.
func EncodeEnvelope(dst []byte, it Item) []byte {
	dst = append(dst, EnvelopeVersion)
	dst = binary.BigEndian.AppendUint32(dst, it.Flags)
	dst = binary.BigEndian.AppendUint64(dst, it.CAS)
	dst = binary.BigEndian.AppendUint64(dst, uint64(it.Deadline))
	return append(dst, it.Value...)
}

// DecodeEnvelope parses an envelope. The returned Value aliases b and Key
// is nil. Input that is too short or of an unknown version yields an error
// wrapping ErrMalformedEnvelope, never a panic.
func DecodeEnvelope(b []byte) (Item, error) {
	if len(b) < EnvelopeHeaderSize {
		return Item{}, fmt.Errorf("%w: %d bytes, shorter than the %d-byte header", ErrMalformedEnvelope, len(b), EnvelopeHeaderSize)
	}
	if b[0] != EnvelopeVersion {
		return Item{}, fmt.Errorf("%w: unknown version byte 0x%02x", ErrMalformedEnvelope, b[0])
	}
	return Item{
		Flags:    binary.BigEndian.Uint32(b[1:]),
		CAS:      binary.BigEndian.Uint64(b[5:]),
		Deadline: int64(binary.BigEndian.Uint64(b[13:])),
		Value:    b[EnvelopeHeaderSize:len(b):len(b)],
	}, nil
}
