package sessdefs

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
)

const (
	magic = "HFSDEF1\n"
	// recordHead is a record's length, id and CRC.
	recordHead = 12
	// MaxDefinition bounds a definition's length: far above what a page's
	// limits let through, it tells a damaged length from a real one.
	MaxDefinition = 16 << 20
	// MaxKey bounds a session key's length in a header.
	MaxKey = 64 << 10
	// markBits: the sparse index holds the offset of the first record of
	// every 1<<markBits ids.
	markBits = 6
	// maxMarkedID bounds the ids the sparse index covers (2 MiB of marks
	// at most; the forwarder's sessions stop at 1<<24 ids): a damaged or
	// hostile file naming id 2³²-1 costs no memory for the ids below.
	maxMarkedID = 1 << 24
	suffix      = ".defs"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrNotFound is returned for an id the session's file does not define.
var ErrNotFound = errors.New("sessdefs: definition not found")

// errCorrupt marks a record or header that does not read back.
var errCorrupt = errors.New("sessdefs: corrupt")

// CorruptionError says where a file stopped reading back.
type CorruptionError struct {
	Path   string
	Offset int64
	Err    error
}

func (e *CorruptionError) Error() string {
	return fmt.Sprintf("sessdefs: %s at offset %d: %v", e.Path, e.Offset, e.Err)
}

func (e *CorruptionError) Unwrap() error { return e.Err }

// fileName returns the file name of a session key.
func fileName(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:16]) + suffix
}

// appendHeader appends a file header for key to dst.
func appendHeader(dst []byte, key string) []byte {
	start := len(dst)
	dst = append(dst, magic...)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(key)))
	dst = append(dst, key...)
	return binary.BigEndian.AppendUint32(dst, crc32.Checksum(dst[start:], castagnoli))
}

// appendRecord appends a definition's record to dst.
func appendRecord(dst []byte, id uint32, def []byte) []byte {
	start := len(dst)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(def)))
	dst = binary.BigEndian.AppendUint32(dst, id)
	crc := crc32.Update(crc32.Checksum(dst[start:], castagnoli), castagnoli, def)
	dst = binary.BigEndian.AppendUint32(dst, crc)
	return append(dst, def...)
}

// parseHeader reads a header from b: the key and the header's length.
// need > 0 asks for that many bytes in all before the header can be read.
func parseHeader(b []byte) (key string, n int, need int, err error) {
	if len(b) < len(magic)+4 {
		return "", 0, len(magic) + 4, nil
	}
	if string(b[:len(magic)]) != magic {
		return "", 0, 0, fmt.Errorf("%w: not a session definitions file (magic %q)", errCorrupt, b[:len(magic)])
	}
	kl := binary.BigEndian.Uint32(b[len(magic):])
	if kl > MaxKey {
		return "", 0, 0, fmt.Errorf("%w: header key of %d bytes", errCorrupt, kl)
	}
	n = len(magic) + 4 + int(kl) + 4
	if len(b) < n {
		return "", 0, n, nil
	}
	if crc32.Checksum(b[:n-4], castagnoli) != binary.BigEndian.Uint32(b[n-4:]) {
		return "", 0, 0, fmt.Errorf("%w: header checksum mismatch", errCorrupt)
	}
	return string(b[len(magic)+4 : n-4]), n, 0, nil
}

// parseRecord reads the record at the start of b. need > 0 asks for that
// many bytes in all before it can be read (a short b is not an error: the
// caller reads more, or at the end of the file calls the record torn).
func parseRecord(b []byte) (id uint32, def []byte, n int, need int, err error) {
	if len(b) < recordHead {
		return 0, nil, 0, recordHead, nil
	}
	l := binary.BigEndian.Uint32(b)
	if l == 0 || l > MaxDefinition {
		return 0, nil, 0, 0, fmt.Errorf("%w: record length %d", errCorrupt, l)
	}
	n = recordHead + int(l)
	if len(b) < n {
		return 0, nil, 0, n, nil
	}
	crc := crc32.Update(crc32.Checksum(b[:8], castagnoli), castagnoli, b[recordHead:n])
	if crc != binary.BigEndian.Uint32(b[8:]) {
		return 0, nil, 0, 0, fmt.Errorf("%w: record checksum mismatch", errCorrupt)
	}
	return binary.BigEndian.Uint32(b[4:]), b[recordHead:n], n, 0, nil
}
