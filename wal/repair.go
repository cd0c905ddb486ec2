package wal

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// RepairReport describes a repair Open made to the last segment.
type RepairReport struct {
	Segment      string // file name of the repaired segment
	BrokenCopy   string // path of the evidence: the bytes cut, from offset KeptBytes to the old end
	KeptBytes    int64  // bytes that checked and were kept
	RemovedBytes int64  // bytes cut from the tail
	KeptRecords  uint64 // records kept in the segment
	Cause        error  // what was wrong at KeptBytes
}

// checkSegments verifies every segment's frames and checksums and that the
// segments' index ranges follow each other without gaps. A torn or
// zero-filled end of the last segment is repaired (see repairTail); damage
// anywhere else, including a bad frame in the last segment with frames that
// check after it, is returned as a *CorruptionError and nothing is changed.
func checkSegments(dir string, log *slog.Logger) ([]segmentFile, *RepairReport, error) {
	segs, err := listSegments(dir)
	if err != nil {
		return nil, nil, err
	}
	return checkSegmentListAcked(dir, segs, nil, 0, log)
}

// checkSegmentListAcked is checkSegments over a listing. known gives the
// record counts of sealed segments the caller already checked (recovery of a
// failed log): those are not read again. acked is the last index the caller
// acknowledged (0 at Open): a repair that would cut it is refused.
func checkSegmentListAcked(dir string, segs []segmentFile, known map[string]uint64, acked uint64, log *slog.Logger) ([]segmentFile, *RepairReport, error) {
	var report *RepairReport
	for i := range segs {
		seg := &segs[i]
		if i > 0 {
			prev := segs[i-1]
			if want := prev.start + prev.records; seg.start != want {
				return nil, nil, &CorruptionError{Dir: dir, Segment: seg.name, Offset: 0, Index: seg.start,
					Err: fmt.Errorf("segment starts at index %d but the previous segment %s ends at index %d", seg.start, prev.name, want-1)}
			}
		}
		if n, ok := known[seg.name]; ok && i != len(segs)-1 {
			seg.records = n
			continue
		}
		good, goodEnd, err := scanSegment(dir, *seg, nil)
		seg.records = good
		if err == nil {
			continue
		}
		var ce *CorruptionError
		if !errors.As(err, &ce) {
			return nil, nil, fmt.Errorf("wal: reading %s: %w", filepath.Join(dir, seg.name), err)
		}
		if i != len(segs)-1 {
			return nil, nil, err
		}
		// The last segment: only a torn or zero-filled END is what an
		// interrupted append leaves. A frame that checks after the damage
		// proves the damage is in the middle, and cutting there would
		// discard acknowledged records and reuse their indexes.
		next, err := nextValidFrame(dir, *seg, goodEnd)
		if err != nil {
			return nil, nil, err
		}
		if next >= 0 {
			ce.NextValidOffset = next
			ce.Err = fmt.Errorf("%v; a valid frame follows at offset %d, so this is not a torn tail: nothing was changed (see `holdfast wal repair`)", ce.Err, next)
			return nil, nil, ce
		}
		if keptLast := seg.start + good - 1; keptLast < acked {
			ce.Err = fmt.Errorf("%v; records %d..%d were acknowledged and would be cut: nothing was changed", ce.Err, keptLast+1, acked)
			return nil, nil, ce
		}
		report, err = repairTail(dir, seg, goodEnd, ce.Err)
		if err != nil {
			return nil, nil, err
		}
		log.Warn("wal: repaired the tail of the last segment",
			"segment", report.Segment, "kept_bytes", report.KeptBytes, "removed_bytes", report.RemovedBytes,
			"kept_records", report.KeptRecords, "broken_copy", report.BrokenCopy, "cause", report.Cause)
	}
	return segs, report, nil
}

