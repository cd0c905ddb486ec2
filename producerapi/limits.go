package producerapi

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
)

// PageLimits bound what a page decoder accepts from a producer, checked
// against every count BEFORE anything is allocated for it. They hold the
// limits the collector asked for (limit, max_bytes) and the sample Limits:
// a page beyond them is a protocol violation, refused whole with a
// *LimitError, never decoded into memory first. Without them a count is
// bounded only by the bytes left, and a 1,000,000-sample page answered to
// limit=10000 costs ~12x its wire size in Sample structs.
//
// Field counts and histogram bins are bounded here because their decoded
// form is many times their encoded size (a Field is 104 bytes, its minimum
// encoding 3). String and byte lengths are not: they cost what they weigh
// on the wire (already bounded by MaxBytes), and one too long is a
// sample-level problem for Validate (quarantined) rather than a reason to
// refuse every other sample of the page.
//
// Page records (the collector's own WAL records) are never decoded with
// limits: they were checked when they were pages.
type PageLimits struct {
	MaxSamples int // samples per page: the `limit` the collector asks for; 0: bounded by bytes only
	MaxBytes   int // encoded page bytes: the `max_bytes` the collector asks for; 0: no bound
	// Sample limits; zero fields mean the defaults of Limits. Only
	// MaxFields and MaxHistogramBins are enforced by the decoder.
	Sample Limits
}

// ErrPageLimit is the sentinel of every *LimitError: the producer sent more
// than the collector asked for.
var ErrPageLimit = errors.New("producerapi: page exceeds the limits the collector asked for")

// LimitError says which count of a page went over which limit.
type LimitError struct {
	What   string // "samples", "page bytes", "fields", "histogram bins"
	Count  uint64 // what the page claims
	Limit  int
	Sample int // the sample, -1 for the page itself
}

func (e *LimitError) Error() string {
	if e.Sample < 0 {
		return fmt.Sprintf("%v: %d %s, limit %d", ErrPageLimit, e.Count, e.What, e.Limit)
	}
	return fmt.Sprintf("%v: sample %d has %d %s, limit %d", ErrPageLimit, e.Sample, e.Count, e.What, e.Limit)
}

func (e *LimitError) Unwrap() error { return ErrPageLimit }

// pageLimits is PageLimits with defaults applied, as the decoder reads them.
type pageLimits struct {
	maxSamples, maxBytes, maxFields, maxBins int
}

func (l *PageLimits) resolve() *pageLimits {
	if l == nil {
		return nil
	}
	r := l.resolved()
	return &r
}

// resolved is resolve without the allocation, for l != nil.
func (l *PageLimits) resolved() pageLimits {
	s := l.Sample.withDefaults()
	return pageLimits{maxSamples: l.MaxSamples, maxBytes: l.MaxBytes, maxFields: s.MaxFields, maxBins: s.MaxHistogramBins}
}

// checkPageBytes refuses a page longer than MaxBytes before any decoding.
func (l *pageLimits) checkPageBytes(n int) error {
	if l != nil && l.maxBytes > 0 && n > l.maxBytes {
		return &LimitError{What: "page bytes", Count: uint64(n), Limit: l.maxBytes, Sample: -1}
	}
	return nil
}

// checkSamples refuses a sample count above MaxSamples.
func (l *pageLimits) checkSamples(n uint64) error {
	if l != nil && l.maxSamples > 0 && n > uint64(l.maxSamples) {
		return &LimitError{What: "samples", Count: n, Limit: l.maxSamples, Sample: -1}
	}
	return nil
}

// pageHeadBytes is what readPageBody keeps of a page over the limit: enough
// for its head (producer, incarnation and token are bounded strings), so
// the collector can acknowledge or re-ask without holding the body.
const pageHeadBytes = 4 << 10

// readPageBody reads at most limit bytes of a page. A body announced or
// found longer is refused with a *LimitError; only its first pageHeadBytes
// are returned (read without reading the rest when the length is announced),
// so what a producer sends costs at most limit bytes (plus the read
// buffer's growth when the length is not announced).
func readPageBody(resp *http.Response, limit int64) ([]byte, error) {
	lim := int(min(limit, math.MaxInt32))
	if resp.ContentLength > limit {
		head := make([]byte, min(pageHeadBytes, limit))
		n, _ := io.ReadFull(resp.Body, head)
		return head[:n], &LimitError{What: "page bytes", Count: uint64(resp.ContentLength), Limit: lim, Sample: -1}
	}
	size := int64(64 << 10)
	if resp.ContentLength >= 0 {
		size = resp.ContentLength + bytes.MinRead // ReadFrom grows below MinRead of room
	}
	buf := bytes.NewBuffer(make([]byte, 0, min(size, limit+bytes.MinRead)))
	n, err := buf.ReadFrom(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return buf.Bytes(), fmt.Errorf("reading page: %w", err)
	}
	if n > limit {
		b := buf.Bytes()
		return b[:min(len(b), pageHeadBytes)], &LimitError{What: "page bytes (at least)", Count: uint64(n), Limit: lim, Sample: -1}
	}
	return buf.Bytes(), nil
}
