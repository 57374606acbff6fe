package store

import (
	"crypto/rand"
	"encoding/binary"
	"sync/atomic"
)

// CASSource hands out CAS uniques for tiers shared by several repcache
// processes (a memcached pool, Redis): each process starts its counter at a
// random 64-bit point, so uniques from different processes do not collide in
// practice and never repeat within one process.
type CASSource struct{ n atomic.Uint64 }

// NewCASSource returns a source starting at a random point.
func NewCASSource() *CASSource {
	var b [8]byte
	rand.Read(b[:])
	s := &CASSource{}
	s.n.Store(binary.LittleEndian.Uint64(b[:]) >> 1) // room to count up before wrapping
	return s
}

// Next returns a new unique, never 0 (0 means "no CAS" in the protocol).
func (s *CASSource) Next() uint64 {
	for {
		if v := s.n.Add(1); v != 0 {
			return v
		}
	}
}
