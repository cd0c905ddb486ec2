package forwarder

import (
	"time"
	"unsafe"

	pa "github.com/holdfast/holdfast/producerapi"
)

// seriesCache maps a series entry of a version 2 block (its encoded bytes:
// target name and fields, metric name and fields, datum type) to what the
// forwarder derives from it: the timeseries name, key and collision
// fingerprint. A hit costs one map lookup on the entry's bytes (Go hashes
// them and compares them exactly); a miss decodes the entry once
// (pa.DecodeSeries), validates it and hashes its key.
//
// The entry bytes are copied into large chunks the cache owns, and the map's
// keys alias them: one allocation per chunk rather than per series, and no
// pointer per series for the garbage collector to follow except the name
// (shared between series of one timeseries name by the writer's interner).
// It keeps at most max series. When it is full it stops taking new ones
// rather than starting over: a series met then is added for the current
// record only (its bytes in a spill area reused record after record) and
// dropped before the next. A fleet larger than the cache is visited in the
// same order every period, so starting over would keep only the series just
// seen, which are the ones not needed again until the next period: a hit
// rate near zero and the whole cache's memory turned into garbage each
// time. Kept full, it answers for the series it holds (max of them) and
// makes no garbage. Once full, it starts over every seriesCacheRefresh, so a
// fleet that changes does not leave it holding series that are gone.
type seriesCache struct {
	index   map[string]int32
	entries []cachedSeries
	kept    arena // the bytes of entries[:max]
	spill   arena // the bytes of entries[max:], this record's only
	max     int
	fullAt  time.Time // when it filled up; zero while not full
	now     func() time.Time
}

// seriesCacheRefresh is how long a full series cache is kept before it starts
// over (it then fills with the series of the next records).
const seriesCacheRefresh = 10 * time.Minute

// cachedSeries is what the cache keeps per series entry.
type cachedSeries struct {
	raw  string // the entry's bytes, aliasing the cache's chunk
	name string // timeseries name, target:metric
	key  uint64 // TimeseriesKey
	fp   uint32 // the writer's fingerprint
	typ  pa.DatumType
	// gen is the row set (rowSet.gen) this series was last admitted into:
	// its key checked against collisions, its fields and schema rows
	// added or known to be written. Equal to the current row set's gen,
	// the sample's row is all there is to add.
	gen uint64
}

const seriesChunk = 1 << 20

// arena holds entry bytes in chunks that never move (map keys alias them).
type arena struct {
	chunks [][]byte
	cur    int // chunks[cur] is being filled
}

// copy stores b and returns a string aliasing the copy.
func (a *arena) copy(b []byte) string {
	for a.cur < len(a.chunks) && cap(a.chunks[a.cur])-len(a.chunks[a.cur]) < len(b) {
		a.cur++
	}
	if a.cur == len(a.chunks) {
		a.chunks = append(a.chunks, make([]byte, 0, max(seriesChunk, len(b))))
	}
	c := a.chunks[a.cur]
	off := len(c)
	a.chunks[a.cur] = append(c, b...)
	return unsafe.String(&a.chunks[a.cur][off], len(b))
}

// rewind makes the chunks reusable (nothing may alias them any more).
func (a *arena) rewind() {
	for i := range a.chunks {
		a.chunks[i] = a.chunks[i][:0]
	}
	a.cur = 0
}

func newSeriesCache(max int) *seriesCache {
	return &seriesCache{index: make(map[string]int32), max: max, now: time.Now}
}

// lookup returns the index of the series whose entry bytes are raw.
func (c *seriesCache) lookup(raw []byte) (int32, bool) {
	i, ok := c.index[string(raw)] // no allocation for the lookup
	return i, ok
}

// add stores a series (raw must not be in the cache) and returns its index.
// Past max it goes to the spill area, valid until the next beginRecord.
func (c *seriesCache) add(raw []byte, e cachedSeries) int32 {
	var key string
	if len(raw) > 0 {
		if len(c.entries) < c.max {
			key = c.kept.copy(raw)
		} else {
			key = c.spill.copy(raw)
		}
	}
	i := int32(len(c.entries))
	e.raw = key
	c.entries = append(c.entries, e)
	c.index[key] = i
	return i
}

// beginRecord runs between records (never in the middle of one, whose
// samples hold indexes): it drops the previous record's spilled series,
// and starts over when the cache has been full for seriesCacheRefresh.
func (c *seriesCache) beginRecord() {
	if len(c.entries) > c.max {
		for _, e := range c.entries[c.max:] {
			delete(c.index, e.raw)
		}
		clear(c.entries[c.max:])
		c.entries = c.entries[:c.max]
		c.spill.rewind()
	}
	if len(c.entries) < c.max {
		return
	}
	now := c.now()
	if c.fullAt.IsZero() {
		c.fullAt = now
	} else if now.Sub(c.fullAt) >= seriesCacheRefresh {
		c.reset()
	}
}

// reset forgets every series.
func (c *seriesCache) reset() {
	c.index = make(map[string]int32)
	clear(c.entries)
	c.entries = c.entries[:0]
	c.kept = arena{}
	c.spill.rewind()
	c.fullAt = time.Time{}
}

// resolve derives a cache entry from a decoded series identity: validated
// (names, fields and limits, as pa.Validate checks them), keyed and named by
// the writer. The error is pa.Validate's.
func (w *writer) resolveSeries(id *pa.SeriesIdentity, lim pa.Limits) (cachedSeries, error) {
	s := id.Sample()
	// A missing datum validates the identity alone; the values are checked
	// per sample (pa.ValidateSampleView).
	if err := pa.Validate(&s, lim); err != nil {
		return cachedSeries{}, err
	}
	w.scratch = pa.AppendTimeseriesKeyBytes(w.scratch[:0], &s)
	return cachedSeries{name: w.names.name(s.Target.Name, s.Metric.Name), key: w.keyOf(w.scratch),
		fp: fingerprintOf(w.seed, w.scratch), typ: id.DatumType}, nil
}
