//go:build unix

package memory

import (
	"syscall"
	"unsafe"
)

// allocRing maps anonymous memory outside the Go heap: the garbage collector
// never scans or counts it, and pages become resident only when written, so
// an idle budget costs nothing.
func allocRing(n int) ([]byte, error) {
	return syscall.Mmap(-1, 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
}

func freeRing(b []byte) error { return syscall.Munmap(b) }

// allocSlots maps n zeroed index slots outside the Go heap.
func allocSlots(n int) []uint64 {
	b, err := allocRing(n * 8)
	if err != nil {
		// Out of address space or memory: the runtime's own behaviour
		// for a failed allocation.
		panic("memory store: cannot map index: " + err.Error())
	}
	return unsafe.Slice((*uint64)(unsafe.Pointer(&b[0])), n)
}

func freeSlots(s []uint64) {
	if len(s) > 0 {
		freeRing(unsafe.Slice((*byte)(unsafe.Pointer(&s[0])), len(s)*8))
	}
}
