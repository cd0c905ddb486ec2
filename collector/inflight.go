package collector

import (
	"cmp"
	"container/list"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/holdfast/holdfast/internal/offheap"
	"github.com/holdfast/holdfast/internal/promutil"
	pa "github.com/holdfast/holdfast/producerapi"
)

// The collector's memory is bounded by its configuration (DESIGN.md,
// "Collector memory"):
//
//   - a page is at most PageLimit samples and MaxPageBytes bytes, refused by
//     the decoder before it allocates beyond that (pa.PageLimits);
//   - all producer loops together hold at most MaxInflightBytes of pages
//     being fetched, decoded and written: each loop reserves MaxPageBytes
//     from one weighted semaphore before it fetches and returns it when the
//     page is in the WAL;
//   - a loop drops its page, record buffer and decoder strings when a drain
//     ends, so an idle producer costs its goroutine and status only;
//   - at most MaxProducers producers run; a drain takes at most
//     MaxDrainPages pages and MaxDrainTime per interval.

// ErrTooManyProducers is returned for a producer set above MaxProducers.
var ErrTooManyProducers = errors.New("collector: too many producers")

func errTooMany(limit int) error {
	return fmt.Errorf("%w: the cap is %d producers per collector (--max-producers)", ErrTooManyProducers, limit)
}

// inflight is a FIFO weighted semaphore over bytes of pages in flight.
// FIFO, so a loop waiting for a large reservation is not starved by others.
type inflight struct {
	max   int64
	gauge prometheus.Gauge
	waits prometheus.Counter

	mu      sync.Mutex
	cur     int64
	waiters list.List // of *inflightWaiter
}

type inflightWaiter struct {
	n     int64
	ready chan struct{} // closed when the reservation is granted
}

// tryAcquire reserves n bytes if they are free now.
func (s *inflight) tryAcquire(n int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur+n <= s.max && s.waiters.Len() == 0 {
		s.cur += n
		s.gauge.Set(float64(s.cur))
		return true
	}
	return false
}

// acquire reserves n bytes (n <= max), waiting until they are free or ctx ends.
func (s *inflight) acquire(ctx context.Context, n int64) error {
	if s.tryAcquire(n) {
		return nil
	}
	s.mu.Lock()
	if s.cur+n <= s.max && s.waiters.Len() == 0 { // freed meanwhile
		s.cur += n
		s.gauge.Set(float64(s.cur))
		s.mu.Unlock()
		return nil
	}
	w := &inflightWaiter{n: n, ready: make(chan struct{})}
	e := s.waiters.PushBack(w)
	s.mu.Unlock()
	s.waits.Inc()
	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		select {
		case <-w.ready: // granted meanwhile: give it back
			s.mu.Unlock()
			s.release(n)
		default:
			s.waiters.Remove(e)
			s.grantLocked() // a large waiter leaving may unblock smaller ones
			s.mu.Unlock()
		}
		return ctx.Err()
	}
}

func (s *inflight) release(n int64) {
	s.mu.Lock()
	s.cur -= n
	s.cur = max(s.cur, 0)
	s.grantLocked()
	s.gauge.Set(float64(s.cur))
	s.mu.Unlock()
}

func (s *inflight) grantLocked() {
	for e := s.waiters.Front(); e != nil; e = s.waiters.Front() {
		w := e.Value.(*inflightWaiter)
		if s.cur+w.n > s.max {
			return
		}
		s.cur += w.n
		s.gauge.Set(float64(s.cur))
		s.waiters.Remove(e)
		close(w.ready)
	}
}

// memMetrics are the metrics of the memory bounds.
type memMetrics struct {
	set          *promutil.Set
	inflight     prometheus.Gauge
	inflightMax  prometheus.Gauge
	inflightWait prometheus.Counter
	drainLimited *prometheus.CounterVec
	overCap      prometheus.Gauge
	refusedTotal prometheus.Counter
}

