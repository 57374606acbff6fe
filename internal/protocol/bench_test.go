package protocol

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/repcache/repcache/internal/store/memory"
)

// BenchmarkSession is memcaslap's mix (bench/run.sh memcaslap: 90% get,
// 10% set, 20-byte keys, 24-byte values) through one session, with the
// metrics on: the protocol layer's own cost per request, without the
// system calls (requests come from memory, replies go nowhere).
func BenchmarkSession(b *testing.B) {
	st, err := memory.New(memory.Options{MaxBytes: 64 << 20, SweepInterval: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	h := NewHandler(st, Options{Registerer: prometheus.NewRegistry(), Now: func() int64 { return 1_800_000_000 }})
	var req strings.Builder
	const n = 1000
	for i := range n {
		key := fmt.Sprintf("memcaslap-key-%06d", i%500)
		if i%10 == 0 {
			fmt.Fprintf(&req, "set %s 0 0 24\r\n%s\r\n", key, strings.Repeat("v", 24))
		} else {
			fmt.Fprintf(&req, "get %s\r\n", key)
		}
	}
	stream := req.String()
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	for b.Loop() {
		h.NewSession(context.Background(), strings.NewReader(stream), io.Discard).Serve()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/request")
}
