package collector

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"sync"
	"time"

	pa "github.com/holdfast/holdfast/producerapi"
	"github.com/holdfast/holdfast/quarantine"
	"github.com/holdfast/holdfast/wal"
)

// The verify-in-place path of a binary page of version 2: the page's block
// is checked with one allocation-free scan and written to the WAL as it was
// received, behind a version 2 page record head. No sample is decoded into
// Go structs unless it is refused.
//
//  1. Scan: BlockScanner.Reset checks the head and the series table within
//     the page limits (before anything is allocated for a count); Next
//     reads each sample, whose value is checked in place
//     (ValidateSampleView: integer ranges, lengths, histogram shape).
//  2. Series: each series a sample refers to is checked once, by Validate
//     and the schema registry, and remembered in the collector's series
//     cache (keyed by its entry bytes: a hash, then an exact compare), so
//     the next pages of that producer cost a map lookup per series.
//  3. Write: all samples valid, the record is the record head plus the
//     received block (one copy). Some refused: they go to the quarantine
//     (each decoded alone, as a version 1 one-sample block) and the record
//     holds the same series table and the byte ranges of the others. A
//     record over the WAL's limit is split by sample ranges, each part with
//     a series table of its own series only.

// seriesCacheBytes bounds the series cache: entry bytes plus 4 per entry
// (and the map, ~20 bytes per entry). 16 MiB holds ~140,000 RFD 125
// series; past it, it keeps what it holds (see add).
const seriesCacheBytes = 16 << 20

// seriesCache remembers the series entries (as encoded in a version 2
// block) that passed Validate and the schema check. Only good series are
// remembered: a refused one is checked again on each page that has it
// (rare, and its error is needed then anyway). A series once good stays
// good: limits are fixed for the collector's life and the schema registry
// never forgets a schema. Safe for concurrent use; the zero value is ready.
type seriesCache struct {
	mu     sync.RWMutex
	max    int // 0: seriesCacheBytes
	seed   maphash.Seed
	m      map[uint64]uint32 // hash of the entry -> offset of its copy in arena
	arena  []byte            // u32 length | entry bytes, one after another
	fullAt time.Time         // when it filled up; zero while not full
}

// seriesCacheRefresh is how long a full series cache is kept before it
// starts over.
const seriesCacheRefresh = 10 * time.Minute

// entry returns the copy at off.
func (c *seriesCache) entry(off uint32) []byte {
	n := binary.LittleEndian.Uint32(c.arena[off:])
	return c.arena[off+4 : off+4+n]
}

// lookup sets good[i] for every series i of the page that is referenced
// (ref[i]) and known good, under one read lock, and returns how many
// referenced series it did not know.
func (c *seriesCache) lookup(sc *pa.BlockScanner, ref, good []bool) (misses int) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	for i := range ref {
		if !ref[i] {
			continue
		}
		if c.m != nil {
			raw := sc.Series(i).Raw
			if off, ok := c.m[maphash.Bytes(c.seed, raw)]; ok && bytes.Equal(c.entry(off), raw) {
				good[i] = true
				continue
			}
		}
		misses++
	}
	return misses
}

// add remembers good series entries, under one write lock.
func (c *seriesCache) add(sc *pa.BlockScanner, which []int) {
	if len(which) == 0 {
		return
	}
	max := c.max
	if max <= 0 {
		max = seriesCacheBytes
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.seed = maphash.MakeSeed()
		c.m = make(map[uint64]uint32)
	}
	for _, i := range which {
		raw := sc.Series(i).Raw
		if len(raw)+4 > max {
			continue // larger than the whole cache: checked on every page
		}
		if len(c.arena)+4+len(raw) > max {
			// Full: keep what it holds rather than start over. A fleet
			// larger than the cache is met in the same order every
			// period, so starting over would keep only the series just
			// seen, the ones not needed until the next period (a hit rate
			// near zero, and the work of filling it for nothing). Kept
			// full it answers for the series it holds; it starts over
			// every seriesCacheRefresh so that series which are gone do
			// not stay forever.
			now := time.Now()
			if c.fullAt.IsZero() {
				c.fullAt = now
			}
			if now.Sub(c.fullAt) < seriesCacheRefresh {
				return
			}
			clear(c.m)
			c.arena = c.arena[:0]
			c.fullAt = time.Time{}
		}
		off := uint32(len(c.arena))
		c.arena = binary.LittleEndian.AppendUint32(c.arena, uint32(len(raw)))
		c.arena = append(c.arena, raw...)
		c.m[maphash.Bytes(c.seed, raw)] = off
	}
}

