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
// When the bound forces the oldest sample out early, every collector that had
// not been served it counts a drop; a collector whose outstanding page holds
// it keeps it (the page has its own copy), so a page is always re-served
// unchanged.
type buffer struct {
	opts        bufferOptions
	incarnation [16]byte
	samples     []bufSample
	head        uint64 // seq of samples[0]
	bytes       int
	cursors     map[string]*cursor

	produced, released, dropped uint64
}

type bufSample struct {
	s    Sample
	size int
}

type cursor struct {
	next     uint64    // first seq not served to this collector
	page     *heldPage // outstanding page, if any
	dropped  uint64    // drops since the last page was made
	lastSeen time.Time
}

type heldPage struct {
	token      string
	start, end uint64
	page       Page
}

func newBuffer(opts bufferOptions, incarnation [16]byte) *buffer {
	if opts.MaxSamples <= 0 {
		opts.MaxSamples = 1_000_000
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = 256 << 20
	}
	return &buffer{opts: opts, incarnation: incarnation, cursors: map[string]*cursor{}}
}

func (b *buffer) tail() uint64 { return b.head + uint64(len(b.samples)) }

// addCollector makes a collector known: from now on samples wait for it.
// It starts at the oldest sample still held.
func (b *buffer) addCollector(id string) *cursor {
	c, ok := b.cursors[id]
	if !ok {
		c = &cursor{next: b.head}
		b.cursors[id] = c
	}
	return c
}

// removeCollector forgets a collector (deregistered); what only it held is
// released.
func (b *buffer) removeCollector(id string) {
	delete(b.cursors, id)
	b.release()
}

// add appends samples, dropping the oldest if the bound requires.
func (b *buffer) add(samples []Sample) {
	for i := range samples {
		size := approxSize(&samples[i])
		b.samples = append(b.samples, bufSample{s: samples[i], size: size})
		b.bytes += size
		b.produced++
	}
	for len(b.samples) > 0 && (len(b.samples) > b.opts.MaxSamples || b.bytes > b.opts.MaxBytes) {
		b.dropOldest()
	}
}

func (b *buffer) dropOldest() {
	seq := b.head
	for _, c := range b.cursors {
		if seq >= c.next {
			c.dropped++
			c.next = seq + 1
		}
	}
	b.dropped++
	b.pop()
}

func (b *buffer) pop() {
	b.bytes -= b.samples[0].size
	b.samples[0] = bufSample{}
	b.samples = b.samples[1:]
	b.head++
	if len(b.samples) == 0 {
		b.samples = b.samples[:0:0] // let the array go
	}
}

func (c *cursor) floor() uint64 {
	if c.page != nil {
		return c.page.start
	}
	return c.next
}

// release drops samples every collector has acknowledged. With no collector
// known yet, nothing is released: samples wait for the first one.
func (b *buffer) release() {
	if len(b.cursors) == 0 {
		return
	}
	floor := b.tail()
	for _, c := range b.cursors {
		floor = min(floor, c.floor())
	}
	for b.head < floor && len(b.samples) > 0 {
		b.released++
		b.pop()
	}
}

// ack releases the collector's outstanding page if token names it.
func (b *buffer) ack(id, token string) bool {
	c := b.addCollector(id)
	if c.page == nil || token == "" || token != c.page.token {
		return false
	}
	c.page = nil
	b.release()
	return true
}

// serve returns the collector's page: the outstanding one again unless token
// acknowledges it, else a new page of at most limit samples. A page with
// no samples has no token and is not held.
func (b *buffer) serve(id, token string, limit int, now time.Time, producer string) Page {
	c := b.addCollector(id)
	c.lastSeen = now
	if c.page != nil {
		if token == "" || token != c.page.token {
			return c.page.page // stale, foreign or absent token: the same page again
		}
		c.page = nil
		b.release()
	}
	start := max(c.next, b.head)
	end := min(b.tail(), start+uint64(limit))
	p := Page{Version: PageVersion, Producer: producer, Incarnation: formatUUID(b.incarnation), Dropped: c.dropped, More: end < b.tail()}
	c.dropped = 0
	if end == start {
		return p
	}
	p.Samples = make([]Sample, end-start)
	for i := range p.Samples {
		p.Samples[i] = b.samples[start-b.head+uint64(i)].s
	}
	p.Token = b.newToken()
	c.page = &heldPage{token: p.Token, start: start, end: end, page: p}
	c.next = end
	return p
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

// BufferStats counts samples through a producer's buffer.
type BufferStats struct {
	Produced uint64 `json:"produced"` // accepted into the buffer
	Released uint64 `json:"released"` // acknowledged by every collector and freed
	Dropped  uint64 `json:"dropped"`  // forced out by the bound (each counted once)
	Pending  uint64 `json:"pending"`  // in the buffer now
	Bytes    int    `json:"bytes"`    // approximate size of the pending samples
}

func (b *buffer) stats() BufferStats {
	return BufferStats{Produced: b.produced, Released: b.released, Dropped: b.dropped, Pending: uint64(len(b.samples)), Bytes: b.bytes}
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
