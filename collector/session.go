package collector

import (
	"context"
	"errors"
	"fmt"

	pa "github.com/holdfast/holdfast/producerapi"
	"github.com/holdfast/holdfast/quarantine"
)

// The collector's side of a producer's session dictionary (page version 3).
// A producer numbers the series of a session 0, 1, 2, ... and a page
// defines only the series the collector does not have yet; its samples
// name series by id. The collector keeps, per producer, what it needs to
// scan and check the next pages of the session without the definitions:
// the datum type of every id (the scanner reads a value by its type), and
// which ids it refused (their samples are quarantined, never written).
//
// The state mirrors the producer's acknowledged prefix of the session: a
// page's definitions are committed only once the page is taken (its
// records in the WAL, its refused samples in the quarantine), which is
// when its token is acknowledged and the producer's acked count becomes
// the same number. A page that is not taken leaves the state as it was, and
// the producer re-serves it with the same definitions.
//
// A session starts over (state dropped, next request without a session, so
// the producer re-serves its page self-contained in a new one) when the
// page does not continue the state (sessionMismatch), when it would exceed
// maxSessionSeries (sessionLimit), and when a refused sample's quarantine
// entry needs the identity of a series the state does not hold
// (sessionDefsNeeded: a bad value of a series defined on an earlier page
// that the forwarder has not stored yet, or a refused series past the
// bounded map of refused definitions). A page
// of a new session (first id 0, another id) replaces the state
// (sessionNew).

// maxSessionSeries bounds a session's ids on the collector's side: 1 byte
// of type and 1 bit of refusal per id, ~1.1 MiB per producer at most. The
// library producer starts a new session at the same default
// (ServerOptions.MaxSessionSeries); a page that would go past it makes the
// collector start over.
const maxSessionSeries = 1 << 20

// maxRefusedDefBytes bounds the refused definitions a session keeps for
// the quarantine entries of their later samples (a refused series is rare:
// an invalid name or a schema conflict). Past it a sample of a forgotten
// refused series makes the session start over (its page then defines it
// again).
const maxRefusedDefBytes = 256 << 10

// Reasons of holdfast_collector_session_resets_total.
const (
	sessionNew        = "new_session"
	sessionMismatch   = "mismatch"
	sessionLimit      = "limit"
	sessionDefsNeeded = "defs_needed"
)

var sessionResetReasons = []string{sessionNew, sessionMismatch, sessionLimit, sessionDefsNeeded}

// session is a producer's session state. The producer's loop goroutine
// alone uses it.
type session struct {
	id          uint64 // 0: none (the next request asks for a new session)
	incarnation string
	types       []pa.DatumType // by id; len is the ids committed (the producer's acked count)
	refused     []uint64       // bitmap by id, of refused series
	nrefused    int
	refusedDefs map[uint64]refusedDef // a refused id's definition (bounded by maxRefusedDefBytes)
	defBytes    int

	staged    pending // a written page's change, committed once it is taken
	hasStaged bool
}

// refusedDef is a refused series' definition, kept for the quarantine
// entries of its samples in later pages.
type refusedDef struct {
	raw []byte
	err error
}

// request returns the session and known values of the next page request.
func (s *session) request() (id, known uint64) {
	if s.id == 0 {
		return 0, 0
	}
	return s.id, uint64(len(s.types))
}

// reset drops the state; the next request asks for a new session. The
// types' array is kept for the next session (it grows to the same size).
func (s *session) reset() {
	s.id, s.incarnation = 0, ""
	s.types = s.types[:0]
	clear(s.refused)
	s.refused = s.refused[:0]
	s.nrefused = 0
	s.refusedDefs, s.defBytes = nil, 0
	s.hasStaged = false
}

// isRefused reports whether committed id was refused.
func (s *session) isRefused(id uint64) bool {
	return s.nrefused > 0 && s.refused[id/64]&(1<<(id%64)) != 0
}

// sessionError is a v3 page that does not continue the collector's session
// state: the state is dropped and the page asked again without a session.
type sessionError struct {
	reason string
	err    error
}

func (e *sessionError) Error() string { return fmt.Sprintf("session %s: %v", e.reason, e.err) }
func (e *sessionError) Unwrap() error { return e.err }

// pending is a verified v3 page's change to the session state, applied by
// commit once the page is taken.
type pending struct {
	fresh       bool // a new session: the state is replaced
	id          uint64
	incarnation string
	types       []pa.DatumType // the session's types with this page's defs (tentative)
	first       uint64         // the page's first id
	refused     []uint64       // ids of this page's defs refused
	refusedRaw  [][]byte       // their entries (aliasing the page)
	refusedErr  []error
}

// stage keeps a verified and written page's change until the page is
// taken (commit) or not (the next stage replaces it), copying what aliases
// the page or the pooled scratch.
func (s *session) stage(p *pending) {
	st := &s.staged
	st.fresh, st.id, st.incarnation, st.first = p.fresh, p.id, p.incarnation, p.first
	if p.fresh {
		st.types = append([]pa.DatumType(nil), p.types...)
	} else {
		st.types = p.types // the state's own array, appended to
	}
	st.refused = append(st.refused[:0], p.refused...)
	st.refusedRaw = st.refusedRaw[:0]
	for _, raw := range p.refusedRaw {
		st.refusedRaw = append(st.refusedRaw, append([]byte(nil), raw...))
	}
	st.refusedErr = append(st.refusedErr[:0], p.refusedErr...)
	s.hasStaged = true
}

