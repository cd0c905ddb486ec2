package backoff

import (
	"testing"
	"time"
)

func TestDelay(t *testing.T) {
	const lo, hi = 100 * time.Millisecond, 5 * time.Second
	tests := []struct {
		attempt  int
		min, max time.Duration // bounds of the jittered delay
	}{
		{0, lo / 2, lo},
		{1, lo, 2 * lo},
		{3, 4 * lo, 8 * lo},
		{6, hi / 2, hi}, // 6.4 s capped
		{63, hi / 2, hi},
		{64, hi / 2, hi},
		{1000, hi / 2, hi},
	}
	for _, tt := range tests {
		for i := 0; i < 100; i++ {
			if d := Delay(lo, hi, tt.attempt); d < tt.min || d > tt.max {
				t.Fatalf("Delay(attempt %d) = %v, want %v..%v", tt.attempt, d, tt.min, tt.max)
			}
		}
	}
	if d := Delay(0, 0, 3); d != 0 {
		t.Fatalf("Delay with no bounds = %v", d)
	}
}

func TestBackoffResets(t *testing.T) {
	b := Backoff{Min: time.Millisecond, Max: time.Second}
	for i := 0; i < 20; i++ {
		b.Next()
	}
	if d := b.Next(); d < time.Second/2 {
		t.Fatalf("after 20 attempts the delay is %v, want near the cap", d)
	}
	b.Reset()
	if d := b.Next(); d > time.Millisecond {
		t.Fatalf("after Reset the delay is %v, want at most Min", d)
	}
}

func TestExp(t *testing.T) {
	const lo, hi = 500 * time.Millisecond, 30 * time.Second
	tests := []struct {
		min, max time.Duration
		attempt  int
		want     time.Duration
	}{
		{lo, hi, 0, lo},
		{lo, hi, 1, 2 * lo},
		{lo, hi, 5, 16 * time.Second},
		{lo, hi, 6, hi}, // 32 s capped
		{lo, hi, 31, hi},
		{lo, hi, 64, hi},
		{lo, hi, 1 << 20, hi},
		{time.Hour, time.Minute, 0, time.Minute}, // min above max: max
		{0, hi, 3, hi},                           // no min: max
		{lo, 0, 0, 0},
	}
	for _, tt := range tests {
		if got := Exp(tt.min, tt.max, tt.attempt); got != tt.want {
			t.Errorf("Exp(%v, %v, %d) = %v, want %v", tt.min, tt.max, tt.attempt, got, tt.want)
		}
	}
}
