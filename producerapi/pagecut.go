package producerapi

import (
	"encoding/binary"
	"hash/maphash"
)

// A pageCutter encodes a binary page while buffer.serve chooses its
// samples, so a page cut to max_bytes is measured exactly and encoded once:
// reset starts a page and returns its size without samples, add encodes a
// sample and returns the page's size with it, undo takes the last sample
// back (it did not fit). Afterwards the cutter holds the page's encoding
// (appendPage). Used under the Server's lock, reused from page to page.
type pageCutter interface {
	reset(p *Page) int
	add(s *Sample) int
	undo()
}

var (
	_ pageCutter = (*page2Cutter)(nil)
	_ pageCutter = (*page3Encoder)(nil)
)

// page2Cutter cuts and encodes a binary page of version 2: a series entry
// per distinct series of the page, in order of first use, as Block2Encoder
// writes it.
type page2Cutter struct {
	e    Block2Encoder
	head int // the page head, with a token
	n    int
	// the last add, for undo
	lastSeries, lastSamples, lastStarts int
	lastHash                            uint64
	lastIndexed                         bool
}

func (c *page2Cutter) reset(p *Page) int {
	e := &c.e
	if e.index == nil {
		e.seed = maphash.MakeSeed()
		e.index = make(map[uint64]int)
	} else {
		clear(e.index)
	}
	e.series, e.samples, e.starts, c.n = e.series[:0], e.samples[:0], e.starts[:0], 0
	h := Page{Producer: p.Producer, Incarnation: p.Incarnation, Token: placeholderToken, Dropped: p.Dropped}
	c.head = len(appendPageHead(e.samples, &h, PageVersion2))
	return c.total()
}

func (c *page2Cutter) total() int {
	e := &c.e
	return c.head + 1 + uvarintLen(uint64(len(e.starts))) + len(e.series) + uvarintLen(uint64(c.n)) + len(e.samples)
}

func (c *page2Cutter) add(s *Sample) int {
	e := &c.e
	c.lastSeries, c.lastSamples, c.lastStarts = len(e.series), len(e.samples), len(e.starts)
	c.lastHash, c.lastIndexed = e.add(s)
	c.n++
	return c.total()
}

func (c *page2Cutter) undo() {
	e := &c.e
	e.series, e.samples, e.starts = e.series[:c.lastSeries], e.samples[:c.lastSamples], e.starts[:c.lastStarts]
	if c.lastIndexed {
		delete(e.index, c.lastHash)
	}
	c.n--
}

// appendPage appends the page (head from p, samples as added) to dst.
func (c *page2Cutter) appendPage(dst []byte, p *Page) []byte {
	e := &c.e
	dst = appendPageHead(dst, p, PageVersion2)
	dst = append(dst, Block2Version)
	dst = binary.AppendUvarint(dst, uint64(len(e.starts)))
	dst = append(dst, e.series...)
	dst = binary.AppendUvarint(dst, uint64(c.n))
	return append(dst, e.samples...)
}

// release drops what a very large page left.
func (c *page2Cutter) release() {
	if cap(c.e.samples)+cap(c.e.series) > 16<<20 {
		c.e.Release()
	}
}
