package forwarder

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/cockroachdb/pebble"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/holdfast/holdfast/internal/backoff"
	"github.com/holdfast/holdfast/internal/sessdefs"
	pa "github.com/holdfast/holdfast/producerapi"
	"github.com/holdfast/holdfast/quarantine"
	"github.com/holdfast/holdfast/wal"
)

// Options configure a Forwarder. Zero values mean defaults.
type Options struct {
	// Addr is ClickHouse's native-protocol address, host:port, or several
	// separated by commas, tried in order (ConnOptions).
	Addr     string
	Database string // default "holdfast"
	Username string // default "default"
	Password string
	// Cluster, when set, names the ClickHouse cluster (<remote_servers>)
	// Addr belongs to: the schema is created ON CLUSTER with replicated
	// tables behind Distributed ones, and INSERTs wait for every shard
	// (cluster.go).
	Cluster string
	// TLS, when set, connects with TLS (the server's tcp_port_secure).
	TLS *tls.Config
	// Compression of the blocks on the wire: LZ4 by default (ConnOptions).
	Compression Compression

	BatchRows  int           // flush at this many rows (measurements plus new timeseries' fields); default 100,000
	BatchBytes int           // flush at this many bytes of WAL payload; default 64 MiB
	FlushAge   time.Duration // flush a non-empty batch this old; default 5 s

	InsertTimeout time.Duration // schema statements; INSERTs are bounded by the connection's read timeout (Dial: 2 min)
	DialTimeout   time.Duration // default 5 s
	BackoffMin    time.Duration // first retry delay; default 100 ms
	BackoffMax    time.Duration // retry delay cap; default 30 s

	// MaxSeenKeys bounds the set of timeseries keys whose fields were
	// written (key and fingerprint in 12-byte slots with no pointer for the
	// GC to follow, keyTable, grown as keys come); default 16,777,216,
	// 16–20 bytes a key. It should hold the fleet's timeseries: when it
	// starts over, every timeseries' fields rows are written again
	// (counted: holdfast_forwarder_written_keys_restarts_total). RFD 125
	// has 440,000 timeseries per collector at N=20, 2.2 M at N=100 and
	// 4.4 M at N=200: the default of 4,194,304 until issue 9 would start
	// over every period there, and `max`'s 200,000-VM step failed at 10.9
	// CPU-s per million samples (BENCHMARKS.md); the default of 262,144
	// before meant about seven fields rows per sample.
	MaxSeenKeys int
	// MaxCachedSeries bounds the read path's series cache (entry bytes to
	// name, key and fingerprint, ~150 bytes a series); default 262,144.
	// A miss costs a decode of the series entry, not a write.
	MaxCachedSeries int
	// Limits validate every sample read back from the WAL.
	Limits pa.Limits
	// SessionDir is the directory of page v3 sessions' definition files
	// (internal/sessdefs), beside the state store and with the same
	// lifetime: required.
	SessionDir string

	Registerer prometheus.Registerer
	Logger     *slog.Logger

	// Quarantine keeps the records the forwarder cannot deliver; the
	// collector shares its own. nil: one is opened over the state store.
	Quarantine *quarantine.Store

	// Conn, when set, is used instead of dialing Addr (tests, benchmarks).
	Conn driver.Conn

	// SerialDelivery delivers each batch before reading the next, instead
	// of beside it (pipeline.go): half the batch memory (one batch's
	// columns and client buffers instead of two), a slower drain.
	SerialDelivery bool

	// Portable forces the path every server takes (18.16 on) even on a
	// server that offers insert_deduplication_token (modern.go).
	Portable bool
}