func newMemMetrics(reg prometheus.Registerer) (*memMetrics, error) {
	const ns = "holdfast_collector_"
	m := &memMetrics{
		inflight:     prometheus.NewGauge(prometheus.GaugeOpts{Name: ns + "inflight_bytes", Help: "Bytes of pages reserved by producer loops now (fetching, decoding, writing)."}),
		inflightMax:  prometheus.NewGauge(prometheus.GaugeOpts{Name: ns + "inflight_limit_bytes", Help: "The bound on in-flight page bytes (--max-inflight-bytes)."}),
		inflightWait: prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "inflight_waits_total", Help: "Fetches that waited for in-flight bytes to be free."}),
		drainLimited: prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "drain_limited_total", Help: "Drains ended by the page or time bound while the producer still said more."}, []string{"producer"}),
		overCap:      prometheus.NewGauge(prometheus.GaugeOpts{Name: ns + "producers_over_cap", Help: "Assigned producers not started because of --max-producers."}),
		refusedTotal: prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "producers_refused_total", Help: "Producers refused (not started) because of --max-producers, summed over assignments."}),
	}
	var err error
	m.set, err = promutil.Register(reg, m.inflight, m.inflightMax, m.inflightWait, m.drainLimited, m.overCap, m.refusedTotal)
	return m, err
}

// pageLimits is what the decoder enforces: what the collector asks for.
func (c *Collector) pageLimits() *pa.PageLimits {
	return &pa.PageLimits{MaxSamples: c.opts.PageLimit, MaxBytes: int(c.opts.MaxPageBytes), Sample: c.opts.Limits}
}

// newClient returns a producer loop's client, its decoder bounded by the
// page limits the collector asks for.
func (c *Collector) newClient(cfg ProducerConfig) *pa.Client {
	dec := pa.NewSampleDecoder()
	dec.Limits = c.pageLimits()
	return &pa.Client{BaseURL: cfg.URL, CollectorID: c.id, AuthToken: cfg.AuthToken, HTTP: c.http,
		MaxPageBytes: c.opts.MaxPageBytes, Decoder: dec}
}

// releaseBuffers drops a loop's page, record buffer and decoder strings:
// an idle loop, or one waiting for in-flight bytes, must not pin a
// 10,000-sample page.
func releaseBuffers(client *pa.Client, page *pa.Page, rec *[]byte) {
	*page = pa.Page{}
	*rec = nil
	if client.Decoder != nil {
		client.Decoder.Release()
	}
}

// reservation is a drain's share of the in-flight bound: MaxPageBytes
// from before a fetch until the page is in the WAL (the next fetch, or
// the end of the drain).
type reservation struct {
	c    *Collector
	held bool
}

// next gives back the previous page's bytes and reserves the next page's.
// When it has to wait it first drops the loop's buffers, so waiting loops
// hold nothing.
func (r *reservation) next(ctx context.Context, client *pa.Client, page *pa.Page, rec *[]byte) error {
	r.done()
	n := r.c.opts.MaxPageBytes
	if !r.c.mem.tryAcquire(n) {
		releaseBuffers(client, page, rec)
		if err := r.c.mem.acquire(ctx, n); err != nil {
			return err
		}
	}
	r.held = true
	return nil
}

func (r *reservation) done() {
	if r.held {
		r.c.mem.release(r.c.opts.MaxPageBytes)
		r.held = false
	}
}

// drainBudget bounds one drain: at most MaxDrainPages pages and
// MaxDrainTime (default: the producer's interval), so a producer that
// always says more (or changes its token on every page) cannot hold its
// loop in one drain forever: the last page is acknowledged and the next
// drain starts an interval after this one began (at once if it took the
// whole interval). Per interval it gets at most MaxDrainPages pages.
type drainBudget struct {
	pages    int
	taken    int
	deadline time.Time
}

func (c *Collector) newDrainBudget(interval time.Duration) drainBudget {
	d := c.opts.MaxDrainTime
	if d == 0 {
		d = interval
	}
	return drainBudget{pages: c.opts.MaxDrainPages, deadline: time.Now().Add(d)}
}

// take reports whether another page may be fetched, counting it. The
// first page of a drain is always taken, however small the time bound.
func (b *drainBudget) take() bool {
	if b.taken > 0 && (b.taken >= b.pages || !time.Now().Before(b.deadline)) {
		return false
	}
	b.taken++
	return true
}

// drainLimited notes a drain ended by its budget: counted and shown, not a
// failure (the producer is collected again next interval).
func (c *Collector) drainLimited(p *producer) uint64 {
	c.mm.drainLimited.WithLabelValues(p.cfg.ID).Inc()
	var n uint64
	p.update(func(s *ProducerStatus) { s.DrainLimited++; n = s.DrainLimited })
	return n
}

