package producerapi

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"hash/maphash"
)

// Sessions (page version 3): a series dictionary that lives across pages.
//
// A producer drained every interval sends the same series in every page.
// With page v3 each collector cursor keeps a session: series get dense ids
// 0, 1, 2, ... in the order they are first served, a page carries the
// definitions of the ids the collector does not have yet and samples carry
// only the id (about 20 bytes for a gauge instead of ~110 with v1).
//
//	ids:  [0 ........ acked) [acked ..... next)
//	      the collector has   defined by the outstanding page (defs)
//
// The collector names the session it holds and how many ids it has
// (session=, known=) in each request. After the request's token is
// processed (an acknowledgement makes acked = next), the session continues
// only if both match; anything else (a restarted collector, a write that
// failed and was retried after a reset, a stale token) starts a new session
// with an empty dictionary, in which the outstanding page, if any, is
// encoded anew. Each page thus defines exactly ids [acked, next), so a
// collector can always check first_id == the ids it has.

// session is one cursor's dictionary. Not safe for concurrent use: the
// Server's lock guards it.
//
// The entries of ids 0..next-1 lie end to end in arena (offs[i] is where
// id i starts), so the definitions of ids [acked, next) are one slice of
// it. The index maps a hash of an entry to its id: a lookup hashes the
// entry once and compares it with the arena's bytes, no string keys
// scattered over the heap. Entries whose hash another entry already holds
// (a 64-bit collision: about 3e-8 for a million series) go to overflow.
type session struct {
	id    uint64 // random, non-zero
	next  uint64 // ids assigned
	acked uint64 // ids the collector acknowledged having

	seed     maphash.Seed
	index    map[uint64]uint64 // hash of an entry -> id
	overflow map[string]uint64 // entries whose hash index gives another id
	arena    []byte            // entries of ids 0..next-1
	offs     []int             // offs[i]: start of id i's entry in arena; offs[next] = len(arena)
}

func newSession() *session {
	var b [8]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			panic(fmt.Sprintf("producerapi: crypto/rand failed: %v", err)) // never on Linux
		}
		if id := binary.LittleEndian.Uint64(b[:]); id != 0 {
			return &session{id: id, seed: maphash.MakeSeed(), index: make(map[uint64]uint64), offs: []int{0}}
		}
	}
}

// entry returns id's entry (id < next).
func (ss *session) entry(id uint64) []byte { return ss.arena[ss.offs[id]:ss.offs[id+1]] }

// lookup returns the id of entry, whose hash is h.
func (ss *session) lookup(entry []byte, h uint64) (uint64, bool) {
	if id, ok := ss.index[h]; ok && bytes.Equal(ss.entry(id), entry) {
		return id, true
	}
	if len(ss.overflow) > 0 {
		id, ok := ss.overflow[string(entry)]
		return id, ok
	}
	return 0, false
}

// define gives entry (hash h, not in the session) the next id.
func (ss *session) define(entry []byte, h uint64) uint64 {
	id := ss.next
	if _, taken := ss.index[h]; taken {
		if ss.overflow == nil {
			ss.overflow = make(map[string]uint64)
		}
		ss.overflow[string(entry)] = id
	} else {
		ss.index[h] = id
	}
	ss.arena = append(ss.arena, entry...)
	ss.offs = append(ss.offs, len(ss.arena))
	ss.next++
	return id
}

// truncate forgets ids [n, next): the last ones defined, never
// acknowledged.
func (ss *session) truncate(n uint64) {
	for id := n; id < ss.next; id++ {
		e := ss.entry(id)
		if h := maphash.Bytes(ss.seed, e); ss.index[h] == id {
			delete(ss.index, h)
		} else {
			delete(ss.overflow, string(e))
		}
	}
	if n < ss.next {
		ss.arena = ss.arena[:ss.offs[n]]
		ss.offs = ss.offs[:n+1]
		ss.next = n
	}
}