// span is one sample of the page: where its entry lies in the block and
// which series it refers to.
type span struct {
	start, end uint32
	series     uint32 // a version 3 page's: the session id
	badValue   bool   // ValidateSampleView refused it
	badSeries  bool   // a version 3 page's: its series was refused
}

// pageWork is a producer loop's scratch for one version 2 page. Pooled, so
// a loop between pages pins none of it.
type pageWork struct {
	sc      pa.BlockScanner
	v       pa.SampleView
	spans   []span
	kept    []span
	ref     []bool // per series: a sample refers to it
	good    []bool // per series: passed Validate and the schema check
	miss    []int
	remap   []int32
	refused []refusal
	dec     *pa.SampleDecoder // series of a cache miss: names interned

	// A version 3 page's (verify3.go).
	pend        pending        // the session change, committed once the page is taken
	types       []pa.DatumType // a new session's types (tentative)
	defErr      []error        // per definition: why it was refused
	defOff      []int          // per definition: its offset in the table (splits)
	partRefused []uint64       // a split part's refused ids
	producer    string         // the page's producer, for stored definitions
	// stored holds definitions of earlier pages' series read back from
	// the forwarder's store for this page's refused samples (sortRefused3).
	stored map[uint64][]byte
}

// refusal is a sample the page is written without. Why is found again
// when its quarantine entry is made (rare): the sample is decoded then.
type refusal struct {
	sample int
}

var pageWorkPool = sync.Pool{New: func() any { return new(pageWork) }}

// release returns w to the pool holding no reference to the page.
func (w *pageWork) release() {
	w.sc.Reset(nil, nil)
	w.v = pa.SampleView{}
	clear(w.pend.refusedRaw) // aliasing the page
	w.pend.refusedRaw = w.pend.refusedRaw[:0]
	w.pend.types = nil // a session's array
	clear(w.defErr)
	clear(w.stored)
	w.producer = ""
	pageWorkPool.Put(w)
}