func (o Options) withDefaults() (Options, error) {
	if o.SessionDir == "" {
		return o, errors.New("forwarder: Options.SessionDir is required (the directory of session definition files, beside the state store)")
	}
	if o.Database == "" {
		o.Database = "holdfast"
	}
	if o.Username == "" {
		o.Username = "default"
	}
	if o.BatchRows == 0 {
		o.BatchRows = 100_000
	}
	if o.BatchBytes == 0 {
		o.BatchBytes = 64 << 20
	}
	if o.FlushAge == 0 {
		o.FlushAge = 5 * time.Second
	}
	if o.InsertTimeout == 0 {
		o.InsertTimeout = 60 * time.Second
	}
	if o.DialTimeout == 0 {
		o.DialTimeout = 5 * time.Second
	}
	if o.BackoffMin == 0 {
		o.BackoffMin = 100 * time.Millisecond
	}
	if o.BackoffMax == 0 {
		o.BackoffMax = 30 * time.Second
	}
	if o.MaxSeenKeys == 0 {
		o.MaxSeenKeys = 1 << 24
	}
	if o.MaxCachedSeries == 0 {
		o.MaxCachedSeries = 1 << 18
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if err := ValidateDatabase(o.Database); err != nil {
		return o, err
	}
	if err := ValidateCluster(o.Cluster); err != nil {
		return o, err
	}
	var err error
	if o.Compression, err = ParseCompression(string(o.Compression)); err != nil {
		return o, err
	}
	switch {
	case o.Conn == nil && o.Addr == "":
		return o, errors.New("forwarder: no ClickHouse address")
	case o.BatchRows < 1 || o.BatchBytes < 1 || o.FlushAge < 0:
		return o, errors.New("forwarder: BatchRows, BatchBytes and FlushAge must be positive")
	case o.BackoffMin > o.BackoffMax:
		return o, errors.New("forwarder: BackoffMin exceeds BackoffMax")
	case o.MaxSeenKeys < 0 || o.MaxCachedSeries < 0:
		return o, errors.New("forwarder: MaxSeenKeys and MaxCachedSeries must be positive")
	}
	return o, nil
}

// Dial is DialWith for a plain-text connection to addr (one host:port or a
// comma-separated list).
func Dial(addr, user, password string, dialTimeout time.Duration) (driver.Conn, error) {
	return DialWith(ConnOptions{Addr: addr, Username: user, Password: password, DialTimeout: dialTimeout})
}

// Status is a snapshot of the forwarder's progress.
type Status struct {
	CheckpointIndex uint64    `json:"checkpoint_index"`
	LastInsertTime  time.Time `json:"last_insert_time"`
	LastInsertError string    `json:"last_insert_error,omitempty"`
	// StartupError is what the start-up check found wrong with the
	// address (a failed handshake, with a hint about the native port), so
	// /healthz can say so at once instead of after StallAfter. It is
	// cleared once an insert reaches ClickHouse.
	StartupError string `json:"startup_error,omitempty"`
	// Reached says ClickHouse answered at least once (a start-up or
	// re-check ping, or an insert): the collector's /-/ready waits for it
	// after its start-up grace.
	Reached             bool      `json:"reached"`
	LastErrorTime       time.Time `json:"last_error_time"`
	ConsecutiveFailures int       `json:"consecutive_failures"`
	LastProgress        time.Time `json:"last_progress"`
	QuarantinedRecords  uint64    `json:"quarantined_records"`
	BatchRecords        int       `json:"batch_records"`
	BatchRows           int       `json:"batch_rows"`
	// ServerVersion is what version() answered before the first insert
	// ("" until then); ModernPath says whether the forwarder sends
	// insert_deduplication_token (modern.go).
	ServerVersion string `json:"server_version,omitempty"`
	ModernPath    bool   `json:"modern_path"`
}

// Forwarder tails a WAL into ClickHouse. See the package documentation.
type Forwarder struct {
	opts  Options
	log   *slog.Logger
	wal   *wal.Log
	state *pebble.DB
	conn  driver.Conn
	own   bool // conn was dialed here and is closed by Close
	q     *quarantine.Store
	ownQ  bool // q was opened here and is closed by Close
	m     *metrics
	w     *writer
	kick  chan struct{}
	// inserting times the delivery attempt in progress (progress.go).
	inserting insertClock

	schemaReady bool              // touched by deliveries only, one at a time (pipeline.go)
	modern      bool              // likewise: tokens on (modern.go)
	pathChosen  bool              // likewise: choosePath ran once
	epoch       string            // this WAL's id in deduplication tokens
	holder      string            // this forwarder's id in the schema upgrade lock
	decoder     *pa.SampleDecoder // likewise
	series      *seriesCache      // likewise: version 2 series entries (series.go)
	scan        *scan2            // likewise: addRecord2's scratch space
	sess        *sessions         // the Run goroutine's: version 3 session dictionaries (sessions.go)
	defs        *sessdefs.Store   // their definitions; owned by the Run goroutine (Lookup and Sync from any)
	// The Run goroutine's: diskspace.go's scratch head and warning clock.
	roomHead        pa.Record3Head
	roomDefs        int    // the definitions in the record roomHead holds
	roomKey         []byte // scratch: its session key
	lastRoomWarning time.Time
	sessionFilesAt  time.Time // likewise: when the session file gauges were last set
	flight          *flight   // likewise: the delivery in flight (pipeline.go)
	spare           *batch    // likewise: the batch to fill next

	// afterInsert, when set by tests, runs after a batch is in ClickHouse
	// and before its checkpoint is written.
	afterInsert func()
	// afterRoomCheck, when set by tests, runs between a record's room
	// check and its reading (another process filling the disk then).
	afterRoomCheck func()

	mu struct {
		sync.Mutex
		status      Status
		flushTarget uint64
		progressed  chan struct{}  // closed and replaced when the checkpoint moves
		left        []leftProducer // ProducerLeft's, for the Run goroutine
		// running is set while Run runs, closed once Close was called: the
		// per-series arrays outside the Go heap are freed by whichever of
		// the two ends last, never while Run may read them.
		running, closed bool
	}
}

// New returns a forwarder for the log, keeping its checkpoint and quarantine
// in state. Call Run to start it and Close when done.
func New(log *wal.Log, state *pebble.DB, opts Options) (*Forwarder, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	f := &Forwarder{opts: opts, log: opts.Logger.With("component", "forwarder"), wal: log, state: state, conn: opts.Conn,
		kick: make(chan struct{}, 1)}
	if f.conn == nil {
		if f.conn, err = DialWith(ConnOptions{Addr: opts.Addr, Username: opts.Username, Password: opts.Password, DialTimeout: opts.DialTimeout, TLS: opts.TLS, Compression: opts.Compression}); err != nil {
			return nil, fmt.Errorf("forwarder: %w", err)
		}
		f.own = true
	}
	seenRestarts := new(atomic.Uint64) // the writer's, made before it for the metric
	if f.m, err = newMetrics(opts.Registerer, f.backlogRecords, func() float64 { return float64(seenRestarts.Load()) }); err != nil {
		f.Close()
		return nil, err
	}
	ckpt, err := LoadCheckpoint(state)
	if err != nil {
		f.Close()
		return nil, err
	}
	if err := log.CheckCheckpoint(ckpt); err != nil {
		// Records between the checkpoint and the WAL's first are gone:
		// starting would skip them silently.
		f.Close()
		return nil, fmt.Errorf("forwarder: %w", err)
	}
	renewEpoch := false
	if st := log.Stats(); ckpt > st.LastIndex {
		// The checkpoint is ahead of the log: the WAL directory was
		// replaced. Replaying all of it is safe (inserts are idempotent);
		// skipping would lose it.
		f.log.Warn("checkpoint is ahead of the WAL; replaying the whole WAL", "checkpoint", ckpt, "wal_first", st.FirstIndex, "wal_last", st.LastIndex)
		ckpt = st.FirstIndex - 1
		renewEpoch = true // its indexes started over: new tokens
	}
	if err := f.openQuarantine(state); err != nil {
		f.Close()
		return nil, err
	}
	if f.holder, err = loadHolderID(state); err != nil {
		f.Close()
		return nil, err
	}
	if f.epoch, err = loadDedupEpoch(state, renewEpoch); err != nil {
		f.Close()
		return nil, err
	}
	f.w = newWriter(f.conn, opts.Database, opts.MaxSeenKeys)
	f.w.seenKeys.offHeap = true
	f.w.seenRestarts = seenRestarts
	f.w.cluster = opts.Cluster
	f.w.deferSeen = true // the Run goroutine marks keys seen (pipeline.go)
	f.decoder = pa.NewSampleDecoder()
	f.series, f.scan = newSeriesCache(opts.MaxCachedSeries), &scan2{}
	if f.defs, err = sessdefs.Open(opts.SessionDir, sessdefs.Options{OnRepair: f.sessionFileRepaired}); err != nil {
		f.Close()
		return nil, fmt.Errorf("forwarder: %w", err)
	}
	f.sess = newSessions(state, f.defs)
	if err := f.sess.load(log.Stats().LastIndex); err != nil {
		f.Close()
		return nil, err
	}
	// Sessions the last run left waiting for the checkpoint to pass
	// their successor.
	if err := f.sweepSessions(ckpt); err != nil {
		f.Close()
		return nil, err
	}
	f.mu.status.CheckpointIndex = ckpt
	f.mu.status.QuarantinedRecords = f.q.Stats().Records
	f.mu.status.LastProgress = time.Now()
	f.mu.progressed = make(chan struct{})
	f.m.checkpoint.Set(float64(ckpt))
	return f, nil
}

// Close releases the connection (if the forwarder dialed it) and the metrics.
// Call it after Run has returned. Called while Run still runs (its context
// cancelled, say), the per-series arrays are freed when Run returns.
func (f *Forwarder) Close() error {
	if f.m != nil {
		f.m.unregister()
	}
	f.mu.Lock()
	f.mu.closed = true
	running := f.mu.running
	f.mu.Unlock()
	if !running {
		f.releaseArrays()
	} // else Run frees them as it returns
	if f.defs != nil {
		if err := f.defs.CloseAll(); err != nil {
			f.log.Error("closing session definition files", "err", err)
		}
	}
	if f.ownQ && f.q != nil {
		f.q.Close()
	}
	if f.own && f.conn != nil {
		return f.conn.Close()
	}
	return nil
}

// releaseArrays gives the per-series arrays outside the Go heap
// (internal/offheap) back to the OS. Only once Run is not running: a
// mapping freed under a reader may fault or read what the kernel put there
// since.
func (f *Forwarder) releaseArrays() {
	if f.sess != nil {
		f.sess.releaseAll()
	}
	if f.w != nil {
		f.w.seenKeys.release()
	}
}

// Status returns a snapshot of the forwarder's progress.
func (f *Forwarder) Status() Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.mu.status
}

