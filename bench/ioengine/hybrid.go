package main

import (
	"net"
	"os"
	"sync"
	"syscall"
)

// The hybrid design: a goroutine per connection, as repcache has, but a
// goroutine whose request has been answered waits for a readiness event
// from an epoll set of the engine's own instead of calling read until it
// returns EAGAIN (Go's netpoller can only park a reader after a read that
// failed). The epoll set is itself polled by Go's netpoller, so no thread
// blocks in epoll_wait. A read is made only when the kernel said data
// arrived: one read and one write per request, as in an event loop, while
// a request that blocks still blocks only its own goroutine.
type hybrid struct {
	ep    *os.File // the epoll set, registered with Go's netpoller
	mu    sync.Mutex
	conns map[int32]chan struct{} // by fd: a token per readiness event
}

func serveHybrid(addr string, p *proto) error {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return err
	}
	if err := syscall.SetNonblock(epfd, true); err != nil {
		return err
	}
	h := &hybrid{ep: os.NewFile(uintptr(epfd), "epoll"), conns: map[int32]chan struct{}{}}
	go h.poll()
	return acceptLoop(addr, func(c *net.TCPConn) { h.serve(c, p) })
}

// poll hands a token to the connection of each readiness event.
func (h *hybrid) poll() {
	rc, err := h.ep.SyscallConn()
	if err != nil {
		panic(err)
	}
	events := make([]syscall.EpollEvent, 128)
	for {
		err := rc.Read(func(fd uintptr) bool {
			n, err := syscall.EpollWait(int(fd), events, 0)
			if err != nil || n <= 0 {
				return err == syscall.EINTR // false: wait for the set to be readable
			}
			h.mu.Lock()
			for _, ev := range events[:n] {
				if ready := h.conns[ev.Fd]; ready != nil {
					select {
					case ready <- struct{}{}:
					default: // a token is waiting already
					}
				}
			}
			h.mu.Unlock()
			return true
		})
		if err != nil {
			panic(err)
		}
	}
}

func (h *hybrid) serve(c *net.TCPConn, p *proto) {
	defer c.Close()
	rc, err := c.SyscallConn()
	if err != nil {
		return
	}
	var fd int
	rc.Control(func(f uintptr) { fd = int(f) })
	ready := make(chan struct{}, 1)
	h.mu.Lock()
	h.conns[int32(fd)] = ready
	h.mu.Unlock()
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | -syscall.EPOLLET, Fd: int32(fd)}
	if err := syscall.EpollCtl(int(h.ep.Fd()), syscall.EPOLL_CTL_ADD, fd, &ev); err != nil {
		return
	}
	defer func() {
		syscall.EpollCtl(int(h.ep.Fd()), syscall.EPOLL_CTL_DEL, fd, nil)
		h.mu.Lock()
		delete(h.conns, int32(fd))
		h.mu.Unlock()
	}()
	var cs connState
	buf := make([]byte, 16<<10)
	for {
		// A full read may have left data behind: read again at once.
		// After a short one, wait for the kernel to say more arrived.
		n, err := syscall.Read(fd, buf)
		if err == syscall.EAGAIN {
			<-ready
			continue
		}
		if err != nil || n == 0 || cs.answer(p, c, buf[:n]) != nil {
			return
		}
		if n < len(buf) {
			<-ready
		}
	}
}