// defsBytes is the size of the entries of ids [from, to).
func (ss *session) defsBytes(from, to uint64) int { return ss.offs[to] - ss.offs[from] }

// ack records that the collector has every id assigned so far (it
// acknowledged the page that defined them).
func (ss *session) ack() { ss.acked = ss.next }

// Reasons a session starts (ServerStats.SessionsStarted counts them all).
const (
	sessionNone    = "none"    // the request names no session: a collector (re)start
	sessionUnknown = "unknown" // it names another session than the cursor's
	sessionKnown   = "known"   // it holds another number of ids than acknowledged
	sessionCap     = "cap"     // the session reached MaxSessionSeries
)

// pickSession makes c's session the one a v3 request (session id, known
// ids) may continue, or a new one, after the request's token was
// processed. It returns why a new session started ("" when it continues).
func pickSession(c *cursor, id, known uint64, maxSeries int) string {
	ss := c.sess
	reason := ""
	switch {
	case id == 0:
		reason = sessionNone
	case ss == nil || ss.id != id:
		reason = sessionUnknown
	case ss.acked != known:
		reason = sessionKnown
	case c.page == nil && ss.next >= uint64(maxSeries):
		// Only between pages: an outstanding page keeps its definitions
		// until it is acknowledged, so churn ends the session at the
		// next cut, never mid-page.
		reason = sessionCap
	}
	if reason != "" {
		old := c.sess
		c.sess = newSession()
		for old != nil && c.sess.id == old.id { // a new session is never the old one
			c.sess = newSession()
		}
	}
	return reason
}

// page3Encoder encodes a v3 page while its samples are chosen, so a page cut
// to a byte limit is encoded once: add returns the exact size of the page
// so far and undo takes the last sample back. One per Server, reused from
// page to page under its lock; its buffers are the only memory a page
// needs, so steady state allocates nothing per sample (the series entry is
// built into scratch, hashed, and compared with the session's arena).
type page3Encoder struct {
	ss      *session
	head    int    // bytes of the page head, with a token and the session id
	scratch []byte // the series entry being looked up
	samples []byte // sample entries
	n       int    // samples encoded
	size    int    // the page's exact size so far
	// used is one past the highest id the page's samples name (at least
	// acked): a re-cut page drops the defs of the samples it no longer
	// holds (finish).
	used uint64
	hint uint64 // the id after the last sample's: the next sample's, likely
	// the last add, for undo
	lastOff  int
	lastNew  bool
	lastUsed uint64
}

// reset starts a page of p's head (its token, not yet chosen, is taken to
// have the length every token has) in session e.ss, and returns its size
// without samples.
func (e *page3Encoder) reset(p *Page) int {
	ss := e.ss
	e.samples, e.n = e.samples[:0], 0
	e.used, e.hint = ss.acked, 0
	h := Page{Producer: p.Producer, Incarnation: p.Incarnation, Token: placeholderToken, Dropped: p.Dropped}
	e.head = len(appendPageHead(e.scratch[:0], &h, PageVersion3)) + 8
	e.size = e.total()
	return e.size
}

func (e *page3Encoder) total() int {
	ss := e.ss
	return e.head + 1 + uvarintLen(ss.acked) + uvarintLen(e.used-ss.acked) + ss.defsBytes(ss.acked, e.used) +
		uvarintLen(uint64(e.n)) + len(e.samples)
}

// add encodes sample s, defining its series if the session does not have
// it, and returns the page's size with it.
func (e *page3Encoder) add(s *Sample) int {
	ss := e.ss
	e.scratch = AppendSeries(e.scratch[:0], s)
	// A producer drained every interval sends its series in the same
	// order each time, so the id after the last one is tried first: one
	// comparison with the arena's next bytes, no hashing.
	id, ok := e.hint, e.hint < ss.next && bytes.Equal(ss.entry(e.hint), e.scratch)
	if !ok {
		h := maphash.Bytes(ss.seed, e.scratch)
		if id, ok = ss.lookup(e.scratch, h); !ok {
			id = ss.define(e.scratch, h)
		}
	}
	e.lastNew = !ok
	e.hint = id + 1
	e.lastUsed = e.used
	e.used = max(e.used, id+1) // ids below acked the collector has
	e.lastOff = len(e.samples)
	e.samples = AppendSample3(e.samples, id, s)
	e.n++
	e.size = e.total()
	return e.size
}

