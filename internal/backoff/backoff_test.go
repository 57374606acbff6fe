package backoff

import (
	"context"
	"testing"
	"time"
)

func TestCeilingDoublesUpToMax(t *testing.T) {
	p := Policy{Base: time.Millisecond, Max: 10 * time.Millisecond}
	want := []time.Duration{1, 2, 4, 8, 10, 10, 10}
	for n, w := range want {
		if got := p.Ceiling(n); got != w*time.Millisecond {
			t.Errorf("Ceiling(%d) = %v, want %v", n, got, w*time.Millisecond)
		}
	}
	if got := p.Ceiling(1000); got != p.Max {
		t.Errorf("Ceiling(1000) = %v, want Max", got)
	}
}

func TestDelayWithinCeiling(t *testing.T) {
	p := Policy{Base: time.Millisecond, Max: time.Second}
	for n := 0; n < 20; n++ {
		for i := 0; i < 100; i++ {
			if d := p.Delay(n); d <= 0 || d > p.Ceiling(n) {
				t.Fatalf("Delay(%d) = %v, outside (0, %v]", n, d, p.Ceiling(n))
			}
		}
	}
	if d := (Policy{}).Delay(3); d != 0 {
		t.Errorf("zero policy Delay = %v, want 0", d)
	}
}

func TestSleepEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := (Policy{Base: time.Hour, Max: time.Hour}).Sleep(ctx, 0); err != context.Canceled {
		t.Fatalf("Sleep on a cancelled context = %v, want context.Canceled", err)
	}
}
