package forwarder

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/holdfast/holdfast/internal/sessdefs"
	pa "github.com/holdfast/holdfast/producerapi"
	"github.com/holdfast/holdfast/quarantine"
	"github.com/holdfast/holdfast/wal"
)

// reasonUndefined is the quarantine code of a version 3 record whose
// samples name a session id no definition was read for: the record that
// defined it is gone (damaged and skipped by a WAL repair, or quarantined
// as malformed), so the sample's datum type, hence its length and the rest
// of the record, cannot be known.
const reasonUndefined = quarantine.CodeUndefinedSeries

// isRecord3 reports whether rec is a version 3 page record.
func isRecord3(rec wal.Record) bool {
	return rec.Type == wal.TypePage && len(rec.Payload) > 0 && rec.Payload[0] == 3
}

// addRecord3 adds a version 3 page record (a session's new definitions,
// then samples naming session ids) to the batch: definitions are stored
// and resolved once (decoded, validated, keyed; refused ones marked), and
// each sample costs an index into its session's entries and appends to the
// columns. done reports the record was dealt with here (its rows added to
// the batch's bookkeeping by the caller when handled, or quarantined, or
// err is fatal); handled=false with done=false sends it to the decoding
// path (a definition or an unverified sample that does not validate: that
// path reports Validate's reason and quarantines the record whole, as for
// version 2).
func (f *Forwarder) addRecord3(ctx context.Context, b *batch, idx uint64, rec wal.Record) (handled, done bool, err error) {
	s := f.scan
	h := &s.head
	malformed := func(reason string, code string) (bool, bool, error) {
		return false, true, f.quarantineOrHold(ctx, QuarantinedRecord{Index: idx, Type: uint8(rec.Type), Payload: rec.Payload, Reason: reason}, code)
	}
	if err := pa.ParsePageRecord3(rec.Payload, h); err != nil {
		return malformed(err.Error(), "malformed")
	}
	if bytes.IndexByte(h.Producer, 0) >= 0 || bytes.IndexByte(h.Incarnation, 0) >= 0 {
		return malformed("malformed: producer or incarnation holds a NUL byte", "malformed")
	}
	if err := s.sc.Reset3(h.Block, nil); err != nil {
		return malformed(err.Error(), "malformed")
	}
	first, ndefs := s.sc.FirstID(), s.sc.NumSeries()
	if first > maxSessionIDs || uint64(ndefs) > maxSessionIDs-first {
		return malformed(fmt.Sprintf("malformed: session ids %d..%d, beyond this forwarder's bound of %d a session", first, first+uint64(ndefs), maxSessionIDs), "malformed")
	}
	sess, err := f.sess.get(h.Producer, h.Incarnation, h.Session, idx)
	if err != nil {
		return false, true, err
	}
	s = f.beginRecord(0)
	f.sess.noteRowSet(b.rows.gen)
	redefined, err := f.define3(sess, first, ndefs, h.Refused)
	if err != nil {
		return false, true, err
	}
	if redefined >= 0 {
		// Readers of this record (bisection, quarantine) take a block's
		// own definitions first: its samples would read differently.
		return malformed(fmt.Sprintf("malformed: redefines series id %d of session %016x with another series", first+uint64(redefined), h.Session), "malformed")
	}
	f.m.sessionsLoaded.Set(float64(f.sess.loaded))
	f.m.sessionIDs.Set(float64(f.sess.ids))
	s.sc.SetSessionTypes(sess.types)
	v := &s.view
	for {
		off := s.sc.Offset()
		if !s.sc.Next(v) {
			if s.sc.Err() == nil {
				break
			}
			if id, n := binary.Uvarint(h.Block[min(off, len(h.Block)):]); n > 0 && (id >= uint64(len(sess.types)) || sess.types[id] == 0) {
				f.m.undefinedSeries.Inc()
				return malformed(fmt.Sprintf("sample %d names series id %d of session %016x, never defined: the record that defined it is not in the WAL (damaged, repaired or quarantined); its datum type and the rest of the record cannot be read",
					len(s.samples), id, h.Session), reasonUndefined)
			}
			return malformed(s.sc.Err().Error(), "malformed")
		}
		id := uint64(v.Series)
		e := sess.entry(id)
		if e.state != stOK {
			if e.state == stUnresolved {
				if err := f.resolveStored3(sess, e, id); err != nil {
					return false, true, err
				}
			}
			switch e.state {
			case stOK, stCollision:
			case stRefused:
				return malformed(fmt.Sprintf("malformed: sample %d names series id %d of session %016x, which the writing collector refused", len(s.samples), id, h.Session), "malformed")
			default: // stInvalid: the decoding path says why
				return false, false, nil
			}
		}
		if !h.Verified && !v.Missing && pa.ValidateSampleView(sess.names[e.name], v, f.opts.Limits) != nil {
			return false, false, nil
		}
		s.samples = append(s.samples, scanned{series: int32(id), entry: int32(len(s.samples)), missing: v.Missing, ts: v.TimestampNs, start: v.StartTimeNs,
			bits: viewBits(v), bytes: v.Bytes, hist: v.Hist})
	}
	// Every sample checked: add the rows.
	s.refused = s.refused[:0]
	for i := range s.samples {
		sm := &s.samples[i]
		e := sess.entry(uint64(sm.series))
		ok, err := f.addScanned3(b.rows, sess, e, sm)
		if err != nil {
			return false, true, err
		}
		if !ok {
			// Sticky: the rest of the session's samples of this series
			// are refused too, whatever the key caches forget.
			e.state = stCollision
			s.refused = append(s.refused, collision{index: i, key: e.key(), name: sess.names[e.name]})
		}
	}
	if len(s.refused) > 0 {
		clear(s.page.Samples)
		if err := decodeRecord3(f.defs, rec.Payload, &s.page); err != nil {
			return false, true, fmt.Errorf("forwarder: record %d scanned but does not decode: %w", idx, err)
		}
		if err := f.quarantineCollisions(ctx, idx, &s.page, s.refused); err != nil {
			return false, true, err
		}
		b.noteRefused(idx, s.refused)
	}
	return true, false, nil
}

