package producerapi

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Page is what a producer serves a collector: at most `limit` samples, held
// under Token until the collector acknowledges them.
type Page struct {
	Version     int      `json:"version"`
	Producer    string   `json:"producer"`    // the producer's id
	Incarnation string   `json:"incarnation"` // changes when the producer restarts
	Token       string   `json:"token"`       // opaque; "" when the page holds no samples
	Dropped     uint64   `json:"dropped"`     // samples this collector lost to the buffer bound since its previous page
	More        bool     `json:"more"`        // more samples are waiting: ask again at once
	Samples     []Sample `json:"-"`           // JSON: see json.go
}

// PageVersion is the version of both page encodings.
const PageVersion = 1

// Media types of the two page encodings.
const (
	ContentTypeJSON   = "application/json"
	ContentTypeBinary = "application/vnd.holdfast.page.v1+binary"
)

var pageMagic = [4]byte{'H', 'F', 'P', 'G'}

// Binary page, version 1:
//
//	page := "HFPG" | u8 version(=1) | str producer | str incarnation | str token |
//	        uvarint dropped | u8 flags (bit 0: more) | sample block
//
// The sample block is the one AppendSamples writes.

// AppendPage appends the binary encoding of p to dst.
func AppendPage(dst []byte, p *Page) []byte {
	dst = append(dst, pageMagic[:]...)
	dst = append(dst, PageVersion)
	dst = appendStr(dst, p.Producer)
	dst = appendStr(dst, p.Incarnation)
	dst = appendStr(dst, p.Token)
	dst = binary.AppendUvarint(dst, p.Dropped)
	var flags byte
	if p.More {
		flags |= 1
	}
	dst = append(dst, flags)
	return AppendSamples(dst, p.Samples)
}

// DecodePage decodes a binary page. Samples are appended to p.Samples[:0].
// It checks structure only; validate samples with Validate.
func DecodePage(b []byte, p *Page) error { return decodePage(b, p, nil, nil) }

func decodePage(b []byte, p *Page, in *interner, lim *pageLimits) error {
	if err := lim.checkPageBytes(len(b)); err != nil {
		return err
	}
	if len(b) < 5 || [4]byte(b[:4]) != pageMagic {
		return fmt.Errorf("%w: not a binary page (bad magic)", ErrMalformed)
	}
	if b[4] != PageVersion {
		return fmt.Errorf("%w: unsupported page version %d (this build reads %d)", ErrMalformed, b[4], PageVersion)
	}
	d := &decoder{b: b, off: 5, sample: -1, in: in}
	p.Version = PageVersion
	p.Producer = d.str()
	p.Incarnation = d.str()
	p.Token = d.str()
	p.Dropped = d.uvarint()
	flags := d.u8()
	if d.err != nil {
		return d.err
	}
	if flags&^1 != 0 {
		return fmt.Errorf("%w: unknown page flags %#x", ErrMalformed, flags)
	}
	p.More = flags&1 != 0
	samples, err := decodeSamples(&decoder{b: b[d.off:], sample: -1, in: in, lim: lim}, p.Samples[:0])
	p.Samples = samples
	if err != nil {
		var de *DecodeError
		if errors.As(err, &de) {
			de.Offset += d.off
		}
		return err
	}
	if p.Token == "" && len(p.Samples) > 0 {
		return fmt.Errorf("%w: page with %d samples has no token", ErrMalformed, len(p.Samples))
	}
	return nil
}
