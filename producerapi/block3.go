package producerapi

import (
	"encoding/binary"
	"fmt"
)

// Binary sample block, version 3: a session's series dictionary. A
// producer gives each series it sends a collector a dense id within a
// session (per incarnation and cursor, chosen by the producer); a block
// defines only the ids the collector does not have yet, and samples carry
// the id. The series and sample encodings are version 2's (block2.go),
// except that a sample's number is a session id, not an index into the
// block:
//
//	block3  := u8 version(=3) | uvarint first_id | uvarint ndefs | series*ndefs |
//	           uvarint nsamples | sample*nsamples
//
// Def i of the block has id first_id+i. A sample's id must name a series
// defined by this block or an earlier block of the same session; its datum
// type is the definition's. A page holding every series once (a producer
// drained every interval) thus shrinks from ~110 bytes a sample to ~20 once
// the session holds the fleet's series.
const Block3Version = 3

// AppendBlock3Head appends the head of a version 3 block: ndefs series
// entries (defs, as encoded, e.g. BlockScanner.SeriesTable) with ids from
// firstID, and the count of the nsamples sample entries the caller appends
// (AppendSample3, or SampleView.Raw of samples scanned from a block of the
// same session).
func AppendBlock3Head(dst []byte, firstID uint64, ndefs int, defs []byte, nsamples int) []byte {
	dst = append(dst, Block3Version)
	dst = binary.AppendUvarint(dst, firstID)
	dst = binary.AppendUvarint(dst, uint64(ndefs))
	dst = append(dst, defs...)
	return binary.AppendUvarint(dst, uint64(nsamples))
}

// AppendSample3 appends a version 3 sample entry naming session id id.
func AppendSample3(dst []byte, id uint64, s *Sample) []byte {
	dst = binary.AppendUvarint(dst, id)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(s.TimestampNs))
	var flags byte
	if s.Datum.Missing {
		flags |= 1
	}
	dst = append(dst, flags)
	return appendDatumTail(dst, &s.Datum)
}

// Reset3 starts scanning a version 3 block: it checks the head and every
// def's structure as Reset checks a series table (bounded by the bytes left
// and by lim), after which NumSeries, Series and SeriesTable are the
// block's defs (def i has id FirstID()+i). Before Next, the caller gives
// the session's datum types with SetSessionTypes.
func (s *BlockScanner) Reset3(block []byte, lim *PageLimits) error {
	s.begin(block, lim)
	s.v3 = true
	d := &s.d
	if v := d.u8(); d.err == nil && v != Block3Version {
		d.fail("unsupported block version %d (this reads version %d)", v, Block3Version)
	}
	s.firstID = d.uvarint()
	if d.err == nil && s.firstID > maxSessionID {
		d.fail("first series id %d is over %d", s.firstID, uint64(maxSessionID))
	}
	if d.err != nil {
		s.err = d.err
		return s.err
	}
	return s.readTable(block)
}

// maxSessionID bounds a block's first id, so that a reader's per-id table
// (a byte or a few per id) stays small whatever a block says; a producer
// starts a new session long before (ServerOptions.MaxSessionSeries).
const maxSessionID = 1<<24 - 1

// FirstID is the id of a version 3 block's first def.
func (s *BlockScanner) FirstID() uint64 { return s.firstID }

// SetSessionTypes gives the datum type of every id of the session, this
// block's defs included (types[FirstID()+i] = Series(i).DatumType): the
// caller keeps them across blocks. A sample naming an id whose type is not
// valid (0: not defined) stops the scan with a *DecodeError wrapping
// ErrMalformed. types is read, not kept past the next Reset.
func (s *BlockScanner) SetSessionTypes(types []DatumType) { s.types = types }

// AppendSessionTypes appends the datum types of the block's defs to types
// at their ids (growing it with zeros over a gap) and returns it: what a
// reader passes to SetSessionTypes. Ids the block redefines keep the type
// of their new definition.
func (s *BlockScanner) AppendSessionTypes(types []DatumType) []DatumType {
	end := s.firstID + uint64(len(s.series))
	for uint64(len(types)) < end {
		types = append(types, 0)
	}
	for i, e := range s.series {
		types[s.firstID+uint64(i)] = e.typ
	}
	return types
}

// A page record of version 3 carries a version 3 block of one session:
//
//	record3 := u8 version(=3) | u8 flags (bit 0: verified) | str producer |
//	           str incarnation | u64 session | uvarint nrefused |
//	           uvarint refused_id*nrefused | block3
//
// refused lists ids among the block's defs that the writing collector
// refused (Validate or the schema check): no sample of this or a later
// record of the session names them, and a reader neither resolves them nor
// writes rows for them.
const pageRecordVersion3 = 3

// Record3Head is a version 3 page record's head. The byte slices alias the
// record.
type Record3Head struct {
	Producer, Incarnation []byte
	Verified              bool
	Session               uint64
	Refused               []uint64 // reused by ParsePageRecord3
	Block                 []byte   // the version 3 block
}

// AppendPageRecord3Head appends a version 3 page record's head; the caller
// appends the version 3 block.
func AppendPageRecord3Head(dst []byte, producer, incarnation string, verified bool, session uint64, refused []uint64) []byte {
	var flags byte
	if verified {
		flags |= 1
	}
	dst = append(dst, pageRecordVersion3, flags)
	dst = appendStr(dst, producer)
	dst = appendStr(dst, incarnation)
	dst = binary.LittleEndian.AppendUint64(dst, session)
	dst = binary.AppendUvarint(dst, uint64(len(refused)))
	for _, id := range refused {
		dst = binary.AppendUvarint(dst, id)
	}
	return dst
}

