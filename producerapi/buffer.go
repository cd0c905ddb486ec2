package producerapi

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"time"
)

// bufferOptions bound a Buffer.
type bufferOptions struct {
	MaxSamples int // default 1,000,000
	MaxBytes   int // approximate; default 256 MiB
}

// buffer holds samples until every collector the producer serves has
// acknowledged them. Samples have sequence numbers; each collector has a
// cursor and at most one outstanding page. Not safe for concurrent use: the
// Server serialises access.
//
//	seq:      head ........................................ head+len(samples)
//	          [released by everyone)  [held for someone]  [not yet served]
//	collector A:        page [start,end)          next=end
//	collector B:  next (nothing outstanding)
//
// A sample at seq s can leave when s < floor(c) for every collector c, where
// floor is the page's start if a page is outstanding and next otherwise.
//
// When the bound forces the oldest sample out early, every collector that had
// not been served it counts a drop, and the sample counts once as dropped. A
// collector whose outstanding page holds it keeps it (the page has its own
// copy), so a page is always re-served unchanged. A sample forced out while
// every collector has it in an outstanding page is not lost: it waits in
// limbo (counted as pending) until those pages are acknowledged (released)
// or abandoned (dropped). So at every moment
//
//	produced = released + dropped + pending    (pending = buffered + limbo)
//
// and dropped counts exactly the samples some collector never received.
type buffer struct {
	opts        bufferOptions
	incarnation [16]byte
	samples     sampleQueue
	head        uint64 // seq of the oldest sample held
	bytes       int
	cursors     map[string]*cursor
	limbo       []limboSample // forced out while held in pages; sorted by seq

	produced, released, dropped uint64
}

type bufSample struct {
	s    Sample
	size int
}

// limboSample is a sample forced out of the buffer while outstanding pages
// still hold it. lost is set when a page holding it was abandoned.
type limboSample struct {
	seq  uint64
	lost bool
}

type cursor struct {
	next     uint64    // first seq not served to this collector
	page     *heldPage // outstanding page, if any
	dropped  uint64    // drops since the last page was made
	acked    uint64    // samples acknowledged by this collector (metrics.go)
	lastSeen time.Time // last page request or acknowledgement
	// pinned cursors (configured or registry-assigned) never expire.
	pinned bool
	// sess is the series dictionary of page v3 (session.go); nil until a
	// v3 page is asked for, and dropped when another encoding is.
	sess *session
}

type heldPage struct {
	token      string
	start, end uint64
	page       Page
}

func (h *heldPage) covers(seq uint64) bool { return h != nil && seq >= h.start && seq < h.end }

func newBuffer(opts bufferOptions, incarnation [16]byte) *buffer {
	if opts.MaxSamples <= 0 {
		opts.MaxSamples = 1_000_000
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = 256 << 20
	}
	return &buffer{opts: opts, incarnation: incarnation, cursors: map[string]*cursor{}}
}

func (b *buffer) tail() uint64 { return b.head + uint64(b.samples.len()) }

// addCollector makes a collector known: from now on samples wait for it.
// It starts at the oldest sample still held.
func (b *buffer) addCollector(id string, now time.Time) *cursor {
	c, ok := b.cursors[id]
	if !ok {
		c = &cursor{next: b.head, lastSeen: now}
		b.cursors[id] = c
	}
	return c
}

// removeCollector forgets a collector. Samples of its outstanding page that
// only limbo still held are lost for it. With lost, what it alone still held
// in the buffer counts as dropped (it expired or was deleted, so it never got
// them); otherwise as released (a registry handoff: its successors, added
// first, hold everything it had not acknowledged).
func (b *buffer) removeCollector(id string, lost bool) bool {
	c, ok := b.cursors[id]
	if !ok {
		return false
	}
	if c.page != nil {
		b.abandon(c.page.start, c.page.end)
	}
	delete(b.cursors, id)
	b.releaseAs(lost)
	b.resolveLimbo()
	return true
}

// abandon marks the limbo samples in [start, end) lost: a page holding them
// will never be acknowledged.
func (b *buffer) abandon(start, end uint64) {
	for i := range b.limbo {
		if s := b.limbo[i].seq; s >= start && s < end {
			b.limbo[i].lost = true
		}
	}
}

// resolveLimbo settles limbo samples, from the oldest, that no outstanding
// page holds any more.
func (b *buffer) resolveLimbo() {
	for len(b.limbo) > 0 {
		l := b.limbo[0]
		for _, c := range b.cursors {
			if c.page.covers(l.seq) {
				return
			}
		}
		if l.lost {
			b.dropped++
		} else {
			b.released++
		}
		b.limbo = b.limbo[1:]
	}
	b.limbo = b.limbo[:0:0] // let the array go
}

