package producerapi

import "fmt"

// A page record is what a collector appends to its WAL for one page taken
// from a producer: where it came from and the samples. Three versions,
// told apart by the first byte (version 3, a session's records: block3.go):
//
//	record  := u8 version(=1) | str producer | str incarnation | block
//	record2 := u8 version(=2) | u8 flags (bit 0: verified) | str producer |
//	           str incarnation | block2
//
// block is the version 1 sample block (binary.go), block2 the version 2
// block (block2.go). "verified": every sample the block refers to (and its
// series) passed the writing collector's Validate and schema check, so a
// reader need not validate again. Collectors write version 3 for version 3
// pages and version 2 for older producers' pages; version 1 records
// (written before the upgrade) still read.
const (
	pageRecordVersion  = 1
	pageRecordVersion2 = 2
)

// PageRecord is the decoded form of a page record.
type PageRecord struct {
	Producer    string // producer id (or URL for static producers)
	Incarnation string // the producer's incarnation id, "" if unknown
	Samples     []Sample
	Version     int  // the record's version (1 or 2) when decoded
	Verified    bool // version 2: the writer validated every sample
}

// AppendPageRecord appends the version 1 page record encoding to dst.
func AppendPageRecord(dst []byte, producer, incarnation string, samples []Sample) []byte {
	dst = append(dst, pageRecordVersion)
	dst = appendStr(dst, producer)
	dst = appendStr(dst, incarnation)
	return AppendSamples(dst, samples)
}

// AppendPageRecord2 appends a version 2 page record around block2 (a
// version 2 block, copied as it is) to dst.
func AppendPageRecord2(dst []byte, producer, incarnation string, verified bool, block2 []byte) []byte {
	dst = AppendPageRecord2Head(dst, producer, incarnation, verified)
	return append(dst, block2...)
}

// AppendPageRecord2Head appends the head of a version 2 page record; the
// caller appends the version 2 block.
func AppendPageRecord2Head(dst []byte, producer, incarnation string, verified bool) []byte {
	var flags byte
	if verified {
		flags |= 1
	}
	dst = append(dst, pageRecordVersion2, flags)
	dst = appendStr(dst, producer)
	return appendStr(dst, incarnation)
}

// ScanPageRecord reads a page record's head (any version) without
// decoding its block, which it returns aliasing b: a version 1 block for
// version 1, a version 2 block for version 2, a version 3 block for
// version 3 (its session and refused ids: ParsePageRecord3); verified is
// false for version 1.
func ScanPageRecord(b []byte) (version int, producer, incarnation string, verified bool, block []byte, err error) {
	off, version, verified, err := scanRecordHead(b)
	if err != nil {
		return 0, "", "", false, nil, err
	}
	d := &decoder{b: b, off: off, sample: -1}
	producer, incarnation = d.str(), d.str()
	if d.err != nil {
		return 0, "", "", false, nil, d.err
	}
	if version == pageRecordVersion3 {
		var h Record3Head
		if err := ParsePageRecord3(b, &h); err != nil {
			return 0, "", "", false, nil, err
		}
		return version, producer, incarnation, verified, h.Block, nil
	}
	return version, producer, incarnation, verified, b[d.off:], nil
}

// PageRecordBlock returns a page record's version, verified flag and
// block (aliasing b) without reading the producer and incarnation into
// strings: what a reader of the samples alone needs, without allocating.
func PageRecordBlock(b []byte) (version int, verified bool, block []byte, err error) {
	off, version, verified, err := scanRecordHead(b)
	if err != nil {
		return 0, false, nil, err
	}
	if version == pageRecordVersion3 {
		var h Record3Head
		if err := ParsePageRecord3(b, &h); err != nil {
			return 0, false, nil, err
		}
		return version, verified, h.Block, nil
	}
	d := decoder{b: b, off: off, sample: -1}
	d.skipBytes() // producer
	d.skipBytes() // incarnation
	if d.err != nil {
		return 0, false, nil, d.err
	}
	return version, verified, b[d.off:], nil
}

// scanRecordHead reads the version and flags and returns the offset of
// the producer string.
func scanRecordHead(b []byte) (off, version int, verified bool, err error) {
	if len(b) == 0 {
		return 0, 0, false, fmt.Errorf("%w: empty page record", ErrMalformed)
	}
	switch b[0] {
	case pageRecordVersion:
		return 1, 1, false, nil
	case pageRecordVersion2:
		if len(b) < 2 {
			return 0, 0, false, fmt.Errorf("%w: page record too short", ErrMalformed)
		}
		if b[1]&^1 != 0 {
			return 0, 0, false, fmt.Errorf("%w: unknown page record flags %#x", ErrMalformed, b[1])
		}
		return 2, 2, b[1]&1 != 0, nil
	case pageRecordVersion3:
		if len(b) < 2 {
			return 0, 0, false, fmt.Errorf("%w: page record too short", ErrMalformed)
		}
		if b[1]&^1 != 0 {
			return 0, 0, false, fmt.Errorf("%w: unknown page record flags %#x", ErrMalformed, b[1])
		}
		return 2, 3, b[1]&1 != 0, nil
	}
	return 0, 0, false, fmt.Errorf("%w: unsupported page record version %d", ErrMalformed, b[0])
}

// DecodePageRecord decodes a page record of either version; samples are
// appended to rec.Samples[:0].
func DecodePageRecord(b []byte, rec *PageRecord) error { return decodePageRecord(b, rec, nil) }

func decodePageRecord(b []byte, rec *PageRecord, in *interner) error {
	off, version, verified, err := scanRecordHead(b)
	if err != nil {
		return err
	}
	d := &decoder{b: b, off: off, sample: -1, in: in}
	rec.Producer = d.str()
	rec.Incarnation = d.str()
	rec.Version, rec.Verified = version, verified
	if d.err != nil {
		return d.err
	}
	var samples []Sample
	if version == pageRecordVersion3 {
		return DecodePageRecord3(b, rec, nil) // self-contained records only
	}
	if version == pageRecordVersion2 {
		samples, err = decodeBlock2(b[d.off:], rec.Samples[:0], nil, in)
	} else {
		samples, err = decodeSamples(&decoder{b: b[d.off:], sample: -1, in: in}, rec.Samples[:0])
	}
	rec.Samples = samples
	return err
}

// PageRecordOrigin reads only the producer and incarnation at the head of a
// page record (either version), without decoding its samples.
func PageRecordOrigin(b []byte) (producer, incarnation string, err error) {
	_, producer, incarnation, _, _, err = ScanPageRecord(b)
	return producer, incarnation, err
}
