package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// RecordType says what a record's payload holds. The WAL itself does not
// interpret payloads; readers dispatch on the type.
type RecordType uint8

// Record types. Zero is never valid, so a zero-filled region cannot decode.
const (
	// TypePage is a page of samples taken from a producer, encoded with
	// producerapi.AppendRecord.
	TypePage RecordType = 1
)

func (t RecordType) String() string {
	switch t {
	case TypePage:
		return "page"
	case TypeDamaged:
		return "damaged"
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// Record is one entry of the log.
type Record struct {
	Type    RecordType
	Payload []byte
}

const (
	magic0, magic1 = 'h', 'f'
	formatVersion  = 1
	headerSize     = 12
	// MaxPayload bounds one record. Pages are far smaller; the bound keeps a
	// corrupt length from asking for gigabytes.
	MaxPayload = 64 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrBadRecord is the sentinel for an envelope that does not check.
var ErrBadRecord = errors.New("wal: bad record")

// appendEnvelope appends the framed record to dst:
//
//	0    2    3    4        8        12
//	+----+----+----+--------+--------+--------------+
//	| hf | v1 |type| length | crc32c | payload ...  |
//	+----+----+----+--------+--------+--------------+
//
// length is the payload's byte count (u32, little-endian) and crc32c is the
// Castagnoli CRC of bytes 2..8 followed by the payload, so a flipped bit in
// the version, type, length or payload is caught.
func appendEnvelope(dst []byte, r Record) []byte {
	start := len(dst)
	dst = append(dst, magic0, magic1, formatVersion, byte(r.Type))
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(r.Payload)))
	dst = append(dst, 0, 0, 0, 0)
	dst = append(dst, r.Payload...)
	crc := crc32.Update(crc32.Checksum(dst[start+2:start+8], castagnoli), castagnoli, r.Payload)
	binary.LittleEndian.PutUint32(dst[start+8:start+12], crc)
	return dst
}

// decodeEnvelope checks and opens a framed record. The payload aliases b.
func decodeEnvelope(b []byte) (Record, error) {
	if len(b) < headerSize {
		return Record{}, fmt.Errorf("%w: %d bytes is shorter than the %d-byte header", ErrBadRecord, len(b), headerSize)
	}
	if b[0] != magic0 || b[1] != magic1 {
		return Record{}, fmt.Errorf("%w: bad magic %#x%02x", ErrBadRecord, b[0], b[1])
	}
	if b[2] != formatVersion {
		return Record{}, fmt.Errorf("%w: unsupported format version %d", ErrBadRecord, b[2])
	}
	typ := RecordType(b[3])
	if typ == 0 {
		return Record{}, fmt.Errorf("%w: record type 0", ErrBadRecord)
	}
	n := binary.LittleEndian.Uint32(b[4:8])
	if n == 0 || n > MaxPayload {
		return Record{}, fmt.Errorf("%w: payload length %d out of range", ErrBadRecord, n)
	}
	if int(n) != len(b)-headerSize {
		return Record{}, fmt.Errorf("%w: header says %d payload bytes, frame holds %d", ErrBadRecord, n, len(b)-headerSize)
	}
	want := binary.LittleEndian.Uint32(b[8:12])
	got := crc32.Update(crc32.Checksum(b[2:8], castagnoli), castagnoli, b[headerSize:])
	if got != want {
		return Record{}, fmt.Errorf("%w: checksum %#08x, header says %#08x", ErrBadRecord, got, want)
	}
	return Record{Type: typ, Payload: b[headerSize:]}, nil
}

// DecodeEnvelope checks and opens one framed record as stored by the log. It
// is exported for tools and fuzzing; the payload aliases b.
func DecodeEnvelope(b []byte) (Record, error) { return decodeEnvelope(b) }

// EncodeEnvelope frames a record as the log stores it.
func EncodeEnvelope(dst []byte, r Record) []byte { return appendEnvelope(dst, r) }
