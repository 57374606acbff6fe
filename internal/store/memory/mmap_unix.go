//go:build unix

package memory

import "syscall"

// allocRing maps anonymous memory outside the Go heap: the garbage collector
// never scans or counts it, and pages become resident only when written, so
// an idle budget costs nothing.
func allocRing(n int) ([]byte, error) {
	return syscall.Mmap(-1, 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
}

func freeRing(b []byte) error { return syscall.Munmap(b) }
