package wal

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	twal "github.com/tidwall/wal"

	"github.com/holdfast/holdfast/internal/backoff"
)

// Options configure a Log. Zero values mean defaults; Open works on a copy
// and never changes the caller's struct.
type Options struct {
	// SegmentSize is the size at which a segment is closed and a new one
	// begun. The tail segment is held in memory (in a buffer that grows by
	// appending, so its capacity may reach about twice this; a record larger
	// than the segment is held whole), and so is the segment the reader is
	// in. Default 2 MiB: 8 MiB held 18 MB of a collector's live heap at
	// RFD 125's N=100 (BENCHMARKS.md, "WAL segments of 2 MiB").
	SegmentSize int
	// SegmentCacheSize is how many older segments are kept in memory for
	// reading. Default 1: the forwarder reads in order, one segment at a
	// time (a bisection's re-read of an earlier segment loads it again).
	SegmentCacheSize int
	// BudgetBytes is the disk budget: Append returns ErrFull while the log
	// holds this much or more (it can exceed it by at most one record). 0
	// means no budget. With a budget, the default SegmentSize is a quarter
	// of it (at most 2 MiB), and a SegmentSize over half of it is refused.
	BudgetBytes int64
	// ReserveBytes is free space the log leaves on its file system: Append
	// returns ErrFull (a *FullError with ReserveBytes set) rather than take
	// it, and accepts again once space is freed (a truncation, or an
	// operator). The collector's state store (Pebble) lives beside the
	// log and cannot fail a write safely, so the log must not take its
	// room. 0 means no reserve; the space is measured once per commit
	// group (statfs).
	ReserveBytes int64
	// TruncateSegments is how many segments TruncateThrough waits for
	// before it deletes any, unless space is wanted (the log failed, the
	// file system is low, or the log holds half its budget or more): then
	// it deletes whatever it can. Each deletion gives tidwall/wal a new
	// handle, which reads the whole tail segment back from disk into a new
	// buffer (up to SegmentSize bytes of garbage), so deleting four at a
	// time does that a quarter as often, for up to three more segments on
	// disk. Default 1.
	TruncateSegments int
	// MaxGroupRecords and MaxGroupBytes bound one commit group (one write,
	// one fsync). Defaults 4096 records and 32 MiB.
	MaxGroupRecords int
	MaxGroupBytes   int
	// SlowSync is the commit time above which a warning is logged.
	// Default 1 s.
	SlowSync time.Duration
	// Registerer takes the log's metrics; nil means none.
	Registerer prometheus.Registerer
	// Logger; nil means slog.Default().
	Logger *slog.Logger
	// RecoverMin and RecoverMax bound the backoff between attempts to
	// recover a failed log by itself (cut the failed write, re-check and
	// repair the tail, reopen): exponential with jitter, see
	// internal/backoff. Defaults 100 ms and 5 s.
	RecoverMin, RecoverMax time.Duration

	// commitHook, when set (by tests), runs before each group is written
	// and can fail it as a write or fsync would.
	commitHook func() error
	// syncedHook, when set (by tests), is told after each commit the size
	// every segment file the commit wrote has reached, durably (written,
	// fsynced, directory fsynced), before any of the commit's appends
	// return: the power-loss test rolls files back to these sizes.
	syncedHook func(segment string, size int64)
	// writtenHook, when set (by tests), runs after a group's bytes are
	// written and fsynced and before its bookkeeping; an error fails the
	// group as if its fsync had failed after the write.
	writtenHook func() error
}

const (
	// DefaultSegmentSize is Options.SegmentSize's default.
	DefaultSegmentSize = 2 << 20
	// keptBatchBytes: a commit batch whose largest group was at most this
	// is always kept (commitBatch).
	keptBatchBytes = 1 << 20
)

// commitBatch is the writer's tidwall/wal batch, reused from group to
// group. Batch.Clear keeps the buffer, so a burst's group (a collector's
// first scrapes, a producer's backlog: up to MaxGroupBytes) would hold its
// size for the life of the log, whatever follows: 8 MB of a collector's
// heap at RFD 125's N=100. The batch starts afresh at the first group under
// a quarter of the largest since it was made, once that was over
// keptBatchBytes: traffic of steady large groups (10,000-sample pages of
// over 1 MB) keeps its buffer, and a burst's goes when the burst ends.
type commitBatch struct {
	twal.Batch
	largest int64 // the largest group since the batch was made
}