// undo takes back the last add (a sample that did not fit): its entry, and
// its definition if add made one.
func (e *page3Encoder) undo() {
	e.samples = e.samples[:e.lastOff]
	e.n--
	e.used = e.lastUsed
	if e.lastNew {
		e.ss.truncate(e.ss.next - 1)
	}
	e.size = e.total()
}

// appendPage appends page p (head from p, samples as added) to dst:
//
//	page3 := "HFPG" | u8 version(=3) | str producer | str incarnation | str token |
//	         uvarint dropped | u8 flags (bit 0: more) | u64 session | block3
//	block3 := u8 version(=3) | uvarint first_id | uvarint ndefs | series*ndefs |
//	          uvarint nsamples | sample*nsamples
//
// The definitions are ids [acked, next) of the session (after finish):
// first_id = acked.
// It sets p.Session.
func (e *page3Encoder) appendPage(dst []byte, p *Page) []byte {
	e.finish()
	ss := e.ss
	p.Session = ss.id
	return e.appendBlock(AppendPage3Head(dst, p))
}

// appendBlock appends the block of the samples added: definitions of ids
// [acked, next), then the sample entries.
func (e *page3Encoder) appendBlock(dst []byte) []byte {
	ss := e.ss
	dst = AppendBlock3Head(dst, ss.acked, int(ss.next-ss.acked), ss.arena[ss.offs[ss.acked]:], e.n)
	return append(dst, e.samples...)
}

// finish forgets the ids [used, next): defined for samples a re-cut took
// out of the page, which the collector never acknowledged (a re-cut page
// was not acknowledged), so the page carries only the definitions it
// needs and fits the re-cut's byte limit. Ids are assigned in page order,
// so the page's samples name exactly [acked, used) of the new ones.
func (e *page3Encoder) finish() { e.ss.truncate(e.used) }

// release drops buffers a very large page left, so one such page does not
// pin its memory for the server's life.
func (e *page3Encoder) release() {
	e.ss = nil
	if cap(e.samples) > 16<<20 {
		e.samples = nil
	}
}

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

// SessionEncoder encodes the version 3 blocks of one series session as a
// producer serves them to a collector that takes every page: each block
// defines the series the session has not defined yet, in order of first
// use, and samples name ids. It is the server's encoder, for tools, tests
// and benchmarks that write what collectors write. Not safe for
// concurrent use.
type SessionEncoder struct{ e page3Encoder }

// NewSessionEncoder starts a session with a random non-zero id.
func NewSessionEncoder() *SessionEncoder { return &SessionEncoder{e: page3Encoder{ss: newSession()}} }

// ID is the session's id.
func (s *SessionEncoder) ID() uint64 { return s.e.ss.id }

// AppendBlock appends the session's next block, of samples, to dst.
func (s *SessionEncoder) AppendBlock(dst []byte, samples []Sample) []byte {
	e := &s.e
	e.samples, e.n, e.used, e.hint = e.samples[:0], 0, e.ss.acked, 0
	for i := range samples {
		e.add(&samples[i])
	}
	e.finish()
	dst = e.appendBlock(dst)
	e.ss.ack()
	return dst
}

// Definition returns the series entry of id, as blocks carry it.
func (s *SessionEncoder) Definition(id uint64) ([]byte, bool) {
	if id >= s.e.ss.next {
		return nil, false
	}
	return s.e.ss.entry(id), true
}

// Len is the number of ids the session has defined.
func (s *SessionEncoder) Len() uint64 { return s.e.ss.next }
