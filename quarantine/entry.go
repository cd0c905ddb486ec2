package quarantine

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Kind says what an entry holds.
type Kind uint8

const (
	// KindSample is one sample the collector refused; Payload is a binary
	// sample block holding it.
	KindSample Kind = 1
	// KindRecord is one WAL record the forwarder could not deliver; Payload
	// is the record's payload, RecordType its WAL type.
	KindRecord Kind = 2
)

func (k Kind) String() string {
	switch k {
	case KindSample:
		return "sample"
	case KindRecord:
		return "record"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Reason codes, the label of the metrics.
const (
	CodeInvalid     = "invalid"      // the sample breaks the limits or rules (producerapi.Validate)
	CodeSchema      = "schema"       // the sample conflicts with its timeseries schema
	CodeTooLarge    = "too_large"    // the sample can never fit a WAL record or a page body
	CodeRejected    = "rejected"     // ClickHouse refused the record
	CodeMalformed   = "malformed"    // the record does not decode, or holds an invalid sample
	CodeCorrupt     = "corrupt"      // the WAL frame does not check
	CodeUnknownType = "unknown_type" // a WAL record type this build does not know
	// CodeUndefinedSeries: a version 3 record names a session series id
	// whose definition was lost with its record (a damaged WAL).
	CodeUndefinedSeries = "undefined_series"
)

// SampleCodes and RecordCodes are the reason codes of each kind: the
// collector refuses samples, the forwarder records. Do not modify.
var (
	SampleCodes = []string{CodeInvalid, CodeSchema, CodeTooLarge}
	RecordCodes = []string{CodeRejected, CodeMalformed, CodeCorrupt, CodeUnknownType, CodeUndefinedSeries}
)

// Entry is one quarantined sample or record.
type Entry struct {
	ID          uint64 // assigned by Put
	Kind        Kind
	TimeNs      int64 // when it was quarantined
	Producer    string
	Incarnation string
	Code        string // short reason (see the Code constants)
	Reason      string // full message
	WALIndex    uint64 // KindRecord: the record's WAL index
	RecordType  uint8  // KindRecord: the record's WAL type
	Payload     []byte
	// PayloadBytes is the payload's length when a header-only listing
	// left Payload nil (0 otherwise: len(Payload) says it).
	PayloadBytes int
}

// ErrMalformed is the sentinel of a stored entry that does not decode.
var ErrMalformed = errors.New("quarantine: malformed entry")

const (
	entryVersion = 1
	keyPrefix    = "quarantine/"
	// A value is at least: version, kind, time, four empty strings, index, type.
	minValue = 1 + 1 + 8 + 4 + 8 + 1
)

func entryKey(id uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte(keyPrefix), id)
}

func idOf(key []byte) (uint64, error) {
	if len(key) != len(keyPrefix)+8 || string(key[:len(keyPrefix)]) != keyPrefix {
		return 0, fmt.Errorf("%w: key %q", ErrMalformed, key)
	}
	return binary.BigEndian.Uint64(key[len(keyPrefix):]), nil
}

func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func encodeValue(e *Entry) []byte {
	b := make([]byte, 0, minValue+len(e.Producer)+len(e.Incarnation)+len(e.Code)+len(e.Reason)+len(e.Payload)+8)
	b = append(b, entryVersion, byte(e.Kind))
	b = binary.BigEndian.AppendUint64(b, uint64(e.TimeNs))
	b = appendStr(b, e.Producer)
	b = appendStr(b, e.Incarnation)
	b = appendStr(b, e.Code)
	b = appendStr(b, e.Reason)
	b = binary.BigEndian.AppendUint64(b, e.WALIndex)
	b = append(b, e.RecordType)
	return append(b, e.Payload...)
}

// decodeValue decodes a stored value; the entry does not share memory with v.
func decodeValue(id uint64, v []byte) (Entry, error) { return decodeValueOpt(id, v, true) }

// decodeValueOpt decodes a stored value, its payload only when withPayload
// (a listing of headers must not copy up to a WAL record per entry).
func decodeValueOpt(id uint64, v []byte, withPayload bool) (Entry, error) {
	e := Entry{ID: id}
	bad := func(what string) (Entry, error) {
		return Entry{}, fmt.Errorf("%w: entry %d: %s", ErrMalformed, id, what)
	}
	if len(v) < minValue {
		return bad(fmt.Sprintf("%d bytes, shorter than %d", len(v), minValue))
	}
	if v[0] != entryVersion {
		return bad(fmt.Sprintf("unsupported version %d", v[0]))
	}
	e.Kind = Kind(v[1])
	if e.Kind != KindSample && e.Kind != KindRecord {
		return bad(fmt.Sprintf("unknown kind %d", v[1]))
	}
	e.TimeNs = int64(binary.BigEndian.Uint64(v[2:10]))
	off := 10
	str := func() (string, bool) {
		n, k := binary.Uvarint(v[off:])
		if k <= 0 || n > uint64(len(v)-off-k) {
			return "", false
		}
		off += k
		s := string(v[off : off+int(n)])
		off += int(n)
		return s, true
	}
	var ok bool
	for _, dst := range []*string{&e.Producer, &e.Incarnation, &e.Code, &e.Reason} {
		if *dst, ok = str(); !ok {
			return bad("bad string length")
		}
	}
	if len(v)-off < 9 {
		return bad("truncated after its strings")
	}
	e.WALIndex = binary.BigEndian.Uint64(v[off:])
	e.RecordType = v[off+8]
	switch rest := v[off+9:]; {
	case !withPayload:
		e.PayloadBytes = len(rest)
	case len(rest) > 0:
		e.Payload = append([]byte(nil), rest...)
	}
	return e, nil
}

// storedSize is what an entry costs against the budget: its key and value.
func storedSize(valueLen int) int64 { return int64(len(keyPrefix) + 8 + valueLen) }
