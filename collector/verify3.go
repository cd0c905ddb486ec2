package collector

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	pa "github.com/holdfast/holdfast/producerapi"
	"github.com/holdfast/holdfast/quarantine"
)

// The verify-in-place path of a binary page of version 3 (a session
// dictionary page): as version 2's, except that series are checked once
// per session, when defined, and samples name them by session id.
//
//  1. Session: the page must continue the producer's session state (same
//     session, first id == the ids committed) or start a new one (another
//     session, first id 0); else the state is dropped and the page asked
//     again without a session (session.go).
//  2. Scan: Reset3 checks the head and the page's definitions within the
//     page limits; SetSessionTypes gives the scanner every id's type (the
//     committed ones and this page's, tentatively); Next reads each
//     sample, whose value is checked in place, and a sample of a refused
//     id is refused: per sample a slice index and a bit, no map, no hash.
//  3. Definitions: each of the page's definitions is checked once
//     (SeriesKnownValid, else Validate and the schema registry), first
//     those a sample with a valid value refers to, in id order (the order
//     version 2 checks its series in, so a series whose every sample is
//     refused for its value never registers a schema ahead of a good one),
//     then the others, so that every definition written is either good or
//     listed as refused in the record's head.
//  4. Write: all samples kept, the record is the record head (with the
//     refused ids) plus the received block; else the same definitions and
//     the kept samples' byte ranges (their ids need no rewriting). A
//     record over the WAL's limit is split in id and page order: each
//     part defines what its samples need that earlier parts did not.
//  5. The definitions are committed to the session state once the page is
//     taken (drain), never before: a page not taken is served again with
//     the same definitions.