// define3 takes a block's definitions into the session: ids first.. in
// order, appended to the session's file (written to the OS per record) and resolved. An id
// defined before must be defined again with the same bytes (a record
// replayed after a restart): redefined is the index of the first def that
// is not (-1: none), which makes the record malformed.
func (f *Forwarder) define3(sess *session, first uint64, ndefs int, refused []uint64) (redefined int, err error) {
	s := f.scan
	if ndefs == 0 {
		return -1, f.sess.commit() // a new session's metadata, if any
	}
	if cap(s.defIDs) < ndefs {
		s.defIDs = make([]pa.SeriesIdentity, ndefs)
	}
	s.defIDs = s.defIDs[:ndefs] // zero: beginRecord cleared what the last record used
	s.defFirst = first
	before := len(sess.types)
	defer func() { f.sess.ids += len(sess.types) - before }()
	for i := 0; i < ndefs; i++ {
		id := first + uint64(i)
		e := sess.slot(id)
		sv := s.sc.Series(i)
		if e.state != stUndefined {
			same, err := f.sameDef(sess, e, id, sv.Raw, refused)
			if err != nil {
				return -1, err
			}
			if !same {
				return i, f.sess.commit()
			}
			continue
		}
		sess.types[id] = sv.DatumType
		if isRefused(refused, id) {
			*e = sessEntry{typ: sv.DatumType, state: stRefused}
			continue
		}
		if err := f.sess.putDef(sess, id, sv.Raw); err != nil {
			return -1, err
		}
		f.resolve3(sess, e, sv.Raw, &s.defIDs[i])
	}
	return -1, f.sess.commit()
}

// sameDef reports whether raw is the definition id already has.
func (f *Forwarder) sameDef(sess *session, e *sessEntry, id uint64, raw []byte, refused []uint64) (bool, error) {
	if e.state == stRefused {
		return isRefused(refused, id), nil // refused ones are not stored
	}
	if len(raw) == 0 || pa.DatumType(raw[len(raw)-1]) != e.typ && e.state != stInvalid {
		return false, nil
	}
	stored, err := f.sess.getDef(sess, id)
	if errors.Is(err, sessdefs.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("forwarder: reading a session definition: %w", err)
	}
	return bytes.Equal(stored, raw), nil
}

// isRefused reports whether id is among refused (a record's few refused
// ids).
func isRefused(refused []uint64, id uint64) bool {
	for _, r := range refused {
		if r == id {
			return true
		}
	}
	return false
}

// resolve3 decodes, validates and keys a definition into e (stOK), or
// marks it stInvalid. The decoded identity goes to *into for a new
// timeseries' fields rows.
func (f *Forwarder) resolve3(sess *session, e *sessEntry, raw []byte, into *pa.SeriesIdentity) {
	f.m.seriesMisses.Inc()
	t := e.typ
	if len(raw) > 0 {
		t = pa.DatumType(raw[len(raw)-1])
	}
	id, err := f.scan.defDec.Decode(raw) // valid until the next record's beginRecord
	if err != nil {
		*e = sessEntry{typ: t, state: stInvalid}
		return
	}
	c, err := f.w.resolveSeries(&id, f.opts.Limits)
	if err != nil {
		*e = sessEntry{typ: t, state: stInvalid}
		return
	}
	*e = resolvedEntry(c.key, c.fp, sess.nameIndex(c.name), id.DatumType)
	*into = id
}

