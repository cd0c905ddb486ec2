package collector

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func newTestInflight(max int64) *inflight {
	return &inflight{max: max, gauge: prometheus.NewGauge(prometheus.GaugeOpts{Name: "g"}), waits: prometheus.NewCounter(prometheus.CounterOpts{Name: "c"})}
}

// TestInflightSemaphore: reservations never exceed the bound, waiters are
// served in order (a large one is not starved by small ones), and a waiter
// that gives up leaves nothing reserved.
func TestInflightSemaphore(t *testing.T) {
	s := newTestInflight(10)
	ctx := context.Background()
	if err := s.acquire(ctx, 6); err != nil {
		t.Fatal(err)
	}
	if s.tryAcquire(6) {
		t.Fatal("reserved 12 of 10")
	}
	big := make(chan struct{})
	go func() { s.acquire(ctx, 10); close(big) }()
	for s.waiterCount() != 1 {
		time.Sleep(time.Millisecond)
	}
	// 4 are free, but a small request must queue behind the large waiter.
	if s.tryAcquire(2) {
		t.Fatal("a small reservation overtook a waiting large one")
	}
	cctx, cancel := context.WithCancel(ctx)
	small := make(chan error)
	go func() { small <- s.acquire(cctx, 2) }()
	for s.waiterCount() != 2 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-small; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled waiter: %v", err)
	}
	s.release(6)
	<-big
	if got := s.reserved(); got != 10 {
		t.Fatalf("reserved %d after the large waiter got in, want 10", got)
	}
	s.release(10)
	if got := s.reserved(); got != 0 || s.waiterCount() != 0 {
		t.Fatalf("reserved %d, %d waiters after releasing everything", got, s.waiterCount())
	}
}

func (s *inflight) waiterCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.waiters.Len()
}

func (s *inflight) reserved() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur
}

// TestOptionsRefuseTooManyStaticProducers: the cap applies to the
// configuration too, with an error naming it.
func TestOptionsRefuseTooManyStaticProducers(t *testing.T) {
	o := Options{DataDir: t.TempDir(), MaxProducers: 1, Producers: []ProducerConfig{{URL: "http://127.0.0.1:1"}, {URL: "http://127.0.0.1:2"}}}
	if _, err := o.withDefaults(); !errors.Is(err, ErrTooManyProducers) {
		t.Fatalf("err = %v, want ErrTooManyProducers", err)
	}
	o = Options{DataDir: t.TempDir(), MaxPageBytes: 2 << 20, MaxInflightBytes: 1 << 20}
	if _, err := o.withDefaults(); err == nil {
		t.Fatal("an in-flight bound below one page was accepted")
	}
}
