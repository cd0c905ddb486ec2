package producerapi

import "fmt"

// A page record is what a collector appends to its WAL for one page taken
// from a producer: where it came from and the samples.
//
//	record := u8 version(=1) | str producer | str incarnation | block
//
// block is the binary sample block (see binary.go).
const pageRecordVersion = 1

// PageRecord is the decoded form of a page record.
type PageRecord struct {
	Producer    string // producer id (or URL for static producers)
	Incarnation string // the producer's incarnation id, "" if unknown
	Samples     []Sample
}

// AppendPageRecord appends the page record encoding to dst.
func AppendPageRecord(dst []byte, producer, incarnation string, samples []Sample) []byte {
	dst = append(dst, pageRecordVersion)
	dst = appendStr(dst, producer)
	dst = appendStr(dst, incarnation)
	return AppendSamples(dst, samples)
}

// DecodePageRecord decodes a page record; samples are appended to
// rec.Samples[:0].
func DecodePageRecord(b []byte, rec *PageRecord) error { return decodePageRecord(b, rec, nil) }

func decodePageRecord(b []byte, rec *PageRecord, in *interner) error {
	d := &decoder{b: b, sample: -1, in: in}
	if v := d.u8(); d.err == nil && v != pageRecordVersion {
		return fmt.Errorf("%w: unsupported page record version %d", ErrMalformed, v)
	}
	rec.Producer = d.str()
	rec.Incarnation = d.str()
	if d.err != nil {
		return d.err
	}
	samples, err := decodeSamples(&decoder{b: b[d.off:], sample: -1, in: in}, rec.Samples[:0])
	rec.Samples = samples
	return err
}

// PageRecordOrigin reads only the producer and incarnation at the head of a
// page record, without decoding its samples.
func PageRecordOrigin(b []byte) (producer, incarnation string, err error) {
	d := &decoder{b: b, sample: -1}
	if v := d.u8(); d.err == nil && v != pageRecordVersion {
		return "", "", fmt.Errorf("%w: unsupported page record version %d", ErrMalformed, v)
	}
	producer, incarnation = d.str(), d.str()
	return producer, incarnation, d.err
}
