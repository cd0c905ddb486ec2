package collector

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	pa "github.com/holdfast/holdfast/producerapi"
	"github.com/holdfast/holdfast/quarantine"
	"github.com/holdfast/holdfast/wal"
)

// A page's samples are sorted into those the collector takes (written to the
// WAL) and those it refuses (kept in the quarantine); the page is
// acknowledged once both are durable, so one bad sample never holds up the
// samples around it nor stalls the producer.

// sortPage moves the page's valid samples to its front (keeping their order)
// and returns how many there are, and the refused ones as quarantine entries
// holding each sample's binary block.
func (c *Collector) sortPage(page *pa.Page) (int, []quarantine.Entry) {
	var rejected []quarantine.Entry
	w := 0
	for i := range page.Samples {
		s := &page.Samples[i]
		code := quarantine.CodeInvalid
		err := pa.Validate(s, c.opts.Limits)
		if err == nil {
			if _, err = c.schemas.Check(s); err != nil {
				code = quarantine.CodeSchema
			}
		}
		if err != nil {
			rejected = append(rejected, quarantine.Entry{Kind: quarantine.KindSample, Code: code,
				Reason: fmt.Sprintf("sample %d of its page: %v", i, err), Payload: pa.AppendSamples(nil, page.Samples[i:i+1])})
			continue
		}
		// Swap rather than copy: decoded samples share field arrays, and a
		// copy would leave two samples aliasing one.
		page.Samples[w], page.Samples[i] = page.Samples[i], page.Samples[w]
		w++
	}
	return w, rejected
}

// appendSamples writes samples to the WAL as one page record (version 2,
// verified), or, when that
// record would exceed what the WAL takes, as several (halving), and returns
// the last index written (0: none) and the samples written. A single sample
// too large for any record joins rejected. Records written before an error
// are written again when the producer serves the page again; the tables
// deduplicate them.
func (c *Collector) appendSamples(ctx context.Context, p *producer, incarnation string, samples []pa.Sample, buf *[]byte, rejected *[]quarantine.Entry) (uint64, int, error) {
	if len(samples) == 0 {
		return 0, 0, nil
	}
	// Converted once into a version 2 record; every sample here passed
	// Validate and the schema check (sortPage).
	enc := block2Encoders.Get().(*pa.Block2Encoder)
	*buf = enc.Append(pa.AppendPageRecord2Head((*buf)[:0], p.cfg.ID, incarnation, true), samples)
	block2Encoders.Put(enc)
	if len(*buf) <= c.maxRec {
		return c.appendRecord(ctx, *buf, len(samples))
	}
	if len(samples) == 1 {
		*rejected = append(*rejected, c.tooLargeEntry(&samples[0], len(*buf)))
		return 0, 0, nil
	}
	mid := len(samples) / 2
	i1, n1, err := c.appendSamples(ctx, p, incarnation, samples[:mid], buf, rejected)
	if err != nil {
		return 0, 0, err
	}
	i2, n2, err := c.appendSamples(ctx, p, incarnation, samples[mid:], buf, rejected)
	if err != nil {
		return 0, 0, err
	}
	return max(i1, i2), n1 + n2, nil
}

// block2Encoders keep the series index and buffers of the version 1 and
// JSON pages' conversion from page to page.
var block2Encoders = sync.Pool{New: func() any { return new(pa.Block2Encoder) }}

// tooLargeEntry is the quarantine entry of a sample whose WAL record of
// recLen bytes, alone, exceeds the WAL's record limit.
func (c *Collector) tooLargeEntry(s *pa.Sample, recLen int) quarantine.Entry {
	return quarantine.Entry{Kind: quarantine.KindSample, Code: quarantine.CodeTooLarge,
		Reason:  fmt.Sprintf("sample of %q: its WAL record of %d bytes exceeds the WAL's record limit of %d bytes", s.TimeseriesName(), recLen, c.maxRec),
		Payload: pa.AppendSamples(nil, []pa.Sample{*s})}
}

