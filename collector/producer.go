package collector

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/holdfast/holdfast/internal/backoff"
	pa "github.com/holdfast/holdfast/producerapi"
	"github.com/holdfast/holdfast/quarantine"
	"github.com/holdfast/holdfast/wal"
)

// ProducerStatus is what the collector knows about one producer.
type ProducerStatus struct {
	ID                  string    `json:"id"`
	URL                 string    `json:"url"`
	Interval            string    `json:"interval"`
	Incarnation         string    `json:"incarnation,omitempty"`
	Restarts            uint64    `json:"restarts"` // incarnation changes seen
	LastAttempt         time.Time `json:"last_attempt"`
	LastSuccess         time.Time `json:"last_success"`
	LastError           string    `json:"last_error,omitempty"`
	ConsecutiveFailures int       `json:"consecutive_failures"`
	Samples             uint64    `json:"samples"`
	Bytes               uint64    `json:"bytes"`
	Pages               uint64    `json:"pages"`
	ProducerDropped     uint64    `json:"producer_dropped"` // samples the producer reported lost to its bound
	DrainLimited        uint64    `json:"drain_limited"`    // drains ended by --max-drain-pages/--max-drain-time while the producer said more
	Backpressure        bool      `json:"backpressure"`     // last attempt stopped because the WAL was over budget
	Static              bool      `json:"static"`           // configured, not assigned

	// Refused samples (quarantined, or counted as overflow when the
	// quarantine is full); the rest of their pages was taken.
	RejectedSamples  uint64    `json:"rejected_samples"`
	LastRejectReason string    `json:"last_reject_reason,omitempty"`
	LastRejectTime   time.Time `json:"last_reject_time,omitempty"`
	// The samples asked per page now: lowered after a page too large, grown back.
	PageLimit int `json:"page_limit"`
	// The series dictionary of version 3 pages (session.go): its id (16
	// hex digits, "" without one), the series it defines, and how often
	// it started over.
	Session       string `json:"session,omitempty"`
	SessionSeries int    `json:"session_series"`
	SessionResets uint64 `json:"session_resets"`
}

type producer struct {
	static bool               // from the configuration, not the assignment
	cancel context.CancelFunc // stops the loop; set while it runs
	done   chan struct{}

	// size is the sample limit asked for, sess the series dictionary of
	// version 3 pages; the loop goroutine alone uses them.
	size pageLimit
	sess session

	mu  sync.Mutex
	cfg ProducerConfig
	st  ProducerStatus
}

func newProducer(cfg ProducerConfig) *producer {
	return &producer{cfg: cfg, st: ProducerStatus{ID: cfg.ID, URL: cfg.URL, Interval: cfg.Interval.String()}}
}

func (p *producer) config() ProducerConfig {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cfg
}

// setInterval changes the interval in place: the loop takes it at its next
// tick, and its timer is not reset.
func (p *producer) setInterval(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cfg.Interval = d
	p.st.Interval = d.String()
}

func (p *producer) status() ProducerStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.st
	st.Static = p.static
	return st
}

func (p *producer) update(f func(*ProducerStatus)) {
	p.mu.Lock()
	f(&p.st)
	p.mu.Unlock()
}

// errBackpressure ends a drain because the WAL is over its budget. It is not
// the producer's fault and does not count as a failure.
var errBackpressure = errors.New("WAL over its budget; page left with the producer")

// errDrainLimited ends a drain that its bound stopped while the producer
// still said more (its last page acknowledged): a success, after which the
// next drain starts an interval after this one began.
var errDrainLimited = errors.New("drain bound reached; the producer has more")

// runProducer collects from one producer every interval (with ±10% jitter)
// until ctx ends; a failing producer is retried with capped exponential
// backoff instead. On the way out it acknowledges a page already written to
// the WAL, so the producer does not serve it again.
func (c *Collector) runProducer(ctx context.Context, p *producer) {
	cfg := p.config()
	client := c.newClient(cfg)
	var token string // the page written to the WAL and not yet acknowledged
	var page pa.Page
	var buf []byte
	// Start at a random point of the first interval so producers spread out.
	timer := time.NewTimer(time.Duration(rand.Int64N(int64(cfg.Interval)/2 + 1)))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			if token != "" {
				actx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				client.Ack(actx, token)
				cancel()
			}
			return
		case <-timer.C:
		}
		began := time.Now()
		err := c.drain(ctx, p, client, &token, &page, &buf)
		limited := errors.Is(err, errDrainLimited)
		if limited {
			err = nil // a success: the producer had more than one drain takes
		}
		c.m.scrapeSecs.WithLabelValues(p.cfg.ID).Set(time.Since(began).Seconds())
		interval := p.config().Interval
		var delay time.Duration
		switch {
		case err == nil || errors.Is(err, errBackpressure):
			delay = jitter(interval)
			if limited {
				// A drain its bound ended (the producer still says more)
				// is followed an interval after it began: at once when it
				// took the whole interval. Resting a whole interval after
				// it held a producer with a backlog to half the rate the
				// collector could take. Other drains rest the interval, so
				// one that waited for in-flight room is not sent back to
				// the queue ahead of producers with a backlog, and
				// backpressure rests in full.
				delay = max(0, delay-time.Since(began))
			}
			if err == nil {
				c.m.up.WithLabelValues(p.cfg.ID).Set(1)
				c.m.lastSuccess.WithLabelValues(p.cfg.ID).Set(float64(time.Now().UnixNano()) / 1e9)
			}
		case ctx.Err() != nil:
			continue
		default:
			failures := 0
			p.update(func(s *ProducerStatus) {
				s.ConsecutiveFailures++
				failures = s.ConsecutiveFailures
				s.LastError = err.Error()
			})
			c.m.up.WithLabelValues(p.cfg.ID).Set(0)
			delay = jitter(backoff.Exp(interval, c.opts.BackoffMax, min(failures-1, 20)))
			c.log.Warn("collection failed", "producer", p.cfg.ID, "err", err, "failures", failures, "retry_in", delay.Round(time.Millisecond))
		}
		timer.Reset(delay)
	}
}

