package forwarder

import (
	"context"
	"math"

	pa "github.com/holdfast/holdfast/producerapi"
	"github.com/holdfast/holdfast/wal"
)

// scanned is one sample of a version 2 record between the checking pass and
// the adding pass of addRecord2: what its row needs, nothing decoded.
type scanned struct {
	series  int32 // index in the series cache
	entry   int32 // index in the record's series table
	missing bool
	ts      int64
	start   int64
	bits    uint64 // the value: int64, uint64 or float bits, bool as 0/1
	bytes   []byte // string and bytes datums, aliasing the record
	hist    pa.HistogramView
}

// scan2 is addRecord2's reusable scratch space.
type scan2 struct {
	sc    pa.BlockScanner
	view  pa.SampleView
	slots []int32 // per series of the block: cache index + 1, 0 = not resolved yet
	// ids holds, per series of the block, the identity decoded on a cache
	// miss in this record (DatumType 0 otherwise), so a new timeseries'
	// fields rows do not decode it a second time.
	ids     []pa.SeriesIdentity
	samples []scanned
	refused []collision
	page    pa.PageRecord // only when a collision must be quarantined
	fresh   bool          // ids holds identities of this record
	key     []byte        // a version 1 sample's series entry, rebuilt
	// Version 3 (scan3.go): the record's head, the identities decoded
	// from its definitions (defIDs[i] is id defFirst+i) and from its
	// session's file (idents), for new timeseries' fields rows; defDec
	// decodes them into an arena rewound at the next record (the fields
	// rows copy what they keep).
	head     pa.Record3Head
	defIDs   []pa.SeriesIdentity
	defFirst uint64
	idents   map[uint64]pa.SeriesIdentity
	defDec   *pa.SeriesDecoder
}

// addRecord2 adds a version 2 page record straight from its bytes to the
// batch's columns: series through the series cache, values from the
// scanner's views, no sample decoded. It reports handled=false, having added
// nothing, when the record must take the decoding path instead: it is not
// version 2, does not scan, or holds a sample or a series that does not
// validate (that path finds and reports it). Records flagged
// verified are not validated again, except that a series is validated once
// when it enters the cache (cheap, and the cache is shared with unverified
// records).
func (f *Forwarder) addRecord2(ctx context.Context, b *batch, idx uint64, rec wal.Record) (handled bool, err error) {
	if rec.Type != wal.TypePage || len(rec.Payload) == 0 || rec.Payload[0] != 2 {
		return false, nil
	}
	_, verified, block, err := pa.PageRecordBlock(rec.Payload)
	if err != nil {
		return false, nil
	}
	s := f.scan
	if s.sc.Reset(block, nil) != nil {
		return false, nil
	}
	s = f.beginRecord(s.sc.NumSeries())
	cache := f.series
	v := &s.view
	for s.sc.Next(v) {
		slot := s.slots[v.Series]
		if slot == 0 {
			ci, ok := f.seriesIndex(s.sc.Series(v.Series).Raw, v.Series)
			if !ok {
				return false, nil
			}
			slot = ci + 1
			s.slots[v.Series] = slot
		}
		ci := slot - 1
		if !verified && !v.Missing && pa.ValidateSampleView(cache.entries[ci].name, v, f.opts.Limits) != nil {
			return false, nil
		}
		s.samples = append(s.samples, scanned{series: ci, entry: int32(v.Series), missing: v.Missing, ts: v.TimestampNs, start: v.StartTimeNs,
			bits: viewBits(v), bytes: v.Bytes, hist: v.Hist})
	}
	if s.sc.Err() != nil {
		return false, nil
	}
	return true, f.addScannedRecord(ctx, b, idx, rec)
}

// beginRecord prepares the scratch space for a record whose series are
// numbered 0..entries-1 (a version 2 block's series table, a version 1
// block's samples) and lets the series cache drop the previous record's
// spilled series.
func (f *Forwarder) beginRecord(entries int) *scan2 {
	f.series.beginRecord()
	s := f.scan
	if cap(s.slots) < entries {
		s.slots = make([]int32, entries)
	}
	s.slots = s.slots[:entries]
	clear(s.slots)
	s.ids = s.ids[:0]
	s.fresh = false
	// The last record's identities alias the arena rewound below, or
	// chunks it dropped; those before it were cleared the same way.
	clear(s.defIDs)
	s.defIDs = s.defIDs[:0]
	if len(s.idents) > 0 {
		clear(s.idents)
	}
	if s.defDec == nil {
		s.defDec = pa.NewSeriesDecoder()
	}
	s.defDec.Rewind() // nothing holds the previous record's identities now
	clear(s.samples)  // drop the previous record's byte references
	s.samples = s.samples[:0]
	return s
}