// add appends samples, dropping the oldest if the bound requires.
func (b *buffer) add(samples []Sample) {
	for i := range samples {
		size := approxSize(&samples[i])
		b.samples.push(bufSample{s: samples[i], size: size})
		b.bytes += size
		b.produced++
	}
	for b.samples.len() > 0 && (b.samples.len() > b.opts.MaxSamples || b.bytes > b.opts.MaxBytes) {
		b.dropOldest()
	}
}

func (b *buffer) dropOldest() {
	seq := b.head
	held, lost := false, len(b.cursors) == 0 // with no collector yet, nobody will get it
	for _, c := range b.cursors {
		switch {
		case c.page.covers(seq):
			held = true
		case seq >= c.next:
			c.dropped++
			c.next = seq + 1
			lost = true
		}
	}
	switch {
	case lost:
		b.dropped++
	case held:
		b.limbo = append(b.limbo, limboSample{seq: seq})
	default:
		b.released++ // every collector acknowledged it (release would have freed it)
	}
	b.pop()
}

func (b *buffer) pop() {
	b.bytes -= b.samples.front().size
	b.samples.pop()
	b.head++
}

func (c *cursor) floor() uint64 {
	if c.page != nil {
		return c.page.start
	}
	return c.next
}

// release drops samples every collector has acknowledged. With no collector
// known yet, nothing is released: samples wait for the first one.
func (b *buffer) release() { b.releaseAs(false) }

func (b *buffer) releaseAs(dropped bool) {
	if len(b.cursors) == 0 {
		return
	}
	floor := b.tail()
	for _, c := range b.cursors {
		floor = min(floor, c.floor())
	}
	for b.head < floor && b.samples.len() > 0 {
		if dropped {
			b.dropped++
		} else {
			b.released++
		}
		b.pop()
	}
}

// ack releases the collector's outstanding page if token names it. An
// unknown collector gets nothing and no cursor.
func (b *buffer) ack(id, token string, now time.Time) bool {
	c, ok := b.cursors[id]
	if !ok {
		return false
	}
	c.lastSeen = now
	if c.page == nil || token == "" || token != c.page.token {
		return false
	}
	b.releasePage(c)
	return true
}

// releasePage releases c's outstanding page, acknowledged: the collector
// also has the series the page defined in its session.
func (b *buffer) releasePage(c *cursor) {
	c.acked += uint64(len(c.page.page.Samples))
	c.page = nil
	if c.sess != nil {
		c.sess.ack()
	}
	b.release()
	b.resolveLimbo()
}

// serveLimits bound one page served: at most samples samples and, when bytes > 0, at
// most bytes bytes in the encoding sizer measures.
type serveLimits struct {
	samples int
	bytes   int
	sizer   *pageSizer
	// cut, when set, encodes the page as it is cut (binary pages v2 and
	// v3): it measures exactly and holds the page's encoding afterwards,
	// so the page is encoded once. sizer is not used then.
	cut pageCutter
}

// serve returns the collector's page: the outstanding one again unless token
// acknowledges it, else a new page within lim. A page with no samples has no
// token and is not held. The cursor must exist.
func (b *buffer) serve(c *cursor, token string, lim serveLimits, now time.Time, producer string) Page {
	c.lastSeen = now
	if c.page != nil {
		if token == "" || token != c.page.token {
			b.recut(c, lim)
			return c.page.page // stale, foreign or absent token: the same page again
		}
		b.releasePage(c)
	}
	start := max(c.next, b.head)
	end := min(b.tail(), start+uint64(lim.samples))
	p := Page{Version: PageVersion, Producer: producer, Incarnation: formatUUID(b.incarnation), Dropped: c.dropped}
	if lim.cut != nil {
		lim.cut.reset(&p)
		n := uint64(0)
		for seq := start; seq < end; seq++ {
			size := lim.cut.add(&b.samples.at(int(seq - b.head)).s)
			if lim.bytes > 0 && size > lim.bytes && n > 0 {
				lim.cut.undo()
				break
			}
			n++
		}
		end = start + n
	} else if lim.bytes > 0 && end > start {
		// A sample larger than the whole limit is served alone, so the
		// collector can quarantine it rather than ask forever.
		size := lim.sizer.header(&p)
		n := uint64(0)
		for seq := start; seq < end; seq++ {
			size += lim.sizer.sample(&b.samples.at(int(seq - b.head)).s)
			if size > lim.bytes && n > 0 {
				break
			}
			n++
		}
		end = start + n
	}
	p.More = end < b.tail()
	c.dropped = 0
	if end == start {
		return p
	}
	p.Samples = make([]Sample, end-start)
	for i := range p.Samples {
		p.Samples[i] = b.samples.at(int(start-b.head) + i).s
	}
	p.Token = b.newToken()
	c.page = &heldPage{token: p.Token, start: start, end: end, page: p}
	c.next = end
	return p
}