// verifyPage2 scans a version 2 block and sorts its samples into those
// taken (w.kept) and those refused (returned as quarantine entries). An
// error is the page's: malformed, or over the limits asked for; then
// nothing was taken.
func (c *Collector) verifyPage2(w *pageWork, block []byte, lim *pa.PageLimits) ([]quarantine.Entry, error) {
	sc := &w.sc
	if err := sc.Reset(block, lim); err != nil {
		return nil, err
	}
	ns := sc.NumSeries()
	w.ref = resetBools(w.ref, ns)
	w.good = resetBools(w.good, ns)
	w.spans, w.refused = w.spans[:0], w.refused[:0]
	start := sc.Offset()
	for sc.Next(&w.v) {
		end := sc.Offset()
		w.spans = append(w.spans, span{start: uint32(start), end: uint32(end), series: uint32(w.v.Series)})
		// A series is checked only for samples whose value is valid, as
		// sortPage checks a sample's schema only once it is valid: a
		// series whose every sample is refused registers no schema.
		if pa.ValidateSampleView("", &w.v, c.opts.Limits) != nil {
			w.spans[len(w.spans)-1].badValue = true
			w.refused = append(w.refused, refusal{sample: len(w.spans) - 1})
		} else {
			w.ref[w.v.Series] = true
		}
		start = end
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	// Series: the cache first, then what it did not know.
	if c.series.lookup(sc, w.ref, w.good) > 0 {
		w.miss = w.miss[:0]
		bad := false
		for i := 0; i < ns; i++ {
			if !w.ref[i] || w.good[i] {
				continue
			}
			if w.dec == nil {
				w.dec = pa.NewSampleDecoder()
			}
			if c.checkSeries(w.dec, sc.Series(i).Raw) != nil {
				bad = true
				continue
			}
			w.good[i] = true
			w.miss = append(w.miss, i)
		}
		c.series.add(sc, w.miss)
		if bad {
			w.refused = w.refused[:0]
			for i := range w.spans {
				// Refused: by its value, or by its series.
				if sp := w.spans[i]; sp.badValue || !w.good[sp.series] {
					w.refused = append(w.refused, refusal{sample: i})
				}
			}
		}
	}
	if len(w.refused) == 0 {
		w.kept = append(w.kept[:0], w.spans...)
		return nil, nil
	}
	return c.sortRefused(w, block)
}

// sortRefused fills w.kept with the samples not refused and returns the
// refused ones as quarantine entries (each sample decoded alone).
func (c *Collector) sortRefused(w *pageWork, block []byte) ([]quarantine.Entry, error) {
	out := make([]quarantine.Entry, 0, len(w.refused))
	w.kept = w.kept[:0]
	next := 0                    // the next refusal (in page order)
	for i, sp := range w.spans { // in page order, as sortPage reports them
		if next >= len(w.refused) || w.refused[next].sample != i {
			w.kept = append(w.kept, sp)
			continue
		}
		next++
		s, err := c.sampleAt(w, block, i)
		if err != nil {
			return nil, err
		}
		// The reason sortPage gives: Validate's, else the schema's.
		code := quarantine.CodeInvalid
		err = pa.Validate(&s, c.opts.Limits)
		if err == nil {
			code = quarantine.CodeSchema
			if _, err = c.schemas.Check(&s); err == nil {
				// Not reached: refused samples fail one or the other.
				err = errors.New("refused by its series check")
			}
		}
		out = append(out, quarantine.Entry{Kind: quarantine.KindSample, Code: code,
			Reason: fmt.Sprintf("sample %d of its page: %v", i, err), Payload: pa.AppendSamples(nil, []pa.Sample{s})})
	}
	return out, nil
}

// sampleAt decodes sample i of the page.
func (c *Collector) sampleAt(w *pageWork, block []byte, i int) (pa.Sample, error) {
	sp := w.spans[i]
	return sampleOf(w.sc.Series(int(sp.series)).Raw, block[sp.start:sp.end])
}

// appendReindexed appends a sample entry with its series index replaced.
func appendReindexed(dst, sample []byte, idx int) []byte {
	_, n := binary.Uvarint(sample)
	dst = binary.AppendUvarint(dst, uint64(idx))
	return append(dst, sample[n:]...)
}

// checkSeries checks a series entry as Validate and the schema registry
// check a sample, for all its samples at once.
func (c *Collector) checkSeries(dec *pa.SampleDecoder, raw []byte) error {
	// Most misses are series the cache forgot (it holds fewer series than a
	// large fleet has) whose schema the registry knows: shown valid
	// without allocating. The rest are checked by decoding.
	if pa.SeriesKnownValid(raw, c.opts.Limits, c.schemas) {
		return nil
	}
	id, err := dec.DecodeSeries(raw)
	if err != nil { // not reached: the scanner checked the entry
		return err
	}
	s := id.Sample()
	if err := pa.Validate(&s, c.opts.Limits); err != nil {
		return err
	}
	_, err = c.schemas.Check(&s)
	return err
}

func resetBools(b []bool, n int) []bool {
	if cap(b) < n {
		return make([]bool, n)
	}
	b = b[:n]
	clear(b)
	return b
}

// appendPage2 writes the kept samples of a verified version 2 page to the
// WAL: the received block as it is when all were kept, else the same
// series table and the kept samples' bytes; split by sample ranges when
// over the record limit. It returns the last index written (0: none) and
// the samples written; a single sample too large for any record joins
// rejected.
func (c *Collector) appendPage2(ctx context.Context, p *producer, incarnation string, w *pageWork, block []byte, buf *[]byte, rejected *[]quarantine.Entry) (uint64, int, error) {
	if len(w.kept) == 0 {
		return 0, 0, nil
	}
	if rec, ok := c.record2(p.cfg.ID, incarnation, w, block, (*buf)[:0]); ok {
		*buf = rec
		return c.appendRecord(ctx, rec, len(w.kept))
	}
	return c.appendSplit(ctx, p, incarnation, w, block, w.kept, buf, rejected)
}

// record2 appends to dst the one page record of the kept samples, if it
// fits in a WAL record: the head and the received block when all were
// kept (the one copy of the page's bytes on the collector's side), else
// the head, the page's series table and the kept samples' bytes.
func (c *Collector) record2(producer, incarnation string, w *pageWork, block, dst []byte) ([]byte, bool) {
	head := pa.AppendPageRecord2Head(dst, producer, incarnation, true)
	if len(w.kept) == len(w.spans) {
		if len(head)+len(block) > c.maxRec {
			return dst, false
		}
		return append(head, block...), true
	}
	table := w.sc.SeriesTable()
	size := len(head) + 1 + binary.MaxVarintLen64*2 + len(table)
	for _, sp := range w.kept {
		size += int(sp.end - sp.start)
	}
	if size > c.maxRec {
		return dst, false
	}
	b := pa.AppendBlock2Head(head, w.sc.NumSeries(), table, len(w.kept))
	// Copy runs of adjacent kept samples at once.
	for i := 0; i < len(w.kept); {
		j := i + 1
		for j < len(w.kept) && w.kept[j].start == w.kept[j-1].end {
			j++
		}
		b = append(b, block[w.kept[i].start:w.kept[j-1].end]...)
		i = j
	}
	return b, true
}

// appendSplit writes part (too large for one record with the page's series
// table) as records of its own series only, halving until each fits.
func (c *Collector) appendSplit(ctx context.Context, p *producer, incarnation string, w *pageWork, block []byte, part []span, buf *[]byte, rejected *[]quarantine.Entry) (uint64, int, error) {
	*buf = c.appendCompact(pa.AppendPageRecord2Head((*buf)[:0], p.cfg.ID, incarnation, true), w, block, part)
	if len(*buf) <= c.maxRec {
		return c.appendRecord(ctx, *buf, len(part))
	}
	if len(part) == 1 {
		i := int(part[0].start) // find the sample's index for its decoding
		for k, sp := range w.spans {
			if int(sp.start) == i {
				i = k
				break
			}
		}
		s, err := c.sampleAt(w, block, i)
		if err != nil {
			return 0, 0, err
		}
		*rejected = append(*rejected, c.tooLargeEntry(&s, len(*buf)))
		return 0, 0, nil
	}
	mid := len(part) / 2
	i1, n1, err := c.appendSplit(ctx, p, incarnation, w, block, part[:mid], buf, rejected)
	if err != nil {
		return 0, 0, err
	}
	i2, n2, err := c.appendSplit(ctx, p, incarnation, w, block, part[mid:], buf, rejected)
	if err != nil {
		return 0, 0, err
	}
	return max(i1, i2), n1 + n2, nil
}

// appendCompact appends a version 2 block of the samples in part with a
// series table of only their series (re-indexed).
func (c *Collector) appendCompact(dst []byte, w *pageWork, block []byte, part []span) []byte {
	ns := w.sc.NumSeries()
	if cap(w.remap) < ns {
		w.remap = make([]int32, ns)
	}
	w.remap = w.remap[:ns]
	for i := range w.remap {
		w.remap[i] = -1
	}
	var table []byte
	n := int32(0)
	for _, sp := range part {
		if w.remap[sp.series] < 0 {
			w.remap[sp.series] = n
			n++
			table = append(table, w.sc.Series(int(sp.series)).Raw...)
		}
	}
	dst = pa.AppendBlock2Head(dst, int(n), table, len(part))
	for _, sp := range part {
		dst = appendReindexed(dst, block[sp.start:sp.end], int(w.remap[sp.series]))
	}
	return dst
}

// appendRecord appends one page record to the WAL.
func (c *Collector) appendRecord(ctx context.Context, payload []byte, samples int) (uint64, int, error) {
	if c.wFault != nil {
		if err := c.wFault(); err != nil {
			return 0, 0, err
		}
	}
	idx, err := c.wal.Append(ctx, wal.Record{Type: wal.TypePage, Payload: payload})
	if err != nil {
		return 0, 0, err
	}
	return idx, samples, nil
}