// resolveStored3 resolves a definition read from its session file (a session loaded
// after a restart) when a sample first names it.
func (f *Forwarder) resolveStored3(sess *session, e *sessEntry, id uint64) error {
	raw, err := f.sess.getDef(sess, id)
	if errors.Is(err, sessdefs.ErrNotFound) {
		*e = sessEntry{typ: e.typ, state: stInvalid}
		return nil
	}
	if err != nil {
		return fmt.Errorf("forwarder: reading a session definition: %w", err)
	}
	s := f.scan
	if s.idents == nil {
		s.idents = make(map[uint64]pa.SeriesIdentity)
	}
	var ident pa.SeriesIdentity
	f.resolve3(sess, e, raw, &ident)
	if e.state == stOK {
		s.idents[id] = ident
	}
	return nil
}

// identity3 returns the decoded identity of session id id for a new
// timeseries' fields and schema rows: decoded by this record already, or
// read again from the session file (a series whose fields rows this batch must write
// again: the writer forgot its key, or a delivery bisected).
func (f *Forwarder) identity3(sess *session, id uint64) (pa.SeriesIdentity, error) {
	s := f.scan
	if id >= s.defFirst && id-s.defFirst < uint64(len(s.defIDs)) && s.defIDs[id-s.defFirst].DatumType != 0 {
		return s.defIDs[id-s.defFirst], nil
	}
	if ident, ok := s.idents[id]; ok {
		return ident, nil
	}
	raw, err := f.sess.getDef(sess, id)
	if err != nil {
		return pa.SeriesIdentity{}, fmt.Errorf("forwarder: reading the definition of series %d of a session: %w", id, err)
	}
	return pa.DecodeSeries(raw)
}

// addScanned3 is addScanned for a version 3 sample: the series is the
// session entry e. false: its key belongs to another timeseries.
func (f *Forwarder) addScanned3(rs *rowSet, sess *session, e *sessEntry, sm *scanned) (bool, error) {
	if e.gen != uint8(rs.gen) {
		if e.seen != 0 && e.seen == f.w.seenEpoch && e.seen != math.MaxUint8 {
			// Written, and the key is still this series' (sessEntry.seen).
			e.gen = uint8(rs.gen)
			return f.appendScanned3(rs, sess, e, sm), nil
		}
		if e.state == stCollision {
			return false, nil
		}
		key := e.key()
		ok, known := f.w.admit(rs, key, e.fp)
		if !ok {
			return false, nil
		}
		if known {
			if _, written := f.w.seenKeys.get(key); written {
				e.seen = f.w.seenEpoch
			}
		}
		if !known {
			id, err := f.identity3(sess, uint64(sm.series))
			if err != nil {
				return false, err
			}
			smp := id.Sample()
			smp.TimestampNs = sm.ts
			d := &smp.Datum
			d.Missing, d.StartTimeNs = sm.missing, sm.start
			if !sm.missing {
				setDatum(d, sm)
			}
			if !rs.add(sess.names[e.name], key, e.fp, &smp, f.w) {
				return false, nil
			}
			e.gen = uint8(rs.gen)
			return true, nil
		}
		e.gen = uint8(rs.gen)
	}
	return f.appendScanned3(rs, sess, e, sm), nil
}

// appendScanned3 appends an admitted sample's row.
func (f *Forwarder) appendScanned3(rs *rowSet, sess *session, e *sessEntry, sm *scanned) bool {
	if rs.meas[e.typ] == nil {
		rs.meas[e.typ] = &measurementRows{t: e.typ}
	}
	rs.meas[e.typ].addScanned(sess.names[e.name], e.key(), sm)
	rs.rows++
	return true
}

// decodeRecord3 decodes a version 3 record whole, definitions of earlier
// records of its session read from the session's file (safe from any
// goroutine: bisection's rebuild, quarantine). When a definition could not
// be read, the error wraps errDefinitionUnreadable and the read's error,
// not the decoder's: the record may be whole, so it must not be taken for
// malformed.
func decodeRecord3(defs *sessdefs.Store, payload []byte, rec *pa.PageRecord) error {
	var h pa.Record3Head
	if err := pa.ParsePageRecord3(payload, &h); err != nil {
		return err
	}
	skey := string(sessionKey(nil, h.Producer, h.Incarnation, h.Session))
	var unreadable error
	err := pa.DecodePageRecord3(payload, rec, defLookup(defs, skey, &unreadable))
	if unreadable != nil {
		return fmt.Errorf("%w: %w", errDefinitionUnreadable, unreadable)
	}
	return err
}

// errDefinitionUnreadable marks a record that could not be decoded because
// its session file could not be read: a failure of the disk, not of the
// record, so it is never quarantined for it.
var errDefinitionUnreadable = errors.New("forwarder: reading a session definition")

// selfContained3 returns a version 3 record as a version 2 record of the
// same samples, readable without its session (for the quarantine, whose
// tools read one entry at a time), or decodeRecord3's error.
func selfContained3(defs *sessdefs.Store, payload []byte) ([]byte, error) {
	var rec pa.PageRecord
	if err := decodeRecord3(defs, payload, &rec); err != nil {
		return nil, err
	}
	return pa.AppendPageRecord2(nil, rec.Producer, rec.Incarnation, false, pa.AppendBlock2(nil, rec.Samples)), nil
}