func jitter(d time.Duration) time.Duration {
	return d - d/10 + time.Duration(rand.Int64N(int64(d)/5+1))
}

// drain fetches pages until the producer has no more, writing each to the WAL
// before acknowledging it (the next request carries its token), or until
// its bound (errDrainLimited).
func (c *Collector) drain(ctx context.Context, p *producer, client *pa.Client, token *string, page *pa.Page, buf *[]byte) error {
	p.update(func(s *ProducerStatus) { s.LastAttempt = time.Now() })
	budget := c.newDrainBudget(p.config().Interval)
	res := reservation{c: c}
	defer func() {
		// Idle until the next interval: pin nothing, and give the buffers up
		// before the reservation, so no finished loop holds a page outside
		// the in-flight bound.
		releaseBuffers(client, page, buf)
		res.done()
	}()
	for {
		if !budget.take() {
			c.endLimitedDrain(ctx, p, client, token)
			return errDrainLimited
		}
		if err := res.next(ctx, client, page, buf); err != nil {
			return err
		}
		rctx, cancel := context.WithTimeout(ctx, c.opts.RequestTimeout)
		req := c.pageRequest(p, client, *token)
		n, block, err := client.FetchRaw(rctx, req, page)
		cancel()
		if tl := (*pa.PageTooLargeError)(nil); errors.As(err, &tl) {
			// The producer answered: it took the token we sent.
			*token = ""
			if err := c.pageTooLarge(p, req, tl, token); err != nil {
				c.m.errors.WithLabelValues(p.cfg.ID, "too_large").Inc()
				return err
			}
			continue
		}
		if err != nil {
			c.m.errors.WithLabelValues(p.cfg.ID, fetchErrorKind(err)).Inc()
			return fmt.Errorf("fetching a page: %w", err)
		}
		// The producer has taken the token we sent: either it released that
		// page, or the token was stale and it served its outstanding page.
		*token = ""
		c.noteIncarnation(p, page)
		// Valid samples go to the WAL, refused ones to the quarantine; the
		// page is acknowledged once both are durable.
		idx, written, rejected, empty, err := c.takePage(ctx, p, client, page, block, buf)
		if empty {
			c.succeeded(p, 0, 0, false)
			return nil
		}
		var serr *sessionError
		if errors.As(err, &serr) {
			// The page was not taken. Had it been asked for in a session,
			// ask again without one: the producer serves it anew in a new
			// session, self-contained.
			asked := p.sess.id != 0
			c.resetSession(p, serr.reason, serr.err)
			if asked {
				continue
			}
			c.m.errors.WithLabelValues(p.cfg.ID, "protocol").Inc()
			return fmt.Errorf("fetching a page: %w", serr.err)
		}
		var malformed *pageError
		if errors.As(err, &malformed) {
			c.m.errors.WithLabelValues(p.cfg.ID, fetchErrorKind(malformed.err)).Inc()
			return fmt.Errorf("fetching a page: %w", malformed.err)
		}
		if errors.Is(err, wal.ErrFull) {
			c.m.walFullTotal.Inc()
			c.setWALFull(true)
			p.update(func(s *ProducerStatus) { s.Backpressure = true })
			return errBackpressure
		}
		if errors.Is(err, wal.ErrFailed) {
			// A full or failing disk: the page stays with the producer (not
			// acknowledged) and the WAL recovers by itself; keep the cadence.
			c.m.errors.WithLabelValues(p.cfg.ID, "wal").Inc()
			p.update(func(s *ProducerStatus) { s.Backpressure = true })
			return errBackpressure
		}
		if err != nil {
			c.m.errors.WithLabelValues(p.cfg.ID, "wal").Inc()
			return fmt.Errorf("writing the page to the WAL: %w", err)
		}
		if err := c.keepRejected(p, page.Incarnation, rejected); err != nil {
			c.m.errors.WithLabelValues(p.cfg.ID, "quarantine").Inc()
			return err
		}
		if idx != 0 { // 0: every sample was refused, nothing went to the WAL
			c.setWALFull(false)
			c.appends.note(idx, time.Now())
		}
		p.size.grow(c.opts.PageLimit)
		c.commitSession(p)
		*token = page.Token // durable: acknowledge it with the next request
		c.succeeded(p, written, n, true)
		if !page.More {
			c.ackNow(ctx, client, token)
			return nil
		}
	}
}

