package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
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

// SkipOptions tune SkipDamaged.
type SkipOptions struct {
	// Records is how many records the damaged region held; 0: work it out.
	Records int
	// Checkpoint is the forwarder's checkpoint (the last index forwarded),
	// used when HaveCheckpoint is set.
	Checkpoint     uint64
	HaveCheckpoint bool
	// Force accepts a count that cannot be checked in the last segment.
	Force bool
}

// SkipDamaged is the operator's explicit repair for damage that Open refuses
// to touch (a bad frame with valid frames after it, in any segment). index
// must be the index the *CorruptionError names: the first damage in its
// segment. The damaged region runs from that frame to the next frame that
// checks (or to the end of a segment that is not the last). Each record it
// held is replaced, in place, by a TypeDamaged placeholder with the same
// index; every other record keeps its bytes and its index.
//
// opts.Records says how many records the region held; 0 means work it out, which
// is possible when the length prefixes in the region chain exactly to the
// next valid frame (flipped bytes in payloads or checksums), or when the
// region runs to the end of a non-last segment (the next segment's first
// index says). Otherwise SkipDamaged refuses and asks for records; a count
// that contradicts a consistent chain is refused too.
//
// No index may move: before the rewritten segment replaces the old one, its
// frames must chain (length prefix and header) and, for a segment that is not
// the last, hold exactly as many records as the next segment's first index
// says. In the last segment nothing says how many records there were, so a
// count the chain does not prove (an explicit Records), or frames after the
// region that stop chaining (another damage, or a wrong count or false next
// frame), are refused unless the checkpoint (opts.HaveCheckpoint) is before
// index, i.e. nothing from the damage on was forwarded yet, or opts.Force
// is set.
//
// The log must not be open (SkipDamaged takes its lock). The original segment
// is kept as NAME.damaged.UNIXNANO; the rewritten one goes to a temporary
// name, is fsynced and renamed over the original, then the directory is
// fsynced, so a crash leaves either the old or the new segment.
func SkipDamaged(dir string, index uint64, opts SkipOptions) (*SkipReport, error) {
	records := opts.Records
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
		out = binary.AppendUvarint(out, uint64(len(frame)))
		out = append(out, frame...)
	}
	out = append(out, data[end:]...)
	// Refuse before anything changes if an index would move: the frames of
	// the rewritten segment must chain, and a sealed segment must hold
	// exactly the records up to the next segment's first index.
	//
	// In the last segment nothing bounds the count, and a break in the
	// chain after the region is either another damaged record (to skip
	// next) or a sign that the count or the frame taken as the next valid
	// one is wrong. Either is accepted only while nothing from the damage
	// on was forwarded (renumbering unforwarded records loses nothing),
	// or when forced.
	total, state := chainFrames(out)
	proven := next < 0 || chainCount(data[goodEnd:end]) == records
	switch {
	case !last && (state != chainComplete || uint64(total) != segs[si+1].start-seg.start):
		return nil, fmt.Errorf("wal: after replacing %d records %s would hold %d records, but the next segment starts at index %d (%d records): indexes would move; nothing was changed", records, seg.name, total, segs[si+1].start, segs[si+1].start-seg.start)
	case !last || opts.Force || (proven && state != chainBroken):
	case !opts.HaveCheckpoint:
		return nil, fmt.Errorf("wal: replacing %d records at index %d of the last segment cannot be checked (%s): give the data directory, so that the checkpoint is checked, or force it; nothing was changed", records, index, lastSegmentDoubt(proven, total))
	case opts.Checkpoint >= index:
		return nil, fmt.Errorf("wal: replacing %d records at index %d of the last segment cannot be checked (%s) and the checkpoint %d is at or after the damage: a wrong count would move forwarded records; force it only if the count is certain; nothing was changed", records, index, lastSegmentDoubt(proven, total), opts.Checkpoint)
	}
	if err := writeFileAtomic(path, path+".repair"+evidenceTmp, func(w io.Writer) error {
		_, err := w.Write(out)
		return err
	}); err != nil {
		return nil, fmt.Errorf("wal: writing the repaired segment: %w", err)
	}
	after := seg
	after.size = int64(len(out))
	kept, _, _ := scanSegment(dir, after, nil)
	return &SkipReport{Segment: seg.name, Offset: goodEnd, Bytes: end - goodEnd, FirstIndex: index, Records: records,
		Evidence: evidence, KeptRecords: kept}, nil
}

func lastSegmentDoubt(proven bool, total int) string {
	if !proven {
		return "the count was given, not worked out"
	}
	return fmt.Sprintf("the frames after it stop chaining at record %d", total+1)
}

// chainCount follows the length prefixes through a damaged region: when they
// chain from its start exactly to its end, the region held that many
// records (their payloads or checksums are what is damaged). It returns 0
// when they do not (a damaged length prefix).
func chainCount(region []byte) int {
	if n, state := chainFrames(region); state == chainComplete {
		return n
	}
	return 0
}

type chainState int

const (
	chainComplete chainState = iota // the frames end exactly at the end
	chainTorn                       // the last frame runs past the end
	chainBroken                     // a length prefix or header does not hold
)

// chainFrames follows length prefixes from the start of b, each checked
// against its envelope header (so a damaged prefix that happens to span
// several frames does not pass for one record), and counts the frames.
func chainFrames(b []byte) (int, chainState) {
	var off, count int
	for off < len(b) {
		size, _, ok := parseFrameHeader(b[off:])
		switch {
		case !ok && (len(b)-off < headerSize || allZero(b[off:])):
			return count, chainTorn // a torn or zero-filled end, as Open repairs
		case !ok:
			return count, chainBroken
		case size > len(b)-off:
			return count, chainTorn
		}
		off += size
		count++
	}
	return count, chainComplete
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
