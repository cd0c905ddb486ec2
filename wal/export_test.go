package wal

// SetCommitHook installs a function that runs before each commit group is
// written and can fail it as a write or fsync would.
func SetCommitHook(o *Options, hook func() error) { o.commitHook = hook }

// SetSyncedHook installs a function told, after each commit and before its
// appends return, the durable size of every segment file the commit wrote.
func SetSyncedHook(o *Options, hook func(segment string, size int64)) { o.syncedHook = hook }

// SetWrittenHook installs a function run after a group is written and
// fsynced, before its bookkeeping; an error fails the group after its bytes
// reached the file (an fsync error after the write).
func SetWrittenHook(o *Options, hook func() error) { o.writtenHook = hook }

// SegmentsModel returns the log's idea of its segment files (name, size).
func (l *Log) SegmentsModel() map[string]int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]int64{}
	for _, s := range l.mu.segs {
		name := s.name
		if _, dup := out[name]; dup {
			name += "#duplicate" // a segment listed twice must not compare equal
		}
		out[name] = s.size
	}
	return out
}

// SegmentsOnDisk lists the segment files in dir (name, size).
func SegmentsOnDisk(dir string) map[string]int64 {
	segs, err := listSegments(dir)
	if err != nil {
		panic(err)
	}
	out := map[string]int64{}
	for _, s := range segs {
		out[s.name] = s.size
	}
	return out
}

// SetAtomicCrashHook installs a function run inside every atomic file
// replacement (the tail roll, a repair's rewrite, evidence copies) after the
// temp file is synced and before the rename: a crash test's child kills
// itself there.
func SetAtomicCrashHook(hook func()) { atomicCrashHook = hook }