// recut shrinks an outstanding page that is larger than a new request's
// limits: nothing in it was released, so its tail simply becomes unserved
// again (a new token says the page changed). What of that tail the bound has
// already forced out of the buffer is lost for this collector.
func (b *buffer) recut(c *cursor, lim serveLimits) {
	h := c.page
	n := min(len(h.page.Samples), lim.samples)
	if lim.cut != nil {
		// Encoded anew; for v3 in the current session: the same ids when
		// the session continues (the series are in its dictionary), new
		// ones from 0 in a new session.
		lim.cut.reset(&h.page)
		for i := 0; i < n; i++ {
			size := lim.cut.add(&h.page.Samples[i])
			if lim.bytes > 0 && size > lim.bytes && i > 0 {
				lim.cut.undo()
				n = i
				break
			}
		}
	} else if lim.bytes > 0 {
		size := lim.sizer.header(&h.page)
		for i := 0; i < n; i++ {
			size += lim.sizer.sample(&h.page.Samples[i])
			if size > lim.bytes && i > 0 {
				n = i
				break
			}
		}
	}
	if n == len(h.page.Samples) {
		return
	}
	cut := h.start + uint64(n)
	if gone := min(h.end, b.head); gone > cut {
		c.dropped += gone - cut // forced out of the buffer: only the page had them
	}
	b.abandon(cut, h.end)
	p := h.page
	p.Samples = p.Samples[:n:n]
	p.More = true
	p.Token = b.newToken()
	c.page = &heldPage{token: p.Token, start: h.start, end: cut, page: p}
	c.next = cut
	b.resolveLimbo()
}

// expire removes cursors not pinned and idle since before cutoff, counting
// what only they held as dropped. It returns their ids.
func (b *buffer) expire(cutoff time.Time) []string {
	var gone []string
	for id, c := range b.cursors {
		if !c.pinned && c.lastSeen.Before(cutoff) {
			gone = append(gone, id)
		}
	}
	for _, id := range gone {
		b.removeCollector(id, true)
	}
	return gone
}

// newToken is the incarnation followed by 16 random bytes: opaque, it names
// the incarnation, and cannot be guessed to release someone else's page.
func (b *buffer) newToken() string {
	var raw [32]byte
	copy(raw[:16], b.incarnation[:])
	if _, err := rand.Read(raw[16:]); err != nil {
		panic(fmt.Sprintf("producerapi: crypto/rand failed: %v", err)) // never on Linux
	}
	return base64.RawURLEncoding.EncodeToString(raw[:])
}

// tokenLen is the length of every token newToken makes.
const tokenLen = 43

// BufferStats counts samples through a producer's buffer. At every moment
// Produced = Released + Dropped + Pending.
type BufferStats struct {
	Produced uint64 `json:"produced"` // accepted into the buffer
	Released uint64 `json:"released"` // acknowledged by every collector and freed
	Dropped  uint64 `json:"dropped"`  // some collector never got it: forced out by the bound, or its cursor expired or was deleted (each counted once)
	Pending  uint64 `json:"pending"`  // in the buffer, or forced out but still in an unacknowledged page
	Bytes    int    `json:"bytes"`    // approximate size of the buffered samples
}

func (b *buffer) stats() BufferStats {
	return BufferStats{Produced: b.produced, Released: b.released, Dropped: b.dropped,
		Pending: uint64(b.samples.len() + len(b.limbo)), Bytes: b.bytes}
}

// approxSize estimates a sample's memory cost without encoding it.
func approxSize(s *Sample) int {
	n := 160 + len(s.Target.Name) + len(s.Metric.Name)
	for _, group := range [2][]Field{s.Target.Fields, s.Metric.Fields} {
		for i := range group {
			n += 96 + len(group[i].Name) + len(group[i].Value.Str)
		}
	}
	d := &s.Datum
	n += len(d.Str) + len(d.Bytes)
	switch {
	case d.HistI64 != nil:
		n += 16 * len(d.HistI64.Bins)
	case d.HistU64 != nil:
		n += 16 * len(d.HistU64.Bins)
	case d.HistF64 != nil:
		n += 16 * len(d.HistF64.Bins)
	}
	return n
}

func formatUUID(u [16]byte) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}