// nextValidFrame searches the segment after from for the first offset where
// a complete frame checks (length prefix, magic, version, CRC32C), and
// returns it, or -1 if there is none. A false match needs a CRC32C collision
// on top of the magic bytes, so a match is taken as proof of a record.
//
// The search never looks inside the damaged frame itself when its header is
// consistent (prefix, magic, version and payload length agree): a payload
// may hold the bytes of a valid frame (a producer's bytes datum). Such a
// frame that runs past the end of the file is a torn end, whatever it holds.
func nextValidFrame(dir string, seg segmentFile, from int64) (int64, error) {
	f, err := os.Open(filepath.Join(dir, seg.name))
	if err != nil {
		return -1, err
	}
	defer f.Close()
	if _, err := f.Seek(from, io.SeekStart); err != nil {
		return -1, err
	}
	// The tail segment is held in memory by tidwall/wal anyway; the part
	// after the damage is at most a segment.
	rest, err := io.ReadAll(f)
	if err != nil {
		return -1, err
	}
	skip := 1
	if size, _, ok := parseFrameHeader(rest); ok {
		if size > len(rest) {
			return -1, nil // a torn end
		}
		skip = size
	}
	for p := skip; p < len(rest); {
		// Cheap filter first: the magic must sit after a 1..4-byte length.
		k := bytes.IndexByte(rest[p:], magic0)
		if k < 0 {
			return -1, nil
		}
		m := p + k // candidate magic position
		for lenBytes := 1; lenBytes <= 4 && m-lenBytes >= skip; lenBytes++ {
			start := m - lenBytes
			size, used, ok := parseFrameHeader(rest[start:])
			if !ok || used != lenBytes || size > len(rest)-start {
				continue
			}
			if _, err := decodeEnvelope(rest[start+used : start+size]); err == nil {
				return from + int64(start), nil
			}
		}
		p = m + 1
	}
	return -1, nil
}

// repairTail keeps the bytes it is about to cut as evidence
// (NAME.broken.at-OFFSET.UNIXNANO, which tidwall/wal ignores: the segment's
// bytes from OFFSET to its end), then truncates the segment to its last good
// frame and fsyncs the file and the directory. Only the last segment is ever
// repaired: a torn or zero-filled tail is what a crash during an append
// leaves behind. The evidence is the cut part only, not the whole segment,
// so that a full disk, which tears the tail in the first place, needs only
// that much space to recover.
func repairTail(dir string, seg *segmentFile, goodEnd int64, cause error) (*RepairReport, error) {
	path := filepath.Join(dir, seg.name)
	broken := fmt.Sprintf("%s.broken.at-%d.%d", path, goodEnd, time.Now().UnixNano())
	if err := keepEvidence(path, goodEnd, broken); err != nil {
		return nil, fmt.Errorf("wal: keeping a copy of the damaged end of %s before repair (nothing was changed): %w", path, err)
	}
	if err := truncateSynced(path, goodEnd); err != nil {
		return nil, err
	}
	if err := syncDir(dir); err != nil {
		return nil, err
	}
	r := &RepairReport{Segment: seg.name, BrokenCopy: broken, KeptBytes: goodEnd, RemovedBytes: seg.size - goodEnd,
		KeptRecords: seg.records, Cause: cause}
	seg.size = goodEnd
	return r, nil
}

// evidenceTmp marks an evidence copy that is not complete yet. Open removes
// leftovers (a crash during the copy); they are never evidence.
const evidenceTmp = ".tmp"

// keepEvidence copies file from, starting at byte offset, to the name to,
// durably and all or nothing: the copy goes to a temporary name, is fsynced,
// renamed and the directory fsynced. On failure the temporary file is
// removed, so a full disk never leaves a partial (or 0-byte) copy that looks
// like evidence; the error says how much space the copy needs.
func keepEvidence(from string, offset int64, to string) error {
	err := writeFileAtomic(to, to+evidenceTmp, func(w io.Writer) error {
		src, err := os.Open(from)
		if err != nil {
			return err
		}
		defer src.Close()
		if _, err := src.Seek(offset, io.SeekStart); err != nil {
			return err
		}
		_, err = io.Copy(w, src)
		return err
	})
	if err == nil {
		return nil
	}
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		need := int64(-1)
		if st, serr := os.Stat(from); serr == nil {
			need = st.Size() - offset
		}
		return fmt.Errorf("%w: the copy needs %d bytes free in %s (%d available); free space and the log retries (or restart)",
			err, need, filepath.Dir(to), FreeBytes(filepath.Dir(to)))
	}
	return err
}

// FreeBytes is the space available to this process on dir's file system,
// -1 if unknown.
func FreeBytes(dir string) int64 {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return -1
	}
	return int64(st.Bavail) * int64(st.Bsize)
}

// removeStaleTemps deletes incomplete evidence copies a crash left behind.
func removeStaleTemps(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	removed := false
	for _, e := range entries {
		if n := e.Name(); strings.HasSuffix(n, evidenceTmp) && (strings.Contains(n, ".broken.") || strings.Contains(n, ".damaged.") || strings.Contains(n, ".repair")) {
			if err := os.Remove(filepath.Join(dir, n)); err != nil {
				return err
			}
			removed = true
		}
	}
	if removed {
		return syncDir(dir)
	}
	return nil
}