func (c *Collector) noteIncarnation(p *producer, page *pa.Page) {
	restarted := false
	p.update(func(s *ProducerStatus) {
		if s.Incarnation != "" && s.Incarnation != page.Incarnation {
			s.Restarts++
			restarted = true
		}
		s.Incarnation = page.Incarnation
		s.ProducerDropped += page.Dropped
	})
	if page.Dropped > 0 {
		c.m.producerDrops.WithLabelValues(p.cfg.ID).Add(float64(page.Dropped))
		c.log.Warn("producer reports samples lost to its buffer bound", "producer", p.cfg.ID, "dropped", page.Dropped)
	}
	if restarted {
		c.m.restarts.WithLabelValues(p.cfg.ID).Inc()
		c.log.Info("producer restarted", "producer", p.cfg.ID, "incarnation", page.Incarnation)
	}
}

func (c *Collector) succeeded(p *producer, samples, bytes int, page bool) {
	if page {
		c.m.samples.WithLabelValues(p.cfg.ID).Add(float64(samples))
		c.m.bytes.WithLabelValues(p.cfg.ID).Add(float64(bytes))
		c.m.pages.WithLabelValues(p.cfg.ID).Inc()
	}
	p.update(func(s *ProducerStatus) {
		s.LastSuccess = time.Now()
		s.LastError = ""
		s.ConsecutiveFailures = 0
		s.Backpressure = false
		if page {
			s.Samples += uint64(samples)
			s.Bytes += uint64(bytes)
			s.Pages++
		}
	})
}

// ackNow releases the page under *token at once rather than with the next
// interval's request.
func (c *Collector) ackNow(ctx context.Context, client *pa.Client, token *string) {
	actx, cancel := context.WithTimeout(ctx, c.opts.RequestTimeout)
	acked, err := client.Ack(actx, *token)
	cancel()
	if err == nil && acked {
		*token = ""
	}
}

// pageError is a version 2 page that does not check (malformed, or over
// the limits asked for): the page's fault, reported as a fetch error (as
// Fetch reports a page it cannot decode).
type pageError struct{ err error }

func (e *pageError) Error() string { return e.err.Error() }

// takePage writes a fetched page's valid samples to the WAL and returns
// the last index written (0: none), the samples written and the refused
// ones; empty says the page held no samples. A version 2 page (block not
// nil) is verified in place and written as received (verify.go); a
// version 1 or JSON page, decoded by the client, is validated sample by
// sample and converted once into a version 2 record.
func (c *Collector) takePage(ctx context.Context, p *producer, client *pa.Client, page *pa.Page, block []byte, buf *[]byte) (idx uint64, written int, rejected []quarantine.Entry, empty bool, err error) {
	p.sess.unstage()
	if page.Version != pa.PageVersion3 && p.sess.id != 0 {
		// The producer no longer serves sessions (another version, another
		// client encoding): the state is of no use.
		c.dropSession(p)
	}
	if block == nil {
		if len(page.Samples) == 0 {
			return 0, 0, nil, true, nil
		}
		valid, rejected := c.sortPage(page)
		idx, written, err := c.appendSamples(ctx, p, page.Incarnation, page.Samples[:valid], buf, &rejected)
		return idx, written, rejected, false, err
	}
	var lim *pa.PageLimits
	if client.Decoder != nil {
		lim = client.Decoder.Limits
	}
	w := pageWorkPool.Get().(*pageWork)
	defer w.release()
	if page.Version == pa.PageVersion3 {
		return c.takePage3(ctx, p, page, w, block, lim, buf)
	}
	rejected, err = c.verifyPage2(w, block, lim)
	if err != nil {
		return 0, 0, nil, false, &pageError{err}
	}
	if len(w.spans) == 0 {
		return 0, 0, nil, true, nil
	}
	if page.Token == "" {
		return 0, 0, nil, false, &pageError{fmt.Errorf("%w: page with %d samples has no token", pa.ErrMalformed, len(w.spans))}
	}
	idx, written, err = c.appendPage2(ctx, p, page.Incarnation, w, block, buf, &rejected)
	return idx, written, rejected, false, err
}
