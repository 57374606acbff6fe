package mcclient

import (
	"crypto/md5"
	"encoding/binary"
	"math"
	"sort"
	"strconv"
)

// Ketama, as twemproxy (nc_ketama.c) and libmemcached's weighted ketama
// (MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED, hosts.cc) build it: every server gets
// floor(weight/total * 160/4 * n) * 4 points; point group i of a server is
// the MD5 of "<name>-<i>", each digest giving four little-endian 32-bit
// points. A key goes to the first point at or after its hash, wrapping
// around. Adding an (n+1)th server therefore takes about 1/(n+1) of the keys
// and moves no key between the old servers.
//
// The name is the server as configured ("host:port"), which is twemproxy's
// default name. libmemcached writes "host" alone when the port is 11211, so
// to share a pool with libmemcached on the default port, configure the
// servers with a port other than 11211 or check the layout with the test.

const (
	pointsPerServer = 160
	pointsPerHash   = 4
)

type point struct {
	hash   uint32
	server int
}

// continuum is the sorted ring of points.
type continuum []point

// newContinuum builds the ring for servers named names with the given
// weights (all > 0).
func newContinuum(names []string, weights []int) continuum {
	total := 0
	for _, w := range weights {
		total += w
	}
	n := len(names)
	var c continuum
	for i, name := range names {
		// The same float32 arithmetic as the C code, so fractional weights
		// round exactly as they do there.
		pct := float32(weights[i]) / float32(total)
		per := uint32(math.Floor(float64(float32(float64(pct*pointsPerServer/4*float32(n))+0.0000000001))) * 4)
		buf := make([]byte, 0, len(name)+12)
		for j := uint32(0); j < per/pointsPerHash; j++ {
			buf = strconv.AppendUint(append(append(buf[:0], name...), '-'), uint64(j), 10)
			sum := md5.Sum(buf)
			for x := range pointsPerHash {
				c = append(c, point{hash: binary.LittleEndian.Uint32(sum[4*x:]), server: i})
			}
		}
	}
	sort.SliceStable(c, func(a, b int) bool { return c[a].hash < c[b].hash })
	return c
}

// server returns the index of the server that holds a key hashing to h.
func (c continuum) server(h uint32) int {
	i := sort.Search(len(c), func(i int) bool { return c[i].hash >= h })
	if i == len(c) {
		i = 0
	}
	return c[i].server
}

// Hash names a key hash function. Both ends of a shared pool must use the
// same one.
type Hash string

const (
	// HashMD5 is libmemcached's ketama default and twemproxy's "hash: md5":
	// the first four bytes of the key's MD5, little-endian.
	HashMD5 Hash = "md5"
	// HashFNV1a64 is twemproxy's default "hash: fnv1a_64" (the low 32 bits
	// of FNV-1a 64, which is what twemproxy's 32-bit arithmetic computes).
	HashFNV1a64 Hash = "fnv1a_64"
)

func (h Hash) valid() bool { return h == HashMD5 || h == HashFNV1a64 }

func (h Hash) sum(key string) uint32 {
	if h == HashFNV1a64 {
		x := uint32(0xcbf29ce484222325 & 0xffffffff)
		for i := 0; i < len(key); i++ {
			x ^= uint32(key[i])
			x *= uint32(0x100000001b3 & 0xffffffff)
		}
		return x
	}
	sum := md5.Sum([]byte(key))
	return binary.LittleEndian.Uint32(sum[:4])
}