// Flush asks the forwarder to deliver everything written to the WAL so far
// without waiting for the batch age, and returns once it is in ClickHouse (or
// quarantined) and checkpointed, or when ctx ends.
func (f *Forwarder) Flush(ctx context.Context) error {
	target, _ := f.wal.Notify()
	f.mu.Lock()
	if target > f.mu.flushTarget {
		f.mu.flushTarget = target
	}
	f.mu.Unlock()
	select {
	case f.kick <- struct{}{}:
	default:
	}
	for {
		f.mu.Lock()
		done, progressed := f.mu.status.CheckpointIndex >= target, f.mu.progressed
		f.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-progressed:
		case <-ctx.Done():
			return fmt.Errorf("forwarder: flush through index %d: %w", target, ctx.Err())
		}
	}
}

// batch is the forwarder's current batch: whole WAL records only, so the
// checkpoint after it is exact. Samples are copied into rows as records are
// read; the decoded pages are not kept.
type batch struct {
	rows    *rowSet
	indexes []uint64 // records whose samples are in rows, in order
	// refused lists, per record, the samples add refused as key
	// collisions (quarantined then): a rebuild skips exactly those.
	refused map[uint64][]int
	bytes   int
	started time.Time
	last    uint64 // last WAL index consumed, inserted or quarantined
}

