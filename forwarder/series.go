package forwarder

import (
	"hash/maphash"
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
// Like the writer's other caches it holds at most max series, then starts
// over: bounded memory, at the cost of decoding each series once more.
type seriesCache struct {
	index   map[string]int32
	entries []cachedSeries
	chunks  [][]byte // the current chunk is the last; never moved
	max     int
}

// cachedSeries is what the cache keeps per series entry.
type cachedSeries struct {
	raw     string // the entry's bytes, aliasing the cache's chunk
	name    string // timeseries name, target:metric
	key, fp uint64 // TimeseriesKey and the writer's fingerprint
	typ     pa.DatumType
	// gen is the row set (rowSet.gen) this series was last admitted into:
	// its key checked against collisions, its fields and schema rows
	// added or known to be written. Equal to the current row set's gen,
	// the sample's row is all there is to add.
	gen uint64
}

const seriesChunk = 1 << 20

func newSeriesCache(max int) *seriesCache {
	return &seriesCache{index: make(map[string]int32), max: max}
}

// lookup returns the index of the series whose entry bytes are raw.
func (c *seriesCache) lookup(raw []byte) (int32, bool) {
	i, ok := c.index[string(raw)] // no allocation for the lookup
	return i, ok
}

// add stores a series (raw must not be in the cache) and returns its index.
func (c *seriesCache) add(raw []byte, e cachedSeries) int32 {
	var key string
	if len(raw) > 0 {
		chunk := c.chunkFor(len(raw))
		off := len(chunk)
		chunk = append(chunk, raw...)
		c.chunks[len(c.chunks)-1] = chunk
		key = unsafe.String(&chunk[off], len(raw))
	}
	i := int32(len(c.entries))
	e.raw = key
	c.entries = append(c.entries, e)
	c.index[key] = i
	return i
}

// chunkFor returns the current chunk, replaced by a new one when n more
// bytes would not fit (a chunk is never grown: the map's keys alias it).
func (c *seriesCache) chunkFor(n int) []byte {
	if k := len(c.chunks); k > 0 && cap(c.chunks[k-1])-len(c.chunks[k-1]) >= n {
		return c.chunks[k-1]
	}
	c.chunks = append(c.chunks, make([]byte, 0, max(seriesChunk, n)))
	return c.chunks[len(c.chunks)-1]
}

// full reports whether the cache holds its maximum; the caller resets it
// between records (never in the middle of one, whose samples hold indexes).
func (c *seriesCache) full() bool { return len(c.entries) >= c.max }

// reset forgets every series.
func (c *seriesCache) reset() {
	c.index = make(map[string]int32)
	clear(c.entries)
	c.entries = c.entries[:0]
	c.chunks = nil
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
		fp: maphash.Bytes(w.seed, w.scratch), typ: id.DatumType}, nil
}