func isPow10(n uint64) bool {
	for n >= 10 && n%10 == 0 {
		n /= 10
	}
	return n == 1
}

// fetchErrorKind classifies a failed fetch for the errors counter: a page
// beyond the limits asked for, or one that does not decode, is a protocol
// violation by the producer.
func fetchErrorKind(err error) string {
	if errors.Is(err, pa.ErrPageLimit) || errors.Is(err, pa.ErrMalformed) {
		return "protocol"
	}
	return "fetch"
}

// endLimitedDrain ends a drain its budget stopped: the last page is in the
// WAL, so acknowledge it now rather than holding it to the next interval.
func (c *Collector) endLimitedDrain(ctx context.Context, p *producer, client *pa.Client, token *string) {
	if n := c.drainLimited(p); isPow10(n) { // loud at first, then rarely: it is counted
		c.log.Warn("drain bound reached; the producer still says more, collecting again an interval after this drain began",
			"producer", p.cfg.ID, "times", n, "max_pages", c.opts.MaxDrainPages, "max_time", c.opts.MaxDrainTime)
	}
	if *token == "" {
		return
	}
	actx, cancel := context.WithTimeout(ctx, c.opts.RequestTimeout)
	acked, err := client.Ack(actx, *token)
	cancel()
	if err == nil && acked {
		*token = ""
	}
}

// MemoryStatus shows the memory bounds in /v1/status.
type MemoryStatus struct {
	InflightBytes      int64  `json:"inflight_bytes"`
	MaxInflightBytes   int64  `json:"max_inflight_bytes"`
	MaxPageBytes       int64  `json:"max_page_bytes"`
	PageLimit          int    `json:"page_limit"`
	MaxProducers       int    `json:"max_producers"`
	ProducersOverCap   int    `json:"producers_over_cap"` // assigned but not started because of MaxProducers
	LastOverCapMessage string `json:"last_over_cap,omitempty"`
	// OffHeapBytes is the forwarder's per-series state mapped outside the
	// Go heap (internal/offheap; holdfast_offheap_bytes).
	OffHeapBytes int64 `json:"offheap_bytes"`
}

func (c *Collector) memoryStatusLocked() MemoryStatus {
	c.mem.mu.Lock()
	cur := c.mem.cur
	c.mem.mu.Unlock()
	return MemoryStatus{InflightBytes: cur, MaxInflightBytes: c.opts.MaxInflightBytes, MaxPageBytes: c.opts.MaxPageBytes,
		PageLimit: c.opts.PageLimit, MaxProducers: c.opts.MaxProducers, ProducersOverCap: c.mu.overCap, LastOverCapMessage: c.mu.overCapMsg,
		OffHeapBytes: offheap.Bytes()}
}

// capAssignment keeps the assigned producers that fit under max beside the
// running static ones, in id order so the choice is stable from refresh to
// refresh; it returns those kept and the ids refused.
func capAssignment(ps []ProducerConfig, static []ProducerConfig, max int) ([]ProducerConfig, []string) {
	isStatic := map[string]bool{}
	for _, p := range static {
		isStatic[p.ID] = true
	}
	room := max - len(static)
	var kept []ProducerConfig
	var refused []string
	sorted := slices.SortedFunc(slices.Values(ps), func(a, b ProducerConfig) int { return cmp.Compare(a.ID, b.ID) })
	for _, p := range sorted {
		if isStatic[p.ID] {
			kept = append(kept, p) // a static producer of the same id wins; costs nothing more
			continue
		}
		if room <= 0 {
			refused = append(refused, p.ID)
			continue
		}
		room--
		kept = append(kept, p)
	}
	return kept, refused
}

// noteOverCapLocked records assigned producers refused by MaxProducers:
// logged, counted and shown in /v1/status; they are not started.
func (c *Collector) noteOverCapLocked(refused []string, from string) {
	msg := ""
	if len(refused) > 0 {
		msg = fmt.Sprintf("%s: %d producers over the cap of %d not started (first: %s)", from, len(refused), c.opts.MaxProducers, refused[0])
		c.log.Error("producer cap reached; producers not started", "from", from, "refused", len(refused), "max_producers", c.opts.MaxProducers, "first", refused[0])
		c.mm.refusedTotal.Add(float64(len(refused)))
	}
	c.mm.overCap.Set(float64(len(refused)))
	c.mu.overCap, c.mu.overCapMsg = len(refused), msg
}