func (b *batch) reset() {
	if b.rows == nil {
		b.rows = newRowSet()
	} else {
		b.rows.reset()
	}
	b.indexes, b.bytes = b.indexes[:0], 0
	clear(b.refused)
}

// Run tails the WAL from the checkpoint until ctx ends or the WAL is closed.
// It returns nil on ctx's end; a non-nil error means the forwarder cannot go
// on (the state store failed, the WAL failed), and the process should exit
// and be restarted: everything not checkpointed is replayed.
func (f *Forwarder) Run(ctx context.Context) error {
	f.mu.Lock()
	if f.mu.closed || f.mu.running {
		f.mu.Unlock()
		return errors.New("forwarder: Run after Close, or twice at once")
	}
	f.mu.running = true
	f.mu.Unlock()
	// First deferred, so it runs last: after the delivery in flight ended.
	defer func() {
		f.mu.Lock()
		f.mu.running = false
		closed := f.mu.closed
		f.mu.Unlock()
		if closed {
			f.releaseArrays()
		}
	}()
	if err := f.checkServer(ctx); err != nil {
		return err
	}
	ckpt := f.Status().CheckpointIndex
	// From the record after the checkpoint, never from the WAL's first:
	// if that is later, records are missing and walGap stops (New checked
	// too, but the WAL may have changed since).
	next := ckpt + 1
	r := f.wal.NewReader(next)
	readFailures := 0
	b := &batch{last: next - 1}
	b.reset()
	// A batch in flight when the last run stopped is cut at the same record
	// again, so its blocks are identical (inflight.go).
	cut, err := loadInflight(f.state)
	if err != nil {
		return err
	}
	if cut <= ckpt {
		cut = 0
	}
	var page pa.PageRecord
	var timer *time.Timer
	// Deliveries run beside reading (pipeline.go); whatever Run returns,
	// the one in flight ends first.
	dctx, dcancel := context.WithCancel(ctx)
	defer func() {
		dcancel()
		if f.flight != nil {
			<-f.flight.done
			f.flight, f.w.inflight = nil, nil
		}
	}()
	for {
		if ctx.Err() != nil {
			return nil
		}
		idx, rec, ok, err := r.Next()
		switch {
		case errors.Is(err, wal.ErrClosed):
			return nil
		case errors.Is(err, wal.ErrNotFound):
			if err := f.walGap(r); err != nil {
				return err
			}
			continue
		case errors.Is(err, wal.ErrRead):
			readFailures++
			if !f.waitReadRetry(ctx, readFailures, err) {
				return nil
			}
			continue
		case wal.IsCorrupt(err):
			pos := r.Position()
			if qerr := f.quarantineOrHold(ctx, QuarantinedRecord{Index: pos, Reason: err.Error()}, "corrupt"); qerr != nil {
				if ctx.Err() != nil {
					return nil
				}
				return qerr
			}
			b.last = pos
			r.Seek(pos + 1)
			continue
		case err != nil:
			return err
		case ok:
			readFailures = 0
			if need := f.stateWriteFor(rec); need > 0 && (!f.roomForState(need) || !f.reserveDefinitions(need)) {
				more, err := f.waitForRoom(ctx, dctx, &b, r, idx, need)
				if err != nil {
					return err
				}
				if !more {
					return nil
				}
				continue
			}
			if f.afterRoomCheck != nil {
				f.afterRoomCheck()
			}
			if err := f.add(ctx, b, idx, rec, &page); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			if b.rows.weight() >= f.opts.BatchRows || b.bytes >= f.opts.BatchBytes || (cut != 0 && b.last >= cut) {
				if err := f.startFlush(dctx, &b); err != nil {
					return err
				}
				cut = 0
			}
			continue
		}
		// Caught up with the log.
		last, changed := f.wal.Notify()
		if r.Position() <= last {
			continue
		}
		if f.flight != nil {
			// Nothing to read: wait for the delivery in flight, then
			// decide on the batch with the checkpoint it left.
			if err := f.join(); err != nil {
				return err
			}
			continue
		}
		if b.last > f.Status().CheckpointIndex && (len(b.indexes) == 0 || f.flushWanted() || time.Since(b.started) >= f.opts.FlushAge) {
			if err := f.startFlush(dctx, &b); err != nil {
				return err
			}
			continue
		}
		var wake <-chan time.Time
		if len(b.indexes) > 0 {
			wait := f.opts.FlushAge - time.Since(b.started)
			if timer == nil {
				timer = time.NewTimer(wait)
			} else {
				timer.Reset(wait)
			}
			wake = timer.C
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		case <-f.kick:
		case <-wake:
		}
	}
}