// keepRejected stores refused samples in the quarantine (synced) and counts
// them. A sample the full quarantine cannot keep is counted and logged, and
// the page still acknowledged: its good samples must keep flowing.
func (c *Collector) keepRejected(p *producer, incarnation string, entries []quarantine.Entry) error {
	if len(entries) == 0 {
		return nil
	}
	for i := range entries {
		entries[i].Producer, entries[i].Incarnation = p.cfg.ID, incarnation
	}
	var over []quarantine.Entry
	var err error
	if c.qFault != nil {
		err = c.qFault()
	}
	if err == nil {
		over, err = c.q.Put(entries)
	}
	if err != nil {
		return fmt.Errorf("quarantining %d refused samples (page not acknowledged): %w", len(entries), err)
	}
	for _, e := range entries {
		c.m.rejected.WithLabelValues(p.cfg.ID, e.Code).Inc()
	}
	last := entries[len(entries)-1]
	p.update(func(s *ProducerStatus) {
		s.RejectedSamples += uint64(len(entries))
		s.LastRejectReason = last.Reason
		s.LastRejectTime = time.Now()
	})
	if kept := len(entries) - len(over); kept > 0 {
		c.log.Warn("refused samples quarantined; the rest of the page was taken", "producer", p.cfg.ID, "samples", kept,
			"first_reason", entries[0].Reason, "first_id", entries[0].ID)
	}
	if len(over) > 0 {
		c.log.Error("quarantine full: refused samples NOT kept (counted in holdfast_quarantine_overflow_total)", "producer", p.cfg.ID,
			"samples", len(over), "first_reason", over[0].Reason)
	}
	return nil
}

// pageLimit is the sample limit a producer loop asks for: the configured
// one, halved after a page too large for the body limit and grown back
// (doubling) after each page taken. The byte limit asked (max_bytes) is
// always the body limit: a producer that honours it never sends a page the
// collector cannot take, except one of a single sample larger than it; one
// that does not is brought down to fitting pages by the sample limit. (A
// page within the body limit but too large for one WAL record is split into
// several records, so max_bytes need not follow the WAL.)
type pageLimit struct{ n int }

func (l *pageLimit) grow(configured int) { l.n = min(configured, max(l.n*2, 1)) }

func (c *Collector) pageRequest(p *producer, client *pa.Client, token string) pa.FetchRequest {
	if p.size.n == 0 {
		p.size.n = c.opts.PageLimit
	}
	p.update(func(s *ProducerStatus) { s.PageLimit = p.size.n })
	sess, known := p.sess.request()
	return pa.FetchRequest{Token: token, Limit: p.size.n, MaxBytes: int(min(client.PageByteLimit(), math.MaxInt32)), Session: sess, Known: known}
}

// pageTooLarge handles a page over the body limit: ask again for half the
// samples (the producer re-cuts the page it holds), or, for a page of one
// sample that can never fit, record it in the quarantine (its data was not
// read) and acknowledge it, so the producer is never stuck on it.
func (c *Collector) pageTooLarge(p *producer, req pa.FetchRequest, tl *pa.PageTooLargeError, token *string) error {
	if tl.Samples == 1 && tl.Token != "" {
		e := []quarantine.Entry{{Kind: quarantine.KindSample, Code: quarantine.CodeTooLarge,
			Reason: fmt.Sprintf("a single sample larger than the collector's page body limit of %d bytes; its data was not read and is lost (raise the limit to take such samples)", tl.Limit)}}
		if err := c.keepRejected(p, tl.Incarnation, e); err != nil {
			return err
		}
		*token = tl.Token
		return nil
	}
	if req.Limit <= 1 {
		return fmt.Errorf("%w: page of %d samples over the body limit of %d bytes although one sample was asked for: the producer does not re-cut its held page (it needs max_bytes support), or its page head is unreadable", pa.ErrPageLimit, tl.Samples, tl.Limit)
	}
	limit := req.Limit
	if tl.Samples > 0 && tl.Samples < limit {
		limit = tl.Samples
	}
	p.size.n = max(1, limit/2)
	c.m.errors.WithLabelValues(p.cfg.ID, "page_too_large").Inc()
	c.log.Warn("page larger than the body limit; asking for smaller pages", "producer", p.cfg.ID, "samples", tl.Samples,
		"body_limit", tl.Limit, "limit", p.size.n)
	return nil
}

// Quarantine returns the collector's quarantine (shared with its forwarder).
func (c *Collector) Quarantine() *quarantine.Store { return c.q }

// ReplayQuarantine re-submits quarantined entries (ids; empty: all) that the
// current limits and schemas accept, appending them to the WAL; see
// quarantine.Replay.
func (c *Collector) ReplayQuarantine(ctx context.Context, ids []uint64) (quarantine.ReplayReport, error) {
	rep, err := quarantine.Replay(ctx, c.q, quarantine.ReplayOptions{IDs: ids, Limits: c.opts.Limits, Schemas: c.schemas,
		Append: func(ctx context.Context, rec wal.Record) (uint64, error) {
			idx, err := c.wal.Append(ctx, rec)
			if err == nil {
				c.appends.note(idx, time.Now())
			}
			return idx, err
		}})
	c.log.Info("quarantine replay", "replayed", rep.Replayed, "still_refused", rep.StillRefused, "samples", rep.Samples, "err", err)
	return rep, err
}
