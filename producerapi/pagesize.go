package producerapi

import "strings"

// pageSizer measures what samples add to an encoded page, so a page can be
// cut to a collector's max_bytes before it is encoded. It measures with the
// encoders themselves (never an estimate that could come out low) and errs
// on the large side by a few bytes of header. Not safe for concurrent use.
type pageSizer struct {
	binary  bool
	v2      bool // with binary: page version 2 (a series dictionary)
	scratch []byte
	// seen holds the series entries already counted in the page being
	// measured (version 2): a sample of a known series adds only its
	// sample entry. header starts a page and clears it.
	seen map[string]struct{}
}

// placeholderToken has the length of every real token.
var placeholderToken = strings.Repeat("A", tokenLen)

// header is the size of p's encoding without samples, with a token, and
// with room for the sample count.
func (z *pageSizer) header(p *Page) int {
	h := Page{Version: PageVersion, Producer: p.Producer, Incarnation: p.Incarnation, Token: placeholderToken, Dropped: p.Dropped}
	if z.binary && z.v2 {
		clear(z.seen)
		// The series and sample counts' uvarints grow to at most 10 bytes each.
		return len(AppendPage2(z.scratch[:0], &h)) + 18
	}
	if z.binary {
		return len(AppendPage(z.scratch[:0], &h)) + 9 // the count's uvarint grows to at most 10 bytes
	}
	b, err := MarshalPageJSON(&h) // More false is the longer spelling
	if err != nil {
		return len(p.Producer)*6 + 256
	}
	return len(b)
}

// sample is what one sample adds to a page (JSON: with its comma).
func (z *pageSizer) sample(s *Sample) int {
	if z.binary && z.v2 {
		z.scratch = AppendSeries(z.scratch[:0], s)
		n := 0
		if _, ok := z.seen[string(z.scratch)]; !ok {
			if z.seen == nil {
				z.seen = make(map[string]struct{})
			}
			z.seen[string(z.scratch)] = struct{}{}
			n = len(z.scratch)
		}
		z.scratch = appendSample2(z.scratch[:0], 1<<32, s) // the largest index a page can have, in bytes
		return n + len(z.scratch)
	}
	if z.binary {
		z.scratch = appendSample(z.scratch[:0], s)
		return len(z.scratch)
	}
	b, err := MarshalSampleJSON(s)
	if err != nil {
		return 1 << 30 // unencodable: never fits, so it is served alone
	}
	return len(b) + 1
}