// clear clears the batch after a group of size bytes.
func (b *commitBatch) clear(size int64) {
	b.Clear()
	b.largest = max(b.largest, size)
	if b.largest > keptBatchBytes && size < b.largest/4 {
		b.Batch, b.largest = twal.Batch{}, 0
	}
}

func (o Options) withDefaults() (Options, error) {
	if o.SegmentSize == 0 {
		o.SegmentSize = DefaultSegmentSize
		if o.BudgetBytes > 0 {
			// The tail segment is never truncated, so forwarded bytes in it
			// count against the budget until it fills: keep it a quarter of
			// the budget at most.
			o.SegmentSize = int(min(DefaultSegmentSize, max(64<<10, o.BudgetBytes/4)))
		}
	}
	if o.SegmentCacheSize == 0 {
		o.SegmentCacheSize = 1
	}
	if o.TruncateSegments <= 0 {
		o.TruncateSegments = 1
	}
	if o.MaxGroupRecords == 0 {
		o.MaxGroupRecords = 4096
	}
	if o.MaxGroupBytes == 0 {
		o.MaxGroupBytes = 32 << 20
	}
	if o.SlowSync == 0 {
		o.SlowSync = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.RecoverMin <= 0 {
		o.RecoverMin = 100 * time.Millisecond
	}
	if o.RecoverMax <= 0 {
		o.RecoverMax = 5 * time.Second
	}
	o.RecoverMax = max(o.RecoverMax, o.RecoverMin)
	switch {
	case o.SegmentSize < 4096:
		return o, fmt.Errorf("wal: SegmentSize %d is below the minimum of 4096", o.SegmentSize)
	case o.SegmentCacheSize < 1:
		return o, fmt.Errorf("wal: SegmentCacheSize %d must be at least 1", o.SegmentCacheSize)
	case o.BudgetBytes < 0:
		return o, fmt.Errorf("wal: BudgetBytes %d is negative", o.BudgetBytes)
	case o.MaxGroupRecords < 1 || o.MaxGroupBytes < 1:
		return o, errors.New("wal: MaxGroupRecords and MaxGroupBytes must be positive")
	case o.BudgetBytes > 0 && o.BudgetBytes < 2*int64(o.SegmentSize):
		return o, fmt.Errorf("wal: BudgetBytes %d is below twice the SegmentSize %d: the tail segment alone could keep the log full", o.BudgetBytes, o.SegmentSize)
	}
	return o, nil
}

// Log is a durable, checksummed record log. See the package documentation
// for the concurrency contract.
type Log struct {
	dir     string
	opts    Options
	log     *slog.Logger
	m       *metrics
	lock    *os.File
	twOpts  twal.Options
	reqs    chan *appendReq
	quit    chan struct{}
	stopped chan struct{} // closed when the writer goroutine has exited
	wake    chan struct{} // pokes the writer to schedule a recovery
	// freeing is set while a truncation started by a refused append runs
	// (freeWaiting); background waits for it in Close.
	freeing    atomic.Bool
	background sync.WaitGroup
	repair     *RepairReport

	// handle guards the tidwall handle against being swapped (truncation,
	// close) while appends or reads use it.
	handle struct {
		sync.RWMutex
		tw *twal.Log
	}
	// readMu serialises reads: tidwall/wal's Read mutates its segment
	// cache under a read lock (its issue 34).
	readMu sync.Mutex

	mu struct {
		sync.Mutex
		first, last uint64 // first == last+1 when empty
		size        int64  // bytes on disk in segment files
		segs        []segmentFile
		failed      error // set on a write or fsync error; cleared by recovery
		// lowSpace: the last commit group refused an append for
		// ReserveBytes. Like a failure or a full budget it lets a
		// truncation roll the tail (truncate.go), whose forwarded bytes
		// would otherwise hold the space until the segment fills.
		lowSpace   bool
		recoveries uint64
		recoverErr error  // the last failed recovery attempt
		through    uint64 // highest index TruncateThrough was given
		closed     bool
		notify     chan struct{} // closed and replaced after each commit
	}
}

type appendReq struct {
	frame []byte
	done  chan appendResult
}

type appendResult struct {
	index uint64
	err   error
}

// Open opens (creating if needed) the log in dir. It takes the directory's
// lock, verifies every segment, repairs a torn or zero-filled tail of the last
// segment (keeping the damaged file aside as *.broken.*) and fails with a
// *CorruptionError on damage anywhere else.
func Open(dir string, opts Options) (*Log, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("wal: creating %s: %w", dir, err)
	}
	if err := syncDir(filepath.Dir(dir)); err != nil {
		return nil, fmt.Errorf("wal: fsync of %s: %w", filepath.Dir(dir), err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	l := &Log{dir: dir, opts: opts, log: opts.Logger.With("wal", dir), lock: lock}
	fail := func(err error) (*Log, error) {
		lock.Close()
		return nil, err
	}
	if err := removeStaleTemps(dir); err != nil {
		return fail(fmt.Errorf("wal: removing incomplete evidence copies: %w", err))
	}
	segs, report, err := checkSegments(dir, l.log)
	if err != nil {
		return fail(err)
	}
	l.repair = report
	l.twOpts = twal.Options{
		SegmentSize:      opts.SegmentSize,
		SegmentCacheSize: opts.SegmentCacheSize,
		AllowEmpty:       true,
		LogFormat:        twal.Binary,
		// Reads return the bytes of the segment tidwall holds in memory
		// instead of a copy per record (reader.go says what that costs).
		NoCopy:    true,
		DirPerms:  0o750,
		FilePerms: 0o640,
	}
	tw, err := l.openHandle()
	if err != nil {
		return fail(err)
	}
	if len(segs) == 0 {
		// tidwall created the first segment file.
		if err := syncDir(dir); err != nil {
			tw.Close()
			return fail(err)
		}
		if segs, err = listSegments(dir); err != nil {
			tw.Close()
			return fail(err)
		}
	}
	first, err1 := tw.FirstIndex()
	last, err2 := tw.LastIndex()
	if err := errors.Join(err1, err2); err != nil {
		tw.Close()
		return fail(fmt.Errorf("wal: reading index range: %w", err))
	}
	if m, err := newMetrics(opts.Registerer); err != nil {
		tw.Close()
		return fail(fmt.Errorf("wal: registering metrics: %w", err))
	} else {
		l.m = m
	}
	if report != nil {
		l.m.repairs.Inc()
	}
	l.handle.tw = tw
	l.mu.first, l.mu.last, l.mu.segs = first, last, segs
	l.mu.notify = make(chan struct{})
	l.recount()
	l.m.budgetBytes.Set(float64(opts.BudgetBytes))
	l.reqs = make(chan *appendReq, opts.MaxGroupRecords)
	l.quit = make(chan struct{})
	l.stopped = make(chan struct{})
	l.wake = make(chan struct{}, 1)
	go l.writer()
	return l, nil
}

func (l *Log) openHandle() (*twal.Log, error) {
	o := l.twOpts // tidwall writes its defaults back into the options
	tw, err := twal.Open(l.dir, &o)
	if err != nil {
		return nil, fmt.Errorf("wal: opening %s: %w", l.dir, err)
	}
	return tw, nil
}

// recount refreshes size and gauges from the segment list. Callers hold mu
// or have exclusive access.
func (l *Log) recount() {
	var size int64
	for _, s := range l.mu.segs {
		size += s.size
	}
	l.mu.size = size
	l.m.sizeBytes.Set(float64(size))
	l.m.segments.Set(float64(len(l.mu.segs)))
	l.m.firstIndex.Set(float64(l.mu.first))
	l.m.lastIndex.Set(float64(l.mu.last))
}

// Repair returns what Open repaired, or nil.
func (l *Log) Repair() *RepairReport { return l.repair }

// Dir returns the log's directory.
func (l *Log) Dir() string { return l.dir }

// Append writes a record and returns its index once it is fsynced. Many
// goroutines may append at once: their records are written together with one
// write and one fsync (group commit). Errors: ErrFull (over budget, nothing
// written), ErrFailed (an earlier write or fsync failed), ErrClosed, or the
// context's error if it ends first (then the record may or may not have been
// written).
func (l *Log) Append(ctx context.Context, rec Record) (uint64, error) {
	if len(rec.Payload) == 0 || len(rec.Payload) > MaxPayload {
		return 0, fmt.Errorf("%w: payload of %d bytes (must be 1..%d)", ErrBadRecord, len(rec.Payload), MaxPayload)
	}
	if rec.Type == 0 {
		return 0, fmt.Errorf("%w: record type 0", ErrBadRecord)
	}
	req := &appendReq{frame: appendEnvelope(getFrame(headerSize+len(rec.Payload)), rec), done: make(chan appendResult, 1)}
	select {
	case l.reqs <- req:
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-l.quit:
		return 0, ErrClosed
	}
	select {
	case res := <-req.done:
		return res.index, res.err
	case <-ctx.Done():
		return 0, fmt.Errorf("wal: append outcome unknown: %w", ctx.Err())
	case <-l.stopped:
		select {
		case res := <-req.done:
			return res.index, res.err
		default:
			return 0, ErrClosed
		}
	}
}

// writer is the only goroutine that writes to the log. It takes whatever
// appends are waiting, up to the group limits, and commits them at once.
func (l *Log) writer() {
	defer close(l.stopped)
	var batch commitBatch
	group := make([]*appendReq, 0, l.opts.MaxGroupRecords)
	bo := backoff.Backoff{Min: l.opts.RecoverMin, Max: l.opts.RecoverMax}
	var retry *time.Timer
	var retryC <-chan time.Time
	for {
		// A failed log recovers by itself: retry with backoff until the
		// tail checks (or is repaired) and tidwall/wal opens again.
		if retryC == nil && l.failedErr() != nil {
			if d := bo.Next(); retry == nil {
				retry = time.NewTimer(d)
			} else {
				retry.Reset(d)
			}
			retryC = retry.C
		}
		group = group[:0]
		select {
		case r := <-l.reqs:
			group = append(group, r)
		case <-l.wake:
			continue
		case <-retryC:
			retryC = nil
			if err := l.recoverFailed(); err != nil {
				l.mu.Lock()
				l.mu.recoverErr = err
				l.mu.Unlock()
				l.log.Warn("wal: still failed; will retry", "err", err)
			} else {
				bo.Reset()
			}
			continue
		case <-l.quit:
			if retry != nil {
				retry.Stop()
			}
			l.refuseWaiting(ErrClosed)
			return
		}
		bytes := len(group[0].frame)
	fill:
		for len(group) < l.opts.MaxGroupRecords && bytes < l.opts.MaxGroupBytes {
			select {
			case r := <-l.reqs:
				group = append(group, r)
				bytes += len(r.frame)
			default:
				break fill
			}
		}
		l.commit(group, &batch)
	}
}

func (l *Log) failedErr() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.mu.failed
}

// setFailed puts the log in the failed state (appends refused) and wakes
// the writer so it schedules a recovery.
func (l *Log) setFailed(err error) {
	l.mu.Lock()
	if l.mu.failed == nil {
		l.mu.failed = err
	}
	l.m.failed.Set(1)
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

func (l *Log) refuseWaiting(err error) {
	for {
		select {
		case r := <-l.reqs:
			r.done <- appendResult{err: err}
		default:
			return
		}
	}
}

// framePool recycles envelope buffers: at high rates, allocating and zeroing
// a fresh buffer per record costs more CPU than the CRC.
var framePool sync.Pool

func getFrame(n int) []byte {
	if b, ok := framePool.Get().(*[]byte); ok && cap(*b) >= n {
		return (*b)[:0]
	}
	return make([]byte, 0, max(n, 4096))
}

func putFrame(b []byte) {
	// A 10,000-sample page record is ~1.1 MB: keep frames of that size
	// (the common case, not a rare one), not the rare huge ones.
	if cap(b) > 4<<20 {
		return
	}
	framePool.Put(&b)
}

func frameSize(frame []byte) int64 {
	return int64(uvarintLen(uint64(len(frame))) + len(frame))
}

func uvarintLen(x uint64) int {
	var buf [binary.MaxVarintLen64]byte
	return binary.PutUvarint(buf[:], x)
}

func (l *Log) commit(group []*appendReq, batch *commitBatch) {
	l.mu.Lock()
	failed, size, last := l.mu.failed, l.mu.size, l.mu.last
	tail := l.mu.segs[len(l.mu.segs)-1]
	l.mu.Unlock()
	if failed != nil {
		for _, r := range group {
			r.done <- appendResult{err: failed}
		}
		return
	}
	// Admit records while the log holds less than its budget; refuse the
	// rest without writing. The log can end a group over the budget by at
	// most one record, so a record larger than the budget still gets in
	// once the log has drained.
	admitted := group[:0]
	var added int64
	free := int64(-1)
	if l.opts.ReserveBytes > 0 {
		free = FreeBytes(l.dir)
	}
	lowSpace, refused := false, false
	defer func() {
		l.mu.Lock()
		l.mu.lowSpace = lowSpace
		l.mu.Unlock()
		if refused {
			l.freeWaiting()
		}
	}()
	for _, r := range group {
		fs := frameSize(r.frame)
		if b := l.opts.BudgetBytes; b > 0 && size+added >= b {
			l.m.fullRejections.Inc()
			refused = true
			r.done <- appendResult{err: &FullError{SizeBytes: size + added, RecordBytes: fs, BudgetBytes: b}}
			continue
		}
		if res := l.opts.ReserveBytes; free >= 0 && free-added-fs < res {
			if !lowSpace {
				// Before the refusal is answered: its caller may truncate
				// at once, and that truncation must see the low space to
				// roll the tail (wantRollLocked). Set only in the deferred
				// update, a truncation racing it missed the roll and freed
				// nothing (TestReserveLeavesRoomAndRollsTheTail failed so,
				// once, under a loaded CI run).
				l.mu.Lock()
				l.mu.lowSpace = true
				l.mu.Unlock()
			}
			lowSpace, refused = true, true
			l.m.fullRejections.Inc()
			r.done <- appendResult{err: &FullError{SizeBytes: size + added, RecordBytes: fs, BudgetBytes: l.opts.BudgetBytes, FreeBytes: free - added, ReserveBytes: res}}
			continue
		}
		added += fs
		admitted = append(admitted, r)
	}
	if len(admitted) == 0 {
		return
	}
	// Predict where tidwall/wal will start new segments (its writeBatch
	// cycles before a batch when the tail is over SegmentSize, and after any
	// entry that brings it to SegmentSize) so new files are known and the
	// directory is fsynced before anything is acknowledged.
	tailSize := tail.size
	var newSegs []segmentFile
	if tailSize > int64(l.opts.SegmentSize) {
		newSegs = append(newSegs, segmentFile{start: last + 1})
		tailSize = 0
	}
	for i, r := range admitted {
		idx := last + 1 + uint64(i)
		batch.Write(idx, r.frame)
		fs := frameSize(r.frame)
		tailSize += fs
		if n := len(newSegs); n > 0 {
			newSegs[n-1].size += fs
			newSegs[n-1].records++
		}
		if tailSize >= int64(l.opts.SegmentSize) {
			newSegs = append(newSegs, segmentFile{start: idx + 1})
			tailSize = 0
		}
	}
	began := time.Now()
	// The handle stays read-locked from the write through the bookkeeping:
	// a truncation (which reopens the handle and reloads the model from
	// disk) must not run in between, or it would load this group from disk
	// and the bookkeeping below would add it a second time.
	l.handle.RLock()
	err := l.write(&batch.Batch)
	if err == nil && len(newSegs) > 0 {
		err = syncDir(l.dir)
	}
	if err == nil && l.opts.writtenHook != nil {
		err = l.opts.writtenHook()
	}
	took := time.Since(began)
	batch.clear(added)
	// The batch copied the frames; they can serve the next appends.
	// (admitted shares group's array, so it is the list to walk.)
	for _, r := range admitted {
		putFrame(r.frame)
		r.frame = nil
	}
	if err != nil {
		l.handle.RUnlock()
		l.m.appendErrors.Inc()
		err = fmt.Errorf("%w: %v", ErrFailed, err)
		l.log.Error("wal: write or fsync failed; refusing appends and recovering by itself", "err", err)
		l.setFailed(err)
		for _, r := range admitted {
			r.done <- appendResult{err: err}
		}
		return
	}
	l.m.syncSeconds.Observe(took.Seconds())
	l.m.groupRecords.Observe(float64(len(admitted)))
	l.m.recordsAppended.Add(float64(len(admitted)))
	l.m.bytesAppended.Add(float64(added))
	if took > l.opts.SlowSync {
		l.log.Warn("wal: slow commit", "duration", took, "records", len(admitted), "bytes", added)
	}

	l.mu.Lock()
	segs := l.mu.segs
	inTail := added
	for _, s := range newSegs {
		inTail -= s.size
	}
	segs[len(segs)-1].size += inTail
	segs[len(segs)-1].records += uint64(len(admitted))
	for _, s := range newSegs {
		segs[len(segs)-1].records -= s.records
		s.name = segmentName(s.start)
		segs = append(segs, s)
	}
	l.mu.segs = segs
	l.mu.last = last + uint64(len(admitted))
	l.recount()
	close(l.mu.notify)
	l.mu.notify = make(chan struct{})
	var synced []segmentFile
	if l.opts.syncedHook != nil {
		synced = append(synced, segs[max(0, len(segs)-1-len(newSegs)):]...)
	}
	l.mu.Unlock()
	l.handle.RUnlock()
	for _, s := range synced {
		l.opts.syncedHook(s.name, s.size)
	}
	for i, r := range admitted {
		r.done <- appendResult{index: last + 1 + uint64(i)}
	}
}

// write writes and fsyncs a batch. The caller holds l.handle read-locked.
func (l *Log) write(batch *twal.Batch) error {
	if l.opts.commitHook != nil {
		if err := l.opts.commitHook(); err != nil {
			return err
		}
	}
	return l.handle.tw.WriteBatch(batch)
}

// Stats is a snapshot of the log's state.
type Stats struct {
	FirstIndex  uint64 // FirstIndex == LastIndex+1 when the log is empty
	LastIndex   uint64
	SizeBytes   int64
	BudgetBytes int64
	Segments    int
	Failed      error  // non-nil while the log is failed (it recovers by itself)
	Recoveries  uint64 // times a failed log recovered in this process
	// RecoverError is why the last attempt to recover a failed log failed
	// (e.g. no space for the evidence copy of a torn tail; it says how much).
	RecoverError error
}

// Full reports whether the log is at or over its budget.
func (s Stats) Full() bool { return s.BudgetBytes > 0 && s.SizeBytes >= s.BudgetBytes }

// Stats returns a snapshot of the log's state.
func (l *Log) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return Stats{FirstIndex: l.mu.first, LastIndex: l.mu.last, SizeBytes: l.mu.size,
		BudgetBytes: l.opts.BudgetBytes, Segments: len(l.mu.segs), Failed: l.mu.failed, Recoveries: l.mu.recoveries, RecoverError: l.mu.recoverErr}
}

// Close stops the writer (appends waiting get ErrClosed), closes the files,
// releases the lock and unregisters the metrics. Reads after Close fail.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.mu.closed {
		l.mu.Unlock()
		return nil
	}
	l.mu.closed = true
	close(l.mu.notify) // wake readers so they see the close
	l.mu.notify = make(chan struct{})
	l.mu.Unlock()
	close(l.quit)
	<-l.stopped
	l.background.Wait()
	l.handle.Lock()
	var err error
	if l.handle.tw != nil {
		err = l.handle.tw.Close()
		l.handle.tw = nil
	}
	l.handle.Unlock()
	if errors.Is(err, twal.ErrCorrupt) || l.failedErr() != nil {
		// A failed handle's close reports the failure again (or tidwall's
		// corrupt mark); the files are what Open checks and repairs.
		err = nil
	}
	l.m.unregister()
	return errors.Join(err, l.lock.Close())
}