// noteFailure records a failed delivery attempt in the status.
func (f *Forwarder) noteFailure(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mu.status.LastInsertError = err.Error()
	f.mu.status.LastErrorTime = time.Now()
	f.mu.status.ConsecutiveFailures++
}

// backlogRecords is how many WAL records are not yet checkpointed.
func (f *Forwarder) backlogRecords() float64 {
	last, ckpt := f.wal.Stats().LastIndex, f.Status().CheckpointIndex
	if last <= ckpt {
		return 0
	}
	return float64(last - ckpt)
}

// flushWanted reports whether a Flush caller waits for more than the
// checkpoint covers. It is asked only once the reader has caught up, when
// the batch covers everything written so far.
func (f *Forwarder) flushWanted() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.mu.flushTarget > f.mu.status.CheckpointIndex
}

// add decodes a record into the batch's rows, or quarantines it if it
// cannot be decoded or holds an invalid sample. page is scratch space reused
// across records.
func (f *Forwarder) add(ctx context.Context, b *batch, idx uint64, rec wal.Record, page *pa.PageRecord) error {
	b.last = idx
	var handled bool
	var err error
	if isRecord3(rec) {
		var done bool
		if handled, done, err = f.addRecord3(ctx, b, idx, rec); done {
			return err // quarantined whole, or a failure of the state store
		}
	} else if handled, err = f.addRecord2(ctx, b, idx, rec); !handled {
		handled, err = f.addRecord1(ctx, b, idx, rec)
	}
	if handled {
		if err != nil {
			return err
		}
		if len(b.indexes) == 0 {
			b.started = time.Now()
		}
		b.indexes = append(b.indexes, idx)
		b.bytes += len(rec.Payload)
		return nil
	}
	if err := f.decode(rec, page); err != nil {
		if errors.Is(err, errDefinitionUnreadable) {
			return fmt.Errorf("forwarder: record %d: %w", idx, err) // as any failure of the state store
		}
		reason := "malformed"
		switch {
		case rec.Type != wal.TypePage:
			reason = "unknown_type"
		case errors.Is(err, pa.ErrInvalid):
			reason = "invalid"
		}
		return f.quarantineOrHold(ctx, QuarantinedRecord{Index: idx, Type: uint8(rec.Type), Payload: rec.Payload, Reason: err.Error()}, reason)
	}
	if len(b.indexes) == 0 {
		b.started = time.Now()
	}
	if refused := f.w.addSamples(b.rows, page.Samples, nil); len(refused) > 0 {
		if err := f.quarantineCollisions(ctx, idx, page, refused); err != nil {
			return err
		}
		b.noteRefused(idx, refused)
	}
	b.indexes = append(b.indexes, idx)
	b.bytes += len(rec.Payload)
	return nil
}

