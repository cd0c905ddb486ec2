package wal

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"
)

// RepairReport describes a repair Open made to the last segment.
type RepairReport struct {
	Segment      string // file name of the repaired segment
	BrokenCopy   string // path of the untouched copy kept as evidence
	KeptBytes    int64  // bytes that checked and were kept
	RemovedBytes int64  // bytes cut from the tail
	KeptRecords  uint64 // records kept in the segment
	Cause        error  // what was wrong at KeptBytes
}

// checkSegments verifies every segment's frames and checksums and that the
// segments' index ranges follow each other without gaps. Damage in the last
// segment is repaired (see repairTail); damage anywhere else is returned as a
// *CorruptionError and nothing is changed.
func checkSegments(dir string, log *slog.Logger) ([]segmentFile, *RepairReport, error) {
	segs, err := listSegments(dir)
	if err != nil {
		return nil, nil, err
	}
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

// repairTail keeps a copy of the damaged segment (NAME.broken.UNIXNANO, which
// tidwall/wal ignores), then truncates the segment to its last good frame and
// fsyncs the file and the directory. Only the last segment is ever repaired:
// a torn or zero-filled tail is what a crash during an append leaves behind.
func repairTail(dir string, seg *segmentFile, goodEnd int64, cause error) (*RepairReport, error) {
	path := filepath.Join(dir, seg.name)
	broken := fmt.Sprintf("%s.broken.%d", path, time.Now().UnixNano())
	if err := copyFileSynced(path, broken); err != nil {
		return nil, fmt.Errorf("wal: keeping a copy of damaged %s before repair: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	if err := f.Truncate(goodEnd); err != nil {
		f.Close()
		return nil, fmt.Errorf("wal: truncating %s to %d bytes: %w", path, goodEnd, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, fmt.Errorf("wal: fsync of repaired %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
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

func copyFileSynced(from, to string) error {
	src, err := os.Open(from)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o640)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return err
	}
	if err := dst.Sync(); err != nil {
		dst.Close()
		return err
	}
	return dst.Close()
}
