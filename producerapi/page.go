package producerapi

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Page is what a producer serves a collector: at most `limit` samples, held
// under Token until the collector acknowledges them.
type Page struct {
	Version     int    `json:"version"`
	Producer    string `json:"producer"`    // the producer's id
	Incarnation string `json:"incarnation"` // changes when the producer restarts
	Token       string `json:"token"`       // opaque; "" when the page holds no samples
	Dropped     uint64 `json:"dropped"`     // samples this collector lost to the buffer bound since its previous page
	More        bool   `json:"more"`        // more samples are waiting: ask again at once
	// Session is a binary version 3 page's series session (block3.go):
	// its samples name series by ids of this session. 0 for other pages.
	Session uint64   `json:"-"`
	Samples []Sample `json:"-"` // JSON: see json.go
}

// PageVersion is the version of the JSON page encoding and of binary page
// version 1.
const PageVersion = 1

// PageVersion2 is the version of the binary page that carries a version 2
// block (a series dictionary).
const PageVersion2 = 2

// PageVersion3 is the version of the binary page that carries a version 3
// block (a session's series dictionary).
const PageVersion3 = 3

// Media types of the page encodings.
const (
	ContentTypeJSON     = "application/json"
	ContentTypeBinary   = "application/vnd.holdfast.page.v1+binary"
	ContentTypeBinaryV2 = "application/vnd.holdfast.page.v2+binary"
	ContentTypeBinaryV3 = "application/vnd.holdfast.page.v3+binary"
)

var pageMagic = [4]byte{'H', 'F', 'P', 'G'}

// Binary page, version 1:
//
//	page := "HFPG" | u8 version(=1) | str producer | str incarnation | str token |
//	        uvarint dropped | u8 flags (bit 0: more) | sample block
//
// The sample block is the one AppendSamples writes.

// Binary page, version 2: the same head with version 2, then a version 2
// block (block2.go):
//
//	page2 := "HFPG" | u8 version(=2) | str producer | str incarnation | str token |
//	         uvarint dropped | u8 flags (bit 0: more) | block2

// Binary page, version 3: the same head with version 3 and the session,
// then a version 3 block (block3.go):
//
//	page3 := "HFPG" | u8 version(=3) | str producer | str incarnation | str token |
//	         uvarint dropped | u8 flags (bit 0: more) | u64 session | block3

// AppendPage3Head appends a version 3 page's head (p.Session included);
// the caller appends the version 3 block.
func AppendPage3Head(dst []byte, p *Page) []byte {
	return binary.LittleEndian.AppendUint64(appendPageHead(dst, p, PageVersion3), p.Session)
}

// AppendPage appends the binary encoding (version 1) of p to dst.
func AppendPage(dst []byte, p *Page) []byte {
	return AppendSamples(appendPageHead(dst, p, PageVersion), p.Samples)
}

// AppendPage2 appends the binary encoding version 2 of p to dst.
func AppendPage2(dst []byte, p *Page) []byte {
	return AppendBlock2(appendPageHead(dst, p, PageVersion2), p.Samples)
}

// AppendPage2With is AppendPage2 with a reusable encoder.
func AppendPage2With(e *Block2Encoder, dst []byte, p *Page) []byte {
	return e.Append(appendPageHead(dst, p, PageVersion2), p.Samples)
}

func appendPageHead(dst []byte, p *Page, version byte) []byte {
	dst = append(dst, pageMagic[:]...)
	dst = append(dst, version)
	dst = appendStr(dst, p.Producer)
	dst = appendStr(dst, p.Incarnation)
	dst = appendStr(dst, p.Token)
	dst = binary.AppendUvarint(dst, p.Dropped)
	var flags byte
	if p.More {
		flags |= 1
	}
	return append(dst, flags)
}

// DecodePage decodes a binary page of version 1, 2 or 3 (a version 3 page
// only when it defines every id its samples name). Samples are appended
// to p.Samples[:0]. It checks structure only; validate samples with
// Validate.
func DecodePage(b []byte, p *Page) error { return decodePage(b, p, nil, nil, nil) }

// ScanPageHead reads a binary page's head (version 1, 2 or 3) into p, leaving
// p.Samples alone, and returns its block undecoded (version p.Version) and
// the block's offset in b. With lim, a page longer than lim.MaxBytes is
// refused (*LimitError). The caller checks the block (BlockScanner for
// version 2) and that a page with samples has a token.
func ScanPageHead(b []byte, p *Page, lim *PageLimits) (block []byte, off int, err error) {
	if err := lim.resolve().checkPageBytes(len(b)); err != nil {
		return nil, 0, err
	}
	off, err = scanPageHead(b, p, nil)
	if err != nil {
		return nil, 0, err
	}
	return b[off:], off, nil
}

func scanPageHead(b []byte, p *Page, in *interner) (int, error) {
	if len(b) < 5 || [4]byte(b[:4]) != pageMagic {
		return 0, fmt.Errorf("%w: not a binary page (bad magic)", ErrMalformed)
	}
	if b[4] != PageVersion && b[4] != PageVersion2 && b[4] != PageVersion3 {
		return 0, fmt.Errorf("%w: unsupported page version %d (this build reads %d to %d)", ErrMalformed, b[4], PageVersion, PageVersion3)
	}
	d := &decoder{b: b, off: 5, sample: -1, in: in}
	p.Version = int(b[4])
	p.Producer = d.str()
	p.Incarnation = d.str()
	p.Token = d.str()
	p.Dropped = d.uvarint()
	flags := d.u8()
	if d.err != nil {
		return 0, d.err
	}
	if flags&^1 != 0 {
		return 0, fmt.Errorf("%w: unknown page flags %#x", ErrMalformed, flags)
	}
	p.More = flags&1 != 0
	p.Session = 0
	if p.Version == PageVersion3 {
		p.Session = d.u64()
		if d.err != nil {
			return 0, d.err
		}
	}
	return d.off, nil
}

func decodePage(b []byte, p *Page, in *interner, lim *pageLimits, plim *PageLimits) error {
	if err := lim.checkPageBytes(len(b)); err != nil {
		return err
	}
	off, err := scanPageHead(b, p, in)
	if err != nil {
		return err
	}
	var samples []Sample
	switch p.Version {
	case PageVersion3:
		// Only ids the page defines: a session's earlier pages are not
		// known here (the collector verifies v3 pages with its session).
		samples, err = decodeBlock3(b[off:], p.Samples[:0], plim, in, nil)
	case PageVersion2:
		samples, err = decodeBlock2(b[off:], p.Samples[:0], plim, in)
	default:
		samples, err = decodeSamples(&decoder{b: b[off:], sample: -1, in: in, lim: lim}, p.Samples[:0])
	}
	p.Samples = samples
	if err != nil {
		var de *DecodeError
		if errors.As(err, &de) {
			de.Offset += off
		}
		return err
	}
	if p.Token == "" && len(p.Samples) > 0 {
		return fmt.Errorf("%w: page with %d samples has no token", ErrMalformed, len(p.Samples))
	}
	return nil
}
