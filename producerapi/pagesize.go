package producerapi

import "strings"

// pageSizer measures what samples add to an encoded JSON or binary version
// 1 page, so a page can be cut to a collector's max_bytes before it is
// encoded. It measures with the encoders themselves (never an estimate that
// could come out low) and errs on the large side by a few bytes of header.
// (Binary pages v2 and v3 are measured exactly as they are encoded, by a
// pageCutter.) Not safe for concurrent use.
type pageSizer struct {
	binary  bool
	scratch []byte
}

// placeholderToken has the length of every real token.
var placeholderToken = strings.Repeat("A", tokenLen)

// header is the size of p's encoding without samples, with a token, and
// with room for the sample count.
func (z *pageSizer) header(p *Page) int {
	h := Page{Version: PageVersion, Producer: p.Producer, Incarnation: p.Incarnation, Token: placeholderToken, Dropped: p.Dropped}
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
