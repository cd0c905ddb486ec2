package wal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// TypeDamaged marks a record that an operator's explicit repair (SkipDamaged)
// put in place of a damaged one: it keeps the damaged record's index, so no
// index is reused and every record after it keeps its own. Its payload says
// where the damaged bytes were and where their copy is; readers quarantine it.
const TypeDamaged RecordType = 2

// SkipReport describes what SkipDamaged changed.
type SkipReport struct {
	Segment     string // file name of the segment rewritten
	Offset      int64  // byte offset of the damaged region
	Bytes       int64  // length of the damaged region
	FirstIndex  uint64 // index of the first record replaced
	Records     int    // records replaced by TypeDamaged placeholders
	Evidence    string // path of the untouched copy of the segment
	KeptRecords uint64 // records in the segment that check after the rewrite
}

// SkipDamaged is the operator's explicit repair for damage that Open refuses
// to touch (a bad frame with valid frames after it, in any segment). index
// must be the index the *CorruptionError names: the first damage in its
// segment. The damaged region runs from that frame to the next frame that
// checks (or to the end of a segment that is not the last). Each record it
// held is replaced, in place, by a TypeDamaged placeholder with the same
// index; every other record keeps its bytes and its index.
//
// records says how many records the region held; 0 means work it out, which
// is possible when the length prefixes in the region chain exactly to the
// next valid frame (flipped bytes in payloads or checksums), or when the
// region runs to the end of a non-last segment (the next segment's first
// index says). Otherwise SkipDamaged refuses and asks for records; a count
// that contradicts a consistent chain is refused too.
//
// The log must not be open (SkipDamaged takes its lock). The original segment
// is kept as NAME.damaged.UNIXNANO; the rewritten one goes to a temporary
// name, is fsynced and renamed over the original, then the directory is
// fsynced, so a crash leaves either the old or the new segment.
func SkipDamaged(dir string, index uint64, records int) (*SkipReport, error) {
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	defer lock.Close()
	if err := removeStaleTemps(dir); err != nil {
		return nil, err
	}
	segs, err := listSegments(dir)
	if err != nil {
		return nil, err
	}
	si := -1
	for i, s := range segs {
		if s.start <= index && (i+1 == len(segs) || index < segs[i+1].start) {
			si = i
		}
	}
	if si < 0 {
		return nil, fmt.Errorf("wal: no segment in %s holds index %d", dir, index)
	}
	seg := segs[si]
	good, goodEnd, err := scanSegment(dir, seg, nil)
	var ce *CorruptionError
	if err == nil {
		return nil, fmt.Errorf("wal: segment %s has no damage; nothing to skip", seg.name)
	}
	if !errors.As(err, &ce) {
		return nil, err
	}
	if ce.Index != index {
		return nil, fmt.Errorf("wal: the first damage in segment %s is at index %d (offset %d), not %d; skip that one first", seg.name, ce.Index, ce.Offset, index)
	}
	path := filepath.Join(dir, seg.name)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	end := int64(len(data))
	last := si == len(segs)-1
	next, err := nextValidFrame(dir, seg, goodEnd)
	if err != nil {
		return nil, err
	}
	switch {
	case next >= 0:
		end = next
	case last:
		return nil, fmt.Errorf("wal: the damage at index %d is a torn end of the last segment, with nothing valid after it; opening the log repairs it", index)
	}
	if records == 0 {
		switch {
		case next < 0:
			records = int(segs[si+1].start - (seg.start + good))
		default:
			records = chainCount(data[goodEnd:end])
		}
		if records <= 0 {
			return nil, fmt.Errorf("wal: cannot tell how many records the %d damaged bytes at %s offset %d held (the length prefix is damaged too); pass the count explicitly", end-goodEnd, seg.name, goodEnd)
		}
	}
	if c := chainCount(data[goodEnd:end]); next >= 0 && c > 0 && c != records {
		return nil, fmt.Errorf("wal: the length prefixes of the %d damaged bytes at %s offset %d chain through %d records, not %d", end-goodEnd, seg.name, goodEnd, c, records)
	}
	if next < 0 && uint64(records) != segs[si+1].start-(seg.start+good) {
		return nil, fmt.Errorf("wal: the damaged end of %s must hold %d records for the next segment to start at %d, not %d", seg.name, segs[si+1].start-(seg.start+good), segs[si+1].start, records)
	}
	evidence := fmt.Sprintf("%s.damaged.%d", path, time.Now().UnixNano())
	if err := keepEvidence(path, 0, evidence); err != nil {
		return nil, fmt.Errorf("wal: keeping a copy of %s before the repair (nothing was changed): %w", path, err)
	}
	out := append([]byte(nil), data[:goodEnd]...)
	for i := 0; i < records; i++ {
		msg := fmt.Sprintf("holdfast: record %d of %d lost to damage in WAL segment %s: %d bytes at offset %d; the original segment is kept in %s",
			i+1, records, seg.name, end-goodEnd, goodEnd, filepath.Base(evidence))
		frame := appendEnvelope(nil, Record{Type: TypeDamaged, Payload: []byte(msg)})
		out = appendUvarint(out, uint64(len(frame)))
		out = append(out, frame...)
	}
	out = append(out, data[end:]...)
	tmp := path + ".repair" + evidenceTmp
	if err := writeFileSynced(tmp, out); err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("wal: writing the repaired segment (nothing was changed): %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return nil, err
	}
	if err := syncDir(dir); err != nil {
		return nil, err
	}
	after := seg
	after.size = int64(len(out))
	kept, _, _ := scanSegment(dir, after, nil)
	return &SkipReport{Segment: seg.name, Offset: goodEnd, Bytes: end - goodEnd, FirstIndex: index, Records: records,
		Evidence: evidence, KeptRecords: kept}, nil
}

func appendUvarint(dst []byte, x uint64) []byte {
	for x >= 0x80 {
		dst = append(dst, byte(x)|0x80)
		x >>= 7
	}
	return append(dst, byte(x))
}

func writeFileSynced(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o640)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// chainCount follows the length prefixes through a damaged region: when they
// chain from its start exactly to its end, the region held that many
// records (their payloads or checksums are what is damaged). It returns 0
// when they do not (a damaged length prefix).
func chainCount(region []byte) int {
	var off, count int
	for off < len(region) {
		n, used, err := readUvarint(bytes.NewReader(region[off:]))
		if err != nil || n < headerSize || n > headerSize+MaxPayload || uint64(len(region)-off-used) < n {
			return 0
		}
		// The envelope must agree with its prefix (magic, version, and
		// the header's payload length): a damaged prefix that happens to
		// span several frames must not pass for one record.
		h := region[off+used:]
		if h[0] != magic0 || h[1] != magic1 || h[2] != formatVersion || uint64(binary.LittleEndian.Uint32(h[4:8])) != n-headerSize {
			return 0
		}
		off += used + int(n)
		count++
	}
	return count
}
