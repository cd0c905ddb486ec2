package wal

import "fmt"

// CheckCheckpoint checks a reader's checkpoint (the last index it has
// durably consumed) against the log: the log must still hold checkpoint+1,
// or be empty right after it. A log whose first record is later than
// checkpoint+1 lost records nobody consumed (a deleted first segment, say):
// that is corruption, reported with the missing range, and must never be
// skipped. A checkpoint beyond the log's end is not checked here (the log
// directory was replaced; replaying it is the reader's choice).
func (l *Log) CheckCheckpoint(checkpoint uint64) error {
	l.mu.Lock()
	first, seg := l.mu.first, ""
	if len(l.mu.segs) > 0 {
		seg = l.mu.segs[0].name
	}
	l.mu.Unlock()
	return checkpointGap(l.dir, seg, first, checkpoint)
}

// CheckCheckpoint is Log.CheckCheckpoint for a Verify report.
func (r *VerifyReport) CheckCheckpoint(checkpoint uint64) error {
	if len(r.Segments) == 0 {
		return nil
	}
	return checkpointGap(r.Dir, r.Segments[0].Name, r.FirstIndex, checkpoint)
}

func checkpointGap(dir, seg string, first, checkpoint uint64) error {
	if first <= checkpoint+1 {
		return nil
	}
	return &CorruptionError{Dir: dir, Segment: seg, Index: checkpoint + 1,
		Err: fmt.Errorf("records %d..%d are missing: the checkpoint is %d but the log begins at %d (a segment file was deleted or lost); they were acknowledged and never forwarded",
			checkpoint+1, first-1, checkpoint, first)}
}
