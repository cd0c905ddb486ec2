package wal

import (
	"errors"
	"fmt"
)

// SegmentReport is what Verify found in one segment file.
type SegmentReport struct {
	Name       string
	FirstIndex uint64
	Records    uint64
	Bytes      int64
	Err        error // *CorruptionError, or nil
}

// VerifyReport is what Verify found in a log directory.
type VerifyReport struct {
	Dir        string
	Segments   []SegmentReport
	FirstIndex uint64
	LastIndex  uint64 // FirstIndex-1 when there are no records
	Records    uint64
	Bytes      int64
	Problems   []error // every corruption and index gap, in order
}

// OK reports whether the log checked clean.
func (r *VerifyReport) OK() bool { return len(r.Problems) == 0 }

// Verify reads every segment of the log in dir, checking framing, checksums
// and the index continuity between segments, without changing anything and
// without taking the lock (so it can inspect a log in use; a record being
// appended at that moment can show up as a torn tail). Unlike Open it does
// not stop at the first problem.
func Verify(dir string) (*VerifyReport, error) {
	segs, err := listSegments(dir)
	if err != nil {
		return nil, err
	}
	rep := &VerifyReport{Dir: dir}
	for i, s := range segs {
		good, _, err := scanSegment(dir, s, nil)
		var ce *CorruptionError
		if err != nil && !errors.As(err, &ce) {
			return nil, err
		}
		sr := SegmentReport{Name: s.name, FirstIndex: s.start, Records: good, Bytes: s.size, Err: err}
		if i == 0 {
			rep.FirstIndex = s.start
		} else if prev := rep.Segments[i-1]; prev.FirstIndex+prev.Records != s.start {
			rep.Problems = append(rep.Problems, &CorruptionError{Dir: dir, Segment: s.name, Index: s.start,
				Err: fmt.Errorf("index gap: segment starts at %d, previous segment ends at %d", s.start, prev.FirstIndex+prev.Records-1)})
		}
		if err != nil {
			rep.Problems = append(rep.Problems, err)
		}
		rep.Segments = append(rep.Segments, sr)
		rep.Records += good
		rep.Bytes += s.size
	}
	if n := len(rep.Segments); n > 0 {
		last := rep.Segments[n-1]
		rep.LastIndex = last.FirstIndex + last.Records - 1
	}
	return rep, nil
}

// DumpEntry is one record as Dump sees it.
type DumpEntry struct {
	Index   uint64
	Segment string
	Offset  int64
	Size    int64 // bytes on disk, framing included
	Record  Record
}

// Dump calls fn for every intact record with from <= index <= to (to == 0
// means no upper bound), in order, reading the files directly. It stops at the
// first corruption and returns it. The record's payload is only valid during
// the call.
func Dump(dir string, from, to uint64, fn func(DumpEntry) error) error {
	segs, err := listSegments(dir)
	if err != nil {
		return err
	}
	for i, s := range segs {
		if i+1 < len(segs) && segs[i+1].start <= from {
			continue // every record of this segment is before from
		}
		if to != 0 && s.start > to {
			return nil
		}
		_, _, err := scanSegment(dir, s, func(fi frameInfo) error {
			if fi.Index < from {
				return nil
			}
			if to != 0 && fi.Index > to {
				return errStopScan
			}
			return fn(DumpEntry{Index: fi.Index, Segment: s.name, Offset: fi.Offset, Size: fi.Size, Record: fi.Record})
		})
		if err != nil {
			return err
		}
	}
	return nil
}
