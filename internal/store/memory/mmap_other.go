//go:build !unix

package memory

func allocRing(n int) ([]byte, error) { return make([]byte, n), nil }

func freeRing([]byte) error { return nil }

func allocSlots(n int) []uint64 { return make([]uint64, n) }

func freeSlots([]uint64) {}