// ParsePageRecord3 reads a version 3 page record's head into h without
// allocating (h.Refused reuses its array).
func ParsePageRecord3(b []byte, h *Record3Head) error {
	off, version, verified, err := scanRecordHead(b)
	if err != nil {
		return err
	}
	if version != pageRecordVersion3 {
		return fmt.Errorf("%w: page record version %d, not 3", ErrMalformed, version)
	}
	d := decoder{b: b, off: off, sample: -1}
	h.Producer = d.bytes()
	h.Incarnation = d.bytes()
	h.Verified = verified
	h.Session = d.u64()
	n := d.length("refused id", 1)
	h.Refused = h.Refused[:0]
	for i := 0; i < n && d.err == nil; i++ {
		h.Refused = append(h.Refused, d.uvarint())
	}
	if d.err != nil {
		return d.err
	}
	h.Block = b[d.off:]
	return nil
}

// SeriesLookup returns the series entry (as a block carries it) of a
// session id defined before the block being decoded.
type SeriesLookup func(id uint64) (raw []byte, ok bool)

// DecodeBlock3 decodes a version 3 block, appending to dst. Ids the block
// defines are decoded from its defs, others through lookup (nil: none; a
// sample naming another id is an error). It checks the structure only;
// call Validate for limits and semantics.
func DecodeBlock3(b []byte, dst []Sample, lookup SeriesLookup) ([]Sample, error) {
	return decodeBlock3(b, dst, nil, nil, lookup)
}

func decodeBlock3(b []byte, dst []Sample, lim *PageLimits, in *interner, lookup SeriesLookup) ([]Sample, error) {
	sd := decoder{in: in, exact: in == nil}
	var sc BlockScanner
	if err := sc.Reset3(b, lim); err != nil {
		return dst, err
	}
	// The types of the ids samples name: this block's defs, then lookup's,
	// in a sparse table (ids are not trusted to be small here).
	first, ndefs := sc.FirstID(), uint64(sc.NumSeries())
	ids := map[uint64]SeriesIdentity{}
	types := map[uint64]DatumType{}
	for i := uint64(0); i < ndefs; i++ {
		id, err := decodeSeries(&sd, sc.Series(int(i)).Raw)
		if err != nil { // not reached: Reset3 checked the entry
			return dst, err
		}
		ids[first+i], types[first+i] = id, id.DatumType
	}
	if lookup != nil {
		// A sample's length depends on its type, so the ids are read ahead
		// one sample at a time, resolving each new one through lookup.
		var pre BlockScanner
		pre.begin(b, lim)
		pre.v3, pre.typeMap = true, types
		if err := pre.readIDs(sc.Offset(), sc.NumSamples(), func(id uint64) error {
			if _, ok := ids[id]; ok {
				return nil
			}
			raw, ok := lookup(id)
			if !ok {
				return fmt.Errorf("%w: series id %d is not defined by the block nor known to the session", ErrMalformed, id)
			}
			dec, err := decodeSeries(&sd, raw)
			if err != nil {
				return fmt.Errorf("series id %d: %w", id, err)
			}
			ids[id], types[id] = dec, dec.DatumType
			return nil
		}); err != nil {
			return dst, err
		}
	}
	sc.typeMap = types
	dst = growSamples(dst, sc.NumSamples())
	var v SampleView
	for sc.Next(&v) {
		id := ids[uint64(v.Series)]
		dst = append(dst, Sample{Target: id.Target, Metric: id.Metric, TimestampNs: v.TimestampNs, Datum: v.Datum()})
	}
	return dst, sc.Err()
}

// readIDs calls fn with the id of each of the n samples from off, reading
// each sample's length through the scanner with a type table that fn
// extends. The samples' values are skipped, not checked (Next checks them).
func (s *BlockScanner) readIDs(off, n int, fn func(id uint64) error) error {
	// A sample's length depends on its type, which depends on its id:
	// scan with a growing type table, one sample at a time.
	s.d.off = off
	s.n, s.left = n, n
	var v SampleView
	for i := 0; i < n; i++ {
		save := s.d.off
		id := s.d.uvarint()
		if s.d.err != nil {
			return s.d.err
		}
		if err := fn(id); err != nil {
			return err
		}
		s.d.off = save
		if !s.Next(&v) {
			if s.err != nil {
				return s.err
			}
			return fmt.Errorf("%w: block ends before sample %d", ErrMalformed, i)
		}
	}
	return nil
}

// DecodePageRecord3 decodes a version 3 page record; samples are appended
// to rec.Samples[:0]. Ids defined by earlier records of the session come
// from lookup (see DecodeBlock3).
func DecodePageRecord3(b []byte, rec *PageRecord, lookup SeriesLookup) error {
	var h Record3Head
	if err := ParsePageRecord3(b, &h); err != nil {
		return err
	}
	rec.Producer, rec.Incarnation = string(h.Producer), string(h.Incarnation)
	rec.Version, rec.Verified = pageRecordVersion3, h.Verified
	samples, err := DecodeBlock3(h.Block, rec.Samples[:0], lookup)
	rec.Samples = samples
	return err
}
