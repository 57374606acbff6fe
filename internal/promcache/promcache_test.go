package promcache

import (
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func value(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func TestCountersCountWhatTheVectorCounts(t *testing.T) {
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "x_total", Help: "x"}, []string{"a", "b", "c"})
	c := New(vec)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for i := range 1000 {
				c.With("m", "get", []string{"hit", "miss"}[i%2]).Inc()
			}
		})
	}
	wg.Wait()
	if got := value(t, vec.WithLabelValues("m", "get", "hit")); got != 2000 {
		t.Fatalf("hit = %v, want 2000", got)
	}
	if got := value(t, vec.WithLabelValues("m", "get", "miss")); got != 2000 {
		t.Fatalf("miss = %v, want 2000", got)
	}
	if c.With("m", "get", "hit") != c.With("m", "get", "hit") {
		t.Fatal("the child is not kept")
	}
}

func BenchmarkWith(b *testing.B) {
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "x_total", Help: "x"}, []string{"a", "b", "c"})
	c := New(vec)
	b.Run("cached", func(b *testing.B) {
		for b.Loop() {
			c.With("postscreen", "get", "hit").Inc()
		}
	})
	b.Run("WithLabelValues", func(b *testing.B) {
		for b.Loop() {
			vec.WithLabelValues("postscreen", "get", "hit").Inc()
		}
	})
}