// addScannedRecord adds the rows of the samples scanned from record idx,
// all checked, and quarantines the samples refused as key collisions.
func (f *Forwarder) addScannedRecord(ctx context.Context, b *batch, idx uint64, rec wal.Record) error {
	s, cache := f.scan, f.series
	s.refused = s.refused[:0]
	for i := range s.samples {
		if !f.w.addScanned(b.rows, cache, s, &s.samples[i]) {
			e := &cache.entries[s.samples[i].series]
			s.refused = append(s.refused, collision{index: i, key: e.key, name: e.name})
		}
	}
	if len(s.refused) > 0 {
		// Rare: decode the record to quarantine the refused samples as the
		// decoding path does (same sample indexes: a block's order).
		clear(s.page.Samples)
		if err := f.decoder.DecodePageRecord(rec.Payload, &s.page); err != nil {
			return err
		}
		if err := f.quarantineCollisions(ctx, idx, &s.page, s.refused); err != nil {
			return err
		}
		b.noteRefused(idx, s.refused)
	}
	return nil
}

// seriesIndex returns the cache index of the series entry raw, decoding,
// validating and keying it on a miss; ok=false if it does not decode or
// validate.
// The decoded identity is kept in f.scan.ids[entry] for this record.
func (f *Forwarder) seriesIndex(raw []byte, entry int) (int32, bool) {
	if ci, ok := f.series.lookup(raw); ok {
		return ci, true
	}
	f.m.seriesMisses.Inc()
	id, err := pa.DecodeSeries(raw)
	if err != nil {
		return 0, false
	}
	e, err := f.w.resolveSeries(&id, f.opts.Limits)
	if err != nil {
		return 0, false
	}
	s := f.scan
	if !s.fresh {
		s.fresh = true
		n := len(s.slots)
		if cap(s.ids) < n {
			s.ids = make([]pa.SeriesIdentity, n)
		}
		s.ids = s.ids[:n]
		clear(s.ids)
	}
	s.ids[entry] = id
	return f.series.add(raw, e), true
}

// viewBits packs a scalar view's value into 64 bits.
func viewBits(v *pa.SampleView) uint64 {
	switch v.Type {
	case pa.DatumBool:
		if v.Bool {
			return 1
		}
		return 0
	case pa.DatumI8, pa.DatumI16, pa.DatumI32, pa.DatumI64, pa.DatumCumulativeI64:
		return uint64(v.Int)
	case pa.DatumU8, pa.DatumU16, pa.DatumU32, pa.DatumU64, pa.DatumCumulativeU64:
		return v.Uint
	case pa.DatumF32, pa.DatumCumulativeF32:
		return uint64(math.Float32bits(v.F32))
	case pa.DatumF64, pa.DatumCumulativeF64:
		return math.Float64bits(v.Float)
	}
	return 0
}

// addScanned adds one scanned sample's row to rs, as rs.add would: false
// if its key belongs to another timeseries. In steady state (the series
// admitted into rs already) it appends to the columns and nothing else.
func (w *writer) addScanned(rs *rowSet, cache *seriesCache, sc *scan2, s *scanned) bool {
	e := &cache.entries[s.series]
	if e.gen != rs.gen {
		ok, seen := w.admit(rs, e.key, e.fp)
		if !ok {
			return false
		}
		if !seen {
			// A timeseries new to this batch and not known written: its
			// fields and schema rows need the decoded identity, once.
			return w.addScannedNew(rs, sc, s, e)
		}
		e.gen = rs.gen
	}
	if rs.meas[e.typ] == nil {
		rs.meas[e.typ] = &measurementRows{t: e.typ}
	}
	rs.meas[e.typ].addScanned(e.name, e.key, s)
	rs.rows++
	return true
}

// admit checks a timeseries' key against the keys of other timeseries (in
// the batch being delivered, written, or in rs): ok=false on a collision;
// known: its fields and schema rows are written or in rs already.
func (w *writer) admit(rs *rowSet, key uint64, fp uint32) (ok, known bool) {
	if k, in := w.inflight[key]; in && k != fp {
		return false, false // the batch being delivered has another timeseries under key
	}
	k, seen := w.seenKeys.get(key)
	if !seen {
		k, seen = rs.newKeys[key]
	}
	if seen && k != fp {
		return false, false
	}
	return true, seen
}