// verifyPage3 scans a version 3 block and sorts its samples into those
// taken (w.kept) and those refused (returned as quarantine entries), and
// prepares the session change in w.pend. An error is the page's
// (malformed, over the limits asked for) or a *sessionError; then nothing
// was taken.
func (c *Collector) verifyPage3(w *pageWork, s *session, pageSession uint64, incarnation string, block []byte, lim *pa.PageLimits) ([]quarantine.Entry, error) {
	sc := &w.sc
	if err := sc.Reset3(block, lim); err != nil {
		return nil, err
	}
	if pageSession == 0 {
		return nil, fmt.Errorf("%w: page of version 3 with session 0", pa.ErrMalformed)
	}
	first, nd := sc.FirstID(), sc.NumSeries()
	p := &w.pend
	*p = pending{id: pageSession, incarnation: incarnation, first: first,
		refused: p.refused[:0], refusedRaw: p.refusedRaw[:0], refusedErr: p.refusedErr[:0]}
	var types []pa.DatumType
	switch same := s.id == pageSession && s.incarnation == incarnation; {
	case same && first == uint64(len(s.types)):
		types = s.types // appended to beyond the committed length: tentative
	case !same && first == 0:
		p.fresh = true
		types = w.types[:0]
	case same:
		return nil, &sessionError{reason: sessionMismatch, err: fmt.Errorf("%w: page of session %016x defines ids from %d, the collector holds %d",
			pa.ErrMalformed, pageSession, first, len(s.types))}
	default:
		return nil, &sessionError{reason: sessionMismatch, err: fmt.Errorf("%w: page of a new session %016x defines ids from %d, not 0",
			pa.ErrMalformed, pageSession, first)}
	}
	L := len(types)
	if L+nd > maxSessionSeries {
		return nil, &sessionError{reason: sessionLimit, err: fmt.Errorf("session %016x would hold %d series, over the collector's %d", pageSession, L+nd, maxSessionSeries)}
	}
	for i := 0; i < nd; i++ {
		types = append(types, sc.Series(i).DatumType)
	}
	if p.fresh {
		w.types = types
	}
	p.types = types
	sc.SetSessionTypes(types)

	base := uint64(L)
	w.ref = resetBools(w.ref, nd)   // per def: a sample with a valid value refers to it
	w.good = resetBools(w.good, nd) // per def: passed Validate and the schema check
	w.spans, w.refused = w.spans[:0], w.refused[:0]
	start := sc.Offset()
	for sc.Next(&w.v) {
		end := sc.Offset()
		id := uint64(w.v.Series)
		sp := span{start: uint32(start), end: uint32(end), series: uint32(id)}
		switch {
		case id < base && s.isRefused(id):
			sp.badSeries = true
		case pa.ValidateSampleView("", &w.v, c.opts.Limits) != nil:
			sp.badValue = true
		case id >= base:
			w.ref[id-base] = true
		}
		if sp.badSeries || sp.badValue {
			w.refused = append(w.refused, refusal{sample: len(w.spans)})
		}
		w.spans = append(w.spans, sp)
		start = end
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if nd > 0 && c.checkDefs(w, base) {
		w.refused = w.refused[:0]
		for i := range w.spans {
			sp := &w.spans[i]
			if uint64(sp.series) >= base && !w.good[uint64(sp.series)-base] {
				sp.badSeries = true
			}
			if sp.badValue || sp.badSeries {
				w.refused = append(w.refused, refusal{sample: i})
			}
		}
	}
	if len(w.refused) == 0 {
		w.kept = append(w.kept[:0], w.spans...)
		return nil, nil
	}
	return c.sortRefused3(w, s, block, base)
}

// checkDefs checks the page's definitions (w.good) and lists the refused
// ones in w.pend; it reports whether any was refused.
func (c *Collector) checkDefs(w *pageWork, base uint64) (bad bool) {
	sc := &w.sc
	nd := sc.NumSeries()
	if cap(w.defErr) < nd {
		w.defErr = make([]error, nd)
	}
	w.defErr = w.defErr[:nd]
	clear(w.defErr)
	for pass := 0; pass < 2; pass++ {
		for i := 0; i < nd; i++ {
			if w.ref[i] != (pass == 0) {
				continue
			}
			if w.dec == nil {
				w.dec = pa.NewSampleDecoder()
			}
			if err := c.checkSeries(w.dec, sc.Series(i).Raw); err != nil {
				w.defErr[i] = err
				bad = true
				continue
			}
			w.good[i] = true
		}
	}
	if bad {
		p := &w.pend
		for i := 0; i < nd; i++ {
			if !w.good[i] {
				raw := sc.Series(i).Raw
				p.refused = append(p.refused, base+uint64(i))
				p.refusedRaw = append(p.refusedRaw, raw)
				p.refusedErr = append(p.refusedErr, w.defErr[i])
			}
		}
	}
	return bad
}

// defOf returns the definition of session id: this page's, a refused one
// the state kept, or one read back from the forwarder's store
// (w.stored). ok=false: none of them holds it.
func defOf(w *pageWork, s *session, base, id uint64) (raw []byte, why error, ok bool) {
	if id >= base {
		return w.sc.Series(int(id - base)).Raw, nil, true
	}
	if w.pend.fresh {
		return nil, nil, false
	}
	if d, ok := s.refusedDefs[id]; ok {
		return d.raw, d.err, true
	}
	raw, ok = w.stored[id]
	return raw, nil, ok
}

// sortRefused3 is sortRefused for a version 3 page: each refused sample is
// decoded with its definition. A bad value of a series defined on an
// earlier page (the state keeps only its type) takes the definition the
// forwarder stored when it read that page's record
// (forwarder.StoredDefinition). One that is nowhere (the forwarder has not
// read that record yet) makes the session start over (sessionDefsNeeded):
// the producer then serves the page again, self-contained.
func (c *Collector) sortRefused3(w *pageWork, s *session, block []byte, base uint64) ([]quarantine.Entry, error) {
	clear(w.stored)
	for _, r := range w.refused {
		id := uint64(w.spans[r.sample].series)
		if _, _, ok := defOf(w, s, base, id); ok {
			continue
		}
		raw, err := c.storedDefinition(w.producer, s, id)
		if err != nil {
			return nil, err
		}
		if raw == nil {
			return nil, &sessionError{reason: sessionDefsNeeded, err: fmt.Errorf("sample %d of the page is refused and its series (id %d) was defined on an earlier page not yet forwarded: asking for the page again, self-contained, to quarantine it with its identity",
				r.sample, id)}
		}
		if w.stored == nil {
			w.stored = make(map[uint64][]byte)
		}
		w.stored[id] = raw
	}
	out := make([]quarantine.Entry, 0, len(w.refused))
	w.kept = w.kept[:0]
	next := 0
	for i, sp := range w.spans {
		if next >= len(w.refused) || w.refused[next].sample != i {
			w.kept = append(w.kept, sp)
			continue
		}
		next++
		raw, why, _ := defOf(w, s, base, uint64(sp.series))
		smp, err := sampleOf(raw, block[sp.start:sp.end])
		if err != nil {
			return nil, err
		}
		code := quarantine.CodeInvalid
		err = pa.Validate(&smp, c.opts.Limits)
		if err == nil {
			code = quarantine.CodeSchema
			if _, err = c.schemas.Check(&smp); err == nil {
				err = why // refused with its series on an earlier page
				if err == nil {
					err = errors.New("refused by its series check")
				}
			}
		}
		out = append(out, quarantine.Entry{Kind: quarantine.KindSample, Code: code,
			Reason: fmt.Sprintf("sample %d of its page: %v", i, err), Payload: pa.AppendSamples(nil, []pa.Sample{smp})})
	}
	return out, nil
}

// sampleOf decodes a sample entry (a version 2 or 3 block's) with its
// series entry.
func sampleOf(def, entry []byte) (pa.Sample, error) {
	id, err := pa.DecodeSeries(def)
	if err != nil {
		return pa.Sample{}, err
	}
	// A block of this sample alone, with its series, scanned to a view.
	one := pa.AppendBlock2Head(nil, 1, def, 1)
	one = appendReindexed(one, entry, 0)
	var sc pa.BlockScanner
	var v pa.SampleView
	if err := sc.Reset(one, nil); err != nil {
		return pa.Sample{}, err
	}
	if !sc.Next(&v) {
		return pa.Sample{}, sc.Err()
	}
	return pa.Sample{Target: id.Target, Metric: id.Metric, TimestampNs: v.TimestampNs, Datum: v.Datum()}, nil
}

// appendPage3 writes the kept samples and the definitions of a verified
// version 3 page to the WAL: one record when it fits, else several (split
// in order). A page of definitions only (every sample refused) is still
// written: later pages name its ids. It returns the last index written (0:
// none) and the samples written; a single sample too large for any record
// joins rejected.
func (c *Collector) appendPage3(ctx context.Context, p *producer, incarnation string, w *pageWork, block []byte, buf *[]byte, rejected *[]quarantine.Entry) (uint64, int, error) {
	if len(w.kept) == 0 && w.sc.NumSeries() == 0 {
		return 0, 0, nil
	}
	if rec, ok := c.record3(p.cfg.ID, incarnation, w, block, (*buf)[:0]); ok {
		*buf = rec
		return c.appendRecord(ctx, rec, len(w.kept))
	}
	return c.appendSplit3(ctx, p, incarnation, w, block, buf, rejected)
}

// record3 appends to dst the one page record of the page, if it fits in a
// WAL record: the head and the received block when all samples were kept,
// else the head, the page's definitions and the kept samples' bytes.
func (c *Collector) record3(producer, incarnation string, w *pageWork, block, dst []byte) ([]byte, bool) {
	head := pa.AppendPageRecord3Head(dst, producer, incarnation, true, w.pend.id, w.pend.refused)
	if len(w.kept) == len(w.spans) {
		if len(head)+len(block) > c.maxRec {
			return dst, false
		}
		return append(head, block...), true
	}
	table := w.sc.SeriesTable()
	size := len(head) + 1 + binary.MaxVarintLen64*3 + len(table)
	for _, sp := range w.kept {
		size += int(sp.end - sp.start)
	}
	if size > c.maxRec {
		return dst, false
	}
	b := pa.AppendBlock3Head(head, w.pend.first, w.sc.NumSeries(), table, len(w.kept))
	return appendRuns(b, block, w.kept), true
}

// appendRuns appends the bytes of the samples in kept, copying runs of
// adjacent ones at once.
func appendRuns(b, block []byte, kept []span) []byte {
	for i := 0; i < len(kept); {
		j := i + 1
		for j < len(kept) && kept[j].start == kept[j-1].end {
			j++
		}
		b = append(b, block[kept[i].start:kept[j-1].end]...)
		i = j
	}
	return b
}

// appendSplit3 writes a page too large for one record as several, in
// order: each part holds the next definitions (as many as its samples need
// that earlier parts did not define; the last ones also the unused rest)
// and the next kept samples, with first_id the id of its first
// definition (after the last part's definitions when it holds none) and
// the refused ids among its definitions. A sample too large for a record
// of its own is quarantined as too_large.
func (c *Collector) appendSplit3(ctx context.Context, p *producer, incarnation string, w *pageWork, block []byte, buf *[]byte, rejected *[]quarantine.Entry) (uint64, int, error) {
	sc, pend := &w.sc, &w.pend
	nd, base := sc.NumSeries(), pend.first
	table := sc.SeriesTable()
	// Offsets of each definition in the table: the entries lie one after
	// another.
	w.defOff = append(w.defOff[:0], 0)
	for i := 0; i < nd; i++ {
		w.defOff = append(w.defOff, w.defOff[i]+len(sc.Series(i).Raw))
	}
	defBytes := func(a, b int) int { return w.defOff[b] - w.defOff[a] }
	need := func(sp span) int { // the definitions [0, need) a sample needs
		if id := uint64(sp.series); id >= base {
			return int(id-base) + 1
		}
		return 0
	}
	overhead := len(pa.AppendPageRecord3Head(nil, p.cfg.ID, incarnation, true, pend.id, pend.refused)) + 1 + binary.MaxVarintLen64*3
	var last uint64
	written := 0
	kept := w.kept
	defEnd, i := 0, 0
	for i < len(kept) || defEnd < nd {
		d, j, size := defEnd, i, overhead
		for j < len(kept) {
			n := max(d, need(kept[j]))
			add := defBytes(d, n) + int(kept[j].end-kept[j].start)
			if size+add > c.maxRec {
				break
			}
			size, d, j = size+add, n, j+1
		}
		if j == len(kept) || j == i {
			// After the last sample the unused rest of the definitions;
			// before a sample that does not fit with what it needs, as
			// many of those as fit.
			limit := nd
			if j < len(kept) {
				limit = need(kept[j])
			}
			for d < limit && size+defBytes(d, d+1) <= c.maxRec {
				size, d = size+defBytes(d, d+1), d+1
			}
		}
		if j == i && d == defEnd {
			if i < len(kept) && need(kept[i]) <= defEnd {
				// The sample alone is too large for any record.
				if uint64(kept[i].series) < base {
					return 0, 0, &sessionError{reason: sessionDefsNeeded, err: errors.New("a sample too large for any WAL record, of a series defined on an earlier page: asking for the page again, self-contained, to quarantine it with its identity")}
				}
				s, err := sampleOf(sc.Series(int(uint64(kept[i].series)-base)).Raw, block[kept[i].start:kept[i].end])
				if err != nil {
					return 0, 0, err
				}
				*rejected = append(*rejected, c.tooLargeEntry(&s, overhead+int(kept[i].end-kept[i].start)))
				i++
				continue
			}
			return 0, 0, fmt.Errorf("a series definition of %d bytes does not fit in a WAL record of %d bytes", defBytes(d, d+1), c.maxRec)
		}
		rec := pa.AppendPageRecord3Head((*buf)[:0], p.cfg.ID, incarnation, true, pend.id, refusedIn(pend.refused, base+uint64(defEnd), base+uint64(d), &w.partRefused))
		rec = pa.AppendBlock3Head(rec, base+uint64(defEnd), d-defEnd, table[w.defOff[defEnd]:w.defOff[d]], j-i)
		rec = appendRuns(rec, block, kept[i:j])
		*buf = rec
		idx, n, err := c.appendRecord(ctx, rec, j-i)
		if err != nil {
			return 0, 0, err
		}
		last, written = idx, written+n
		defEnd, i = d, j
	}
	return last, written, nil
}

// refusedIn returns the ids of refused in [a, b) (refused is ascending).
func refusedIn(refused []uint64, a, b uint64, scratch *[]uint64) []uint64 {
	out := (*scratch)[:0]
	for _, id := range refused {
		if id >= a && id < b {
			out = append(out, id)
		}
	}
	*scratch = out
	return out
}