// decode opens a page record and validates every sample in it.
func (f *Forwarder) decode(rec wal.Record, page *pa.PageRecord) error {
	return f.decodeWith(f.decoder, rec, page)
}

// decodeWith is decode with the given decoder (a delivery has its own).
func (f *Forwarder) decodeWith(dec *pa.SampleDecoder, rec wal.Record, page *pa.PageRecord) error {
	if rec.Type != wal.TypePage {
		return fmt.Errorf("unknown record type %d", rec.Type)
	}
	clear(page.Samples) // drop references to the previous page's values
	if isRecord3(rec) {
		if err := decodeRecord3(f.defs, rec.Payload, page); err != nil {
			return err
		}
	} else if err := dec.DecodePageRecord(rec.Payload, page); err != nil {
		return err
	}
	for i := range page.Samples {
		if err := pa.Validate(&page.Samples[i], f.opts.Limits); err != nil {
			return fmt.Errorf("sample %d: %w", i, err)
		}
	}
	return nil
}

// flushWith delivers the batch, retrying transient failures forever (with
// capped, jittered exponential backoff) until ctx ends, then checkpoints and
// truncates the WAL. It runs as a delivery beside the Run goroutine, with
// fl's writer and decoder (pipeline.go); whoever joins it resets the batch.
func (f *Forwarder) flushWith(ctx context.Context, b *batch, fl *flight) error {
	f.mu.Lock()
	f.mu.status.BatchRecords, f.mu.status.BatchRows = len(b.indexes), b.rows.rows
	f.mu.Unlock()
	// Tokens (modern.go) need the same cut as replicated blocks do. Before
	// the first insert the path is not chosen yet: store it to be safe.
	if (f.opts.Cluster != "" || f.modern || !f.schemaReady) && len(b.indexes) > 0 {
		if err := storeInflight(f.state, b.last); err != nil {
			return err
		}
	}
	for attempt := 0; ; attempt++ {
		began := time.Now()
		f.inserting.start()
		err := f.deliver(ctx, fl, b.indexes, b.rows, b.refused)
		f.inserting.stop()
		if err == nil {
			f.m.insertSeconds.Observe(time.Since(began).Seconds())
			if b.rows.rows > 0 {
				f.mu.Lock()
				f.mu.status.StartupError = "" // ClickHouse answered after all
				f.mu.Unlock()
			}
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		if aerr := asAuthError(err, f.opts.Username); aerr != nil {
			return aerr // retrying cannot fix it; the WAL keeps the batch
		}
		err = handshakeHint(err)
		f.m.transientErrors.Inc()
		if needsSchema(err) {
			f.schemaReady = false
			// Kept batches have the old tables' columns: read them anew.
			f.w.batches.Clear()
		}
		delay := f.backoff(attempt)
		f.noteFailure(err)
		level := slog.LevelWarn
		if errors.Is(err, ErrSchemaMismatch) {
			level = slog.LevelError // an operator must look: no backoff fixes it
		}
		f.log.Log(ctx, level, "delivery failed; retrying", "err", err, "attempt", attempt+1, "retry_in", delay, "records", len(b.indexes), "rows", b.rows.rows)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
	}
	if f.afterInsert != nil && len(b.indexes) > 0 {
		f.afterInsert()
	}
	// Definitions the batch's records made are durable before the
	// checkpoint that passes them.
	if err := f.defs.Sync(); err != nil {
		return fmt.Errorf("forwarder: %w", err)
	}
	if err := storeCheckpoint(f.state, b.last); err != nil {
		return err
	}
	rows := b.rows.rows
	f.m.rowsInserted.Add(float64(rows))
	f.m.batchRows.Observe(float64(rows))
	f.m.batches.Inc()
	f.m.checkpoint.Set(float64(b.last))
	f.mu.Lock()
	f.m.recordsDone.Add(float64(b.last - f.mu.status.CheckpointIndex))
	f.mu.status.CheckpointIndex = b.last
	now := time.Now()
	if len(b.indexes) > 0 {
		f.mu.status.LastInsertTime = now
		f.mu.status.Reached = true
	}
	f.mu.status.LastProgress = now
	f.mu.status.ConsecutiveFailures = 0
	f.mu.status.LastInsertError = ""
	f.mu.status.BatchRecords, f.mu.status.BatchRows = 0, 0
	close(f.mu.progressed)
	f.mu.progressed = make(chan struct{})
	f.mu.Unlock()
	if _, err := f.wal.TruncateThrough(b.last); err != nil {
		return fmt.Errorf("forwarder: truncating WAL through %d: %w", b.last, err)
	}
	return nil
}

func (f *Forwarder) backoff(attempt int) time.Duration {
	// Half fixed, half random: retries from many collectors spread out.
	return backoff.Delay(f.opts.BackoffMin, f.opts.BackoffMax, attempt)
}

// deliver inserts the rows of the records at indexes. When ClickHouse
// rejects the data, it splits the records in halves, rebuilding their rows
// from the WAL, until it finds the records refused on their own; those are
// quarantined and the rest delivered. A transient error ends it (the caller
// retries the whole batch; rows already inserted are deduplicated by the
// tables).
func (f *Forwarder) deliver(ctx context.Context, fl *flight, indexes []uint64, rows *rowSet, refused map[uint64][]int) error {
	if len(indexes) == 0 {
		return nil
	}
	if !f.schemaReady {
		// InsertTimeout bounds each statement but not an upgrade's copy
		// of a whole table (see SchemaOptions).
		if _, err := EnsureSchemaWith(ctx, f.conn, f.opts.Database, SchemaOptions{StatementTimeout: f.opts.InsertTimeout, Holder: f.holder, Cluster: f.opts.Cluster}); err != nil {
			return err
		}
		if err := f.choosePath(ctx); err != nil {
			return err
		}
		f.schemaReady = true
	}
	if rows == nil {
		var err error
		if rows, err = f.rebuild(fl, indexes, refused); err != nil {
			return err
		}
	}
	token := ""
	if f.modern {
		token = dedupToken(f.epoch, indexes, "")
	}
	err := fl.dw.insertTokened(ctx, rows, token)
	if err == nil || !IsRejected(err) {
		return err
	}
	fl.dw.bisected = true
	f.m.rejectedInserts.Inc()
	if len(indexes) == 1 {
		payload, rerr := f.reread(indexes[0])
		if rerr != nil {
			payload = nil
		}
		return f.quarantine(QuarantinedRecord{Index: indexes[0], Type: uint8(wal.TypePage), Payload: payload,
			Reason: "rejected by ClickHouse: " + err.Error()}, "rejected")
	}
	mid := len(indexes) / 2
	if err := f.deliver(ctx, fl, indexes[:mid], nil, refused); err != nil {
		return err
	}
	return f.deliver(ctx, fl, indexes[mid:], nil, refused)
}

// rebuild decodes records again from the WAL (they are there until the
// checkpoint passes them) into a fresh row set.
func (f *Forwarder) rebuild(fl *flight, indexes []uint64, refused map[uint64][]int) (*rowSet, error) {
	rs := newRowSet()
	var page pa.PageRecord
	for _, idx := range indexes {
		payload, err := f.reread(idx)
		if err != nil {
			return nil, err
		}
		if err := f.decodeWith(fl.dec, wal.Record{Type: wal.TypePage, Payload: payload}, &page); err != nil {
			return nil, fmt.Errorf("forwarder: record %d decoded before but not now: %w", idx, err)
		}
		// Collisions were decided and quarantined when the record was
		// first read; the key cache may have changed since (a sub-insert
		// cleared it, a quarantined half never registered its keys).
		fl.dw.addSamplesExcept(rs, page.Samples, refused[idx])
	}
	return rs, nil
}

// reread fetches a record's payload from the WAL.
func (f *Forwarder) reread(index uint64) ([]byte, error) {
	r := f.wal.NewReader(index)
	_, rec, ok, err := r.Next()
	if err != nil || !ok {
		return nil, fmt.Errorf("forwarder: re-reading record %d: ok=%v %v", index, ok, err)
	}
	return rec.Payload, nil
}