// unstage forgets a staged change (its page was not taken).
func (s *session) unstage() { s.hasStaged = false }

// commit applies the staged change of a page just taken, and reports
// whether it replaced a session the state held.
func (s *session) commit() (replaced bool) {
	if !s.hasStaged {
		return false
	}
	s.hasStaged = false
	p := &s.staged
	if p.fresh {
		replaced = s.id != 0
		s.reset()
		s.id, s.incarnation = p.id, p.incarnation
	}
	s.types = p.types
	p.types = nil
	if words := (len(s.types) + 63) / 64; len(s.refused) < words {
		s.refused = append(s.refused, make([]uint64, words-len(s.refused))...)
	}
	for i, id := range p.refused {
		s.refused[id/64] |= 1 << (id % 64)
		s.nrefused++
		if s.defBytes+len(p.refusedRaw[i]) > maxRefusedDefBytes {
			continue // forgotten: a later sample of it starts the session over
		}
		if s.refusedDefs == nil {
			s.refusedDefs = make(map[uint64]refusedDef)
		}
		s.refusedDefs[id] = refusedDef{raw: p.refusedRaw[i], err: p.refusedErr[i]}
		s.defBytes += len(p.refusedRaw[i])
	}
	clear(p.refusedRaw)
	return replaced
}

// takePage3 verifies a version 3 page in place and writes it to the WAL,
// staging its session change for commitSession.
func (c *Collector) takePage3(ctx context.Context, p *producer, page *pa.Page, w *pageWork, block []byte, lim *pa.PageLimits, buf *[]byte) (idx uint64, written int, rejected []quarantine.Entry, empty bool, err error) {
	w.producer = p.cfg.ID
	rejected, err = c.verifyPage3(w, &p.sess, page.Session, page.Incarnation, block, lim)
	var serr *sessionError
	if err != nil && !errors.As(err, &serr) {
		if p.sess.id == 0 {
			return 0, 0, nil, false, &pageError{err}
		}
		// A page that does not check in a session may be the session's
		// fault (a producer that lost track): try it once without.
		err = &sessionError{reason: sessionMismatch, err: err}
	}
	if err != nil {
		return 0, 0, nil, false, err
	}
	if len(w.spans) == 0 && (w.sc.NumSeries() == 0 || page.Token == "") {
		return 0, 0, nil, true, nil
	}
	if page.Token == "" {
		return 0, 0, nil, false, &pageError{fmt.Errorf("%w: page with %d samples has no token", pa.ErrMalformed, len(w.spans))}
	}
	idx, written, err = c.appendPage3(ctx, p, page.Incarnation, w, block, buf, &rejected)
	if err == nil {
		p.sess.stage(&w.pend)
	}
	return idx, written, rejected, false, err
}

// commitSession commits the session change of the page just taken.
func (c *Collector) commitSession(p *producer) {
	if !p.sess.hasStaged {
		return
	}
	if p.sess.commit() {
		c.countReset(p, sessionNew)
		c.log.Info("producer started a new session", "producer", p.cfg.ID, "session", fmt.Sprintf("%016x", p.sess.id))
	}
	c.noteSession(p)
}

// resetSession drops a producer's session state after a page that does
// not continue it; the next request asks for a new session.
func (c *Collector) resetSession(p *producer, reason string, err error) {
	c.countReset(p, reason)
	c.log.Warn("session dropped; asking for a new one", "producer", p.cfg.ID, "session", fmt.Sprintf("%016x", p.sess.id), "series", len(p.sess.types), "reason", reason, "err", err)
	c.dropSession(p)
}

// dropSession forgets the state without counting a reset.
func (c *Collector) dropSession(p *producer) {
	p.sess.reset()
	c.noteSession(p)
}

func (c *Collector) countReset(p *producer, reason string) {
	c.m.sessionResets.WithLabelValues(p.cfg.ID, reason).Inc()
	p.update(func(s *ProducerStatus) { s.SessionResets++ })
}

// noteSession shows the state in the status and the series gauge.
func (c *Collector) noteSession(p *producer) {
	id, n := "", len(p.sess.types)
	if p.sess.id != 0 {
		id = fmt.Sprintf("%016x", p.sess.id)
	}
	c.m.sessionSeries.WithLabelValues(p.cfg.ID).Set(float64(n))
	p.update(func(s *ProducerStatus) { s.Session, s.SessionSeries = id, n })
}

// storedDefinition reads back the definition of series id of the
// producer's current session from the forwarder's store: nil when it is
// not there (yet).
func (c *Collector) storedDefinition(producer string, s *session, id uint64) ([]byte, error) {
	if producer == "" || c.fwd == nil {
		return nil, nil
	}
	return c.fwd.StoredDefinition(producer, s.incarnation, s.id, id)
}