// addScannedNew adds the sample of a series whose key is new, with its
// fields and schema rows, through rs.add.
func (w *writer) addScannedNew(rs *rowSet, sc *scan2, s *scanned, e *cachedSeries) bool {
	var id pa.SeriesIdentity
	if sc.fresh && sc.ids[s.entry].DatumType != 0 {
		id = sc.ids[s.entry] // decoded by this record's cache miss
	} else {
		var err error
		if id, err = pa.DecodeSeries([]byte(e.raw)); err != nil {
			// Unreachable: these bytes decoded when they entered the cache.
			return false
		}
	}
	smp := id.Sample()
	smp.TimestampNs = s.ts
	d := &smp.Datum
	d.Missing, d.StartTimeNs = s.missing, s.start
	if !s.missing {
		setDatum(d, s)
	}
	if !rs.add(e.name, e.key, e.fp, &smp, w) {
		return false
	}
	e.gen = rs.gen
	return true
}

// setDatum fills d's value from a scanned sample.
func setDatum(d *pa.Datum, s *scanned) {
	switch d.Type {
	case pa.DatumBool:
		d.Bool = s.bits != 0
	case pa.DatumI8, pa.DatumI16, pa.DatumI32, pa.DatumI64, pa.DatumCumulativeI64:
		d.Int = int64(s.bits)
	case pa.DatumU8, pa.DatumU16, pa.DatumU32, pa.DatumU64, pa.DatumCumulativeU64:
		d.Uint = s.bits
	case pa.DatumF32, pa.DatumCumulativeF32:
		d.F32 = math.Float32frombits(uint32(s.bits))
	case pa.DatumF64, pa.DatumCumulativeF64:
		d.F64 = math.Float64frombits(s.bits)
	case pa.DatumString:
		d.Str = string(s.bytes)
	case pa.DatumBytes:
		d.Bytes = append(make([]byte, 0, len(s.bytes)), s.bytes...)
	case pa.DatumHistogramI64, pa.DatumHistogramU64, pa.DatumHistogramF64:
		v := pa.SampleView{Type: d.Type, Hist: s.hist}
		hd := v.Datum()
		d.HistI64, d.HistU64, d.HistF64 = hd.HistI64, hd.HistU64, hd.HistF64
	}
}

// addScanned appends one row from a scanned sample.
func (m *measurementRows) addScanned(name string, key uint64, s *scanned) {
	m.names = append(m.names, name)
	m.keys = append(m.keys, key)
	m.ts = append(m.ts, s.ts)
	if m.t.HasStartTime() {
		m.start = append(m.start, s.start)
	}
	m.missing = append(m.missing, s.missing)
	switch m.t {
	case pa.DatumBool, pa.DatumU8, pa.DatumU16, pa.DatumU32, pa.DatumU64, pa.DatumCumulativeU64:
		m.uints = append(m.uints, s.bits)
	case pa.DatumI8, pa.DatumI16, pa.DatumI32, pa.DatumI64, pa.DatumCumulativeI64:
		m.ints = append(m.ints, int64(s.bits))
	case pa.DatumF32, pa.DatumCumulativeF32:
		m.f32 = append(m.f32, math.Float32frombits(uint32(s.bits)))
	case pa.DatumF64, pa.DatumCumulativeF64:
		m.f64 = append(m.f64, math.Float64frombits(s.bits))
	case pa.DatumString, pa.DatumBytes:
		// Copied: the record's bytes are the WAL's (and a missing value
		// keeps the slot so indexes line up with missing).
		m.strs = append(m.strs, string(s.bytes))
	case pa.DatumHistogramI64, pa.DatumHistogramU64, pa.DatumHistogramF64:
		h := &s.hist
		if s.missing {
			m.addHist(nil, 0, 0, 0)
			return
		}
		switch m.t {
		case pa.DatumHistogramI64:
			m.binsI = h.AppendBinsI64(m.binsI)
		case pa.DatumHistogramU64:
			m.binsU = h.AppendBinsU64(m.binsU)
		default:
			m.binsF = h.AppendBinsF64(m.binsF)
		}
		// The counts straight from the view (no slice of them), then the
		// rest as the decoding path adds it.
		m.counts = h.AppendCounts(m.counts)
		m.addHist(nil, h.Min, h.Max, h.Sum)
	}
}
