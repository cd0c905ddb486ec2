package collector

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/cockroachdb/pebble"

	"github.com/holdfast/holdfast/forwarder"
	"github.com/holdfast/holdfast/internal/state"
	pa "github.com/holdfast/holdfast/producerapi"
	"github.com/holdfast/holdfast/quarantine"
	"github.com/holdfast/holdfast/wal"
)

var collectorIDKey = []byte("collector/id")

// Collector collects pages from producers into its WAL and forwards the WAL
// into ClickHouse. See the package documentation.
type Collector struct {
	opts    Options
	log     *slog.Logger
	id      string
	wal     *wal.Log
	state   *pebble.DB
	fwd     *forwarder.Forwarder
	q       *quarantine.Store // shared with fwd
	maxRec  int               // largest WAL payload a page is written as: wal.MaxPayload (lowered by tests)
	qFault  func() error      // tests: a failing quarantine write (nil in production)
	wFault  func() error      // tests: a failing WAL append of a page record (nil in production)
	m       *metrics
	mm      *memMetrics
	mem     *inflight // bytes of pages in flight, all producer loops together
	schemas *pa.SchemaRegistry
	series  seriesCache // series of version 2 pages that passed the checks
	http    *http.Client
	started time.Time
	appends appendTimes
	loops   sync.WaitGroup
	// assignMu serialises changes of the assigned set (registry refresh,
	// admin API) so the cache and the running loops agree.
	assignMu sync.Mutex

	mu struct {
		sync.Mutex
		producers map[string]*producer
		runCtx    context.Context // set while Run runs
		// runStop cancels the last Run, and runDone is closed when it has
		// returned: Close stops and waits for a Run still going.
		runStop  context.CancelFunc
		runDone  chan struct{}
		registry RegistryStatus
		walFull  bool
		draining bool
		// departed producers' last status (departed.go)
		departed map[string]DepartedProducer
		// assigned producers not started because of MaxProducers
		overCap    int
		overCapMsg string
	}
}

// walTruncateSegments is how many forwarded WAL segments the collector
// lets gather before deleting them (wal.Options.TruncateSegments): each
// deletion reads the WAL's tail segment back into memory, and three more
// segments on disk (6 MiB by default) are cheaper than that garbage at
// every segment. The log deletes at once when space is wanted (half its
// budget, low disk, a refused append): see wal.Options.TruncateSegments.
const walTruncateSegments = 4

// Open opens the data directory (WAL, state), loads or creates the collector
// id and prepares the forwarder. It does not contact producers or ClickHouse:
// a collector starts with both unreachable.
func Open(opts Options) (*Collector, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	c := &Collector{opts: opts, log: opts.Logger, schemas: pa.NewSchemaRegistry(), started: time.Now(), maxRec: wal.MaxPayload,
		http: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4, IdleConnTimeout: 90 * time.Second, ResponseHeaderTimeout: opts.RequestTimeout}}}
	c.mu.producers = map[string]*producer{}
	ok := false
	defer func() {
		if !ok {
			c.Close()
		}
	}()
	if err := os.MkdirAll(opts.DataDir, 0o750); err != nil {
		return nil, err
	}
	if c.wal, err = wal.Open(filepath.Join(opts.DataDir, "wal"), wal.Options{BudgetBytes: opts.WALBudgetBytes, ReserveBytes: max(opts.WALReserveBytes, 0),
		TruncateSegments: walTruncateSegments, Registerer: opts.Registerer, Logger: opts.Logger}); err != nil {
		return nil, err
	}
	if c.state, err = state.Open(filepath.Join(opts.DataDir, "state"), opts.Logger); err != nil {
		return nil, err
	}
	if c.id, err = loadID(c.state, opts.CollectorID); err != nil {
		return nil, err
	}
	c.log = opts.Logger.With("collector", c.id)
	if c.q, err = quarantine.Open(c.state, quarantine.Options{BudgetBytes: opts.QuarantineBudgetBytes, Registerer: opts.Registerer, Logger: c.log}); err != nil {
		return nil, err
	}
	fo := opts.Forwarder
	fo.Registerer, fo.Logger, fo.Quarantine = opts.Registerer, c.log, c.q
	fo.SessionDir = filepath.Join(opts.DataDir, "sessions")
	if c.fwd, err = forwarder.New(c.wal, c.state, fo); err != nil {
		return nil, err
	}
	if c.m, err = newMetrics(opts.Registerer, c.Checkpoint, func() float64 { return c.fwd.InsertInProgress().Seconds() }, c.readyGauge); err != nil {
		return nil, err
	}
	if c.mm, err = newMemMetrics(opts.Registerer); err != nil {
		return nil, err
	}
	c.mem = &inflight{max: opts.MaxInflightBytes, gauge: c.mm.inflight, waits: c.mm.inflightWait}
	c.mm.inflightMax.Set(float64(opts.MaxInflightBytes))
	for _, p := range opts.Producers {
		sp := newProducer(p)
		sp.static = true
		c.mu.producers[p.ID] = sp
	}
	// Before quorum: start from the assignment this collector last had.
	cached, err := loadAssignment(c.state)
	if err != nil {
		return nil, err
	}
	cached, refused := capAssignment(cached, opts.Producers, opts.MaxProducers)
	for _, p := range cached {
		if _, ok := c.mu.producers[p.ID]; !ok {
			c.mu.producers[p.ID] = newProducer(p)
		}
	}
	c.noteOverCapLocked(refused, "cached assignment") // no other goroutine yet
	if len(cached) > 0 {
		c.log.Info("starting from the cached assignment", "producers", len(cached))
	}
	c.mu.registry.URL = opts.RegistryURL
	c.m.producers.Set(float64(len(c.mu.producers)))
	ok = true
	return c, nil
}

// loadID returns the collector id: the configured one (stored for next
// time), else the stored one, else a new random one (stored).
func loadID(db *pebble.DB, configured string) (string, error) {
	v, closer, err := db.Get(collectorIDKey)
	stored := ""
	switch {
	case err == nil:
		stored = string(v)
		closer.Close()
	case !errors.Is(err, pebble.ErrNotFound):
		return "", fmt.Errorf("collector: reading id: %w", err)
	}
	id := configured
	if id == "" {
		id = stored
	}
	if id == "" {
		host, _ := os.Hostname()
		var r [4]byte
		rand.Read(r[:])
		id = fmt.Sprintf("%s-%x", host, r)
	}
	if id != stored {
		if err := db.Set(collectorIDKey, []byte(id), pebble.Sync); err != nil {
			return "", fmt.Errorf("collector: storing id: %w", err)
		}
	}
	return id, nil
}

// ID returns the collector's id, which names its cursor at every producer.
func (c *Collector) ID() string { return c.id }

// Run collects and forwards until ctx ends (or Close is called), then
// drains: producer loops stop (acknowledging pages already in the WAL), the
// forwarder gets DrainTimeout to deliver the backlog, and Run returns. What
// is not delivered stays in the WAL for the next start. A non-nil error
// means the forwarder failed.
func (c *Collector) Run(ctx context.Context) error {
	ctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	c.mu.Lock()
	c.mu.runStop, c.mu.runDone = stop, done
	c.mu.Unlock()
	defer close(done)
	defer stop()
	fctx, stopForwarder := context.WithCancel(context.Background())
	defer stopForwarder()
	fdone := make(chan error, 1)
	go func() { fdone <- c.fwd.Run(fctx) }()

	pctx, stopProducers := context.WithCancel(ctx)
	c.mu.Lock()
	c.mu.runCtx = pctx
	for _, p := range c.mu.producers {
		c.startLocked(p)
	}
	n := len(c.mu.producers)
	c.mu.Unlock()
	regDone := make(chan struct{})
	if c.opts.RegistryURL != "" {
		go func() { defer close(regDone); c.runRegistry(pctx) }()
	} else {
		close(regDone)
	}
	c.log.Info("collector running", "producers", n, "registry", c.opts.RegistryURL, "data_dir", c.opts.DataDir)

	var err error
	select {
	case <-ctx.Done():
	case err = <-fdone:
		fdone <- err // for the drain below
		c.log.Error("forwarder stopped; stopping collection", "err", err)
	}
	c.log.Info("shutdown: stopping collection loops")
	stopProducers()
	<-regDone
	c.assignMu.Lock() // no loop starts after this
	c.loops.Wait()
	c.assignMu.Unlock()
	c.log.Info("shutdown: collection loops stopped; every page in the WAL is acknowledged")
	c.deregister()
	c.mu.Lock()
	c.mu.draining = true
	c.mu.Unlock()
	if err == nil {
		c.log.Info("shutdown: flushing the backlog to ClickHouse", "backlog_records", c.Checkpoint().BacklogRecords, "timeout", c.opts.DrainTimeout)
		dctx, cancel := context.WithTimeout(context.Background(), c.opts.DrainTimeout)
		if ferr := c.fwd.Flush(dctx); ferr != nil {
			c.log.Warn("shutdown: backlog not fully delivered; it stays in the WAL", "err", ferr, "backlog_records", c.Checkpoint().BacklogRecords)
		} else {
			c.log.Info("shutdown: backlog delivered")
		}
		cancel()
	}
	stopForwarder()
	if ferr := <-fdone; err == nil {
		err = ferr
	}
	return err
}

// Close closes the forwarder, WAL and state. A Run still going is stopped
// and waited for first (its drain takes up to DrainTimeout): a delivery in
// flight must not write to a closed state store, which Pebble answers with a
// panic.
func (c *Collector) Close() error {
	c.mu.Lock()
	stop, done := c.mu.runStop, c.mu.runDone
	c.mu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
	var errs []error
	if c.fwd != nil {
		errs = append(errs, c.fwd.Close())
	}
	if c.m != nil {
		c.m.set.Unregister()
	}
	if c.mm != nil {
		c.mm.set.Unregister()
	}
	if c.q != nil {
		errs = append(errs, c.q.Close())
	}
	if c.wal != nil {
		errs = append(errs, c.wal.Close())
	}
	if c.state != nil {
		errs = append(errs, c.state.Close())
	}
	return errors.Join(errs...)
}

// Flush forwards everything in the WAL now and returns once it is in
// ClickHouse.
func (c *Collector) Flush(ctx context.Context) error { return c.fwd.Flush(ctx) }

// Checkpoint describes the WAL and the forwarder's progress through it.
type Checkpoint struct {
	WALFirstIndex     uint64    `json:"wal_first_index"`
	WALLastIndex      uint64    `json:"wal_last_index"`
	CheckpointIndex   uint64    `json:"checkpoint_index"`
	BacklogRecords    uint64    `json:"backlog_records"`
	BacklogBytes      int64     `json:"backlog_bytes"` // estimated from the average record size on disk
	WALSizeBytes      int64     `json:"wal_size_bytes"`
	WALBudgetBytes    int64     `json:"wal_budget_bytes"`
	OldestUnforwarded float64   `json:"oldest_unforwarded_age_seconds"` // 0 without a backlog
	LastInsertTime    time.Time `json:"last_insert_time"`
	LastInsertError   string    `json:"last_insert_error,omitempty"`
	// InsertInProgress: how long the current ClickHouse insert has been
	// running (0: none). A hung server shows here long before the insert
	// times out and last_insert_error says anything.
	InsertInProgress   float64 `json:"insert_in_progress_seconds"`
	QuarantinedRecords uint64  `json:"quarantined_records"`
}

// Checkpoint returns the WAL's range and the forwarder's checkpoint.
func (c *Collector) Checkpoint() Checkpoint {
	ws, fs := c.wal.Stats(), c.fwd.Status()
	cp := Checkpoint{WALFirstIndex: ws.FirstIndex, WALLastIndex: ws.LastIndex, CheckpointIndex: fs.CheckpointIndex,
		WALSizeBytes: ws.SizeBytes, WALBudgetBytes: ws.BudgetBytes, LastInsertTime: fs.LastInsertTime,
		LastInsertError: fs.LastInsertError, QuarantinedRecords: fs.QuarantinedRecords, InsertInProgress: c.fwd.InsertInProgress().Seconds()}
	if ws.LastIndex > fs.CheckpointIndex {
		cp.BacklogRecords = ws.LastIndex - fs.CheckpointIndex
		if held := ws.LastIndex + 1 - ws.FirstIndex; held > 0 {
			cp.BacklogBytes = int64(float64(ws.SizeBytes) * float64(min(cp.BacklogRecords, held)) / float64(held))
		}
		cp.OldestUnforwarded = time.Since(c.appends.timeOf(fs.CheckpointIndex+1, c.started)).Seconds()
	}
	c.appends.forget(fs.CheckpointIndex)
	return cp
}

// Status is the collector's state and per-producer status.
type Status struct {
	CollectorID string           `json:"collector_id"`
	State       string           `json:"state"` // running, backpressure (WAL over budget), wal_failed, draining
	WALFull     bool             `json:"wal_full"`
	WALFailed   string           `json:"wal_failed,omitempty"`
	Forwarder   forwarder.Status `json:"forwarder"`
	Checkpoint  Checkpoint       `json:"checkpoint"`
	Registry    *RegistryStatus  `json:"registry,omitempty"`
	Memory      MemoryStatus     `json:"memory"`
	Quarantine  quarantine.Stats `json:"quarantine"`
	Producers   []ProducerStatus `json:"producers"`
	// Departed: producers that left, most recent first, with why
	// (departed.go); kept for Options.DepartedRetention.
	Departed []DepartedProducer `json:"departed,omitempty"`
}

// Status returns a snapshot.
func (c *Collector) Status() Status {
	st := Status{CollectorID: c.id, State: "running", Forwarder: c.fwd.Status(), Checkpoint: c.Checkpoint(), Quarantine: c.q.Stats()}
	if err := c.wal.Stats().Failed; err != nil {
		st.WALFailed = err.Error()
	}
	c.mu.Lock()
	st.WALFull = c.mu.walFull
	draining := c.mu.draining
	st.Memory = c.memoryStatusLocked()
	for _, p := range c.mu.producers {
		st.Producers = append(st.Producers, p.status())
	}
	st.Departed = c.departedLocked()
	if c.opts.RegistryURL != "" {
		rs := c.mu.registry
		st.Registry = &rs
	}
	c.mu.Unlock()
	sort.Slice(st.Producers, func(i, j int) bool { return st.Producers[i].ID < st.Producers[j].ID })
	switch {
	case draining:
		st.State = "draining"
	case st.WALFailed != "":
		st.State = "wal_failed"
	case st.WALFull:
		st.State = "backpressure"
	}
	return st
}

// Health says whether the collector is doing its job, and if not, why:
// the WAL refuses appends (failed or over budget), the ClickHouse address
// failed the forwarder's start-up check (until an insert succeeds), or the
// forwarder has made no progress for StallAfter while a backlog exists.
func (c *Collector) Health() (bool, []string) {
	var why []string
	ws, fs := c.wal.Stats(), c.fwd.Status()
	if ws.Failed != nil {
		msg := "WAL refuses appends (pages stay with the producers; it retries by itself): " + ws.Failed.Error()
		if ws.RecoverError != nil {
			msg += "; last retry: " + ws.RecoverError.Error()
		}
		why = append(why, msg)
	}
	c.mu.Lock()
	full := c.mu.walFull
	c.mu.Unlock()
	if full {
		why = append(why, fmt.Sprintf("WAL over its budget (%d of %d bytes): pages are not acknowledged", ws.SizeBytes, ws.BudgetBytes))
	}
	if qs := c.q.Stats(); qs.Full {
		why = append(why, fmt.Sprintf("quarantine full (%d of %d bytes, %d entries): refused samples are counted in holdfast_quarantine_overflow_total but not kept (%d so far) and the forwarder holds at a record it cannot keep; see `holdfast quarantine list`, free room with `holdfast quarantine delete`", qs.Bytes, qs.BudgetBytes, qs.Entries, qs.Overflow))
	}
	if fs.StartupError != "" {
		// A wrong address does not heal by waiting: say so now, not after
		// StallAfter. Collection into the WAL goes on meanwhile.
		why = append(why, "ClickHouse address failed the start-up check (collecting into the WAL meanwhile): "+fs.StartupError)
	}
	if why1 := c.insertHung(); why1 != "" {
		why = append(why, why1)
	}
	if ws.LastIndex > fs.CheckpointIndex && time.Since(fs.LastProgress) > c.opts.StallAfter {
		msg := fmt.Sprintf("forwarder made no progress for %s with %d records waiting", time.Since(fs.LastProgress).Round(time.Second), ws.LastIndex-fs.CheckpointIndex)
		if fs.LastInsertError != "" {
			msg += ": " + fs.LastInsertError
		}
		why = append(why, msg)
	}
	return len(why) == 0, why
}

func (c *Collector) setWALFull(full bool) {
	c.mu.Lock()
	changed := c.mu.walFull != full
	c.mu.walFull = full
	c.mu.Unlock()
	if changed {
		if full {
			c.m.walFull.Set(1)
			c.log.Warn("WAL over its budget: not acknowledging pages until the forwarder frees space")
		} else {
			c.m.walFull.Set(0)
			c.log.Info("WAL back under its budget: collecting again")
		}
	}
}

// appendTimes remembers when WAL indexes were appended (one entry per
// append group per second at most), to tell the age of the oldest
// un-forwarded record.
type appendTimes struct {
	mu      sync.Mutex
	entries []appendTime // increasing index
}

type appendTime struct {
	index uint64
	at    time.Time
}

func (a *appendTimes) note(index uint64, at time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if n := len(a.entries); n > 0 && at.Sub(a.entries[n-1].at) < time.Second {
		return
	}
	if len(a.entries) >= 1<<16 {
		a.entries = append(a.entries[:0], a.entries[len(a.entries)/2:]...)
	}
	a.entries = append(a.entries, appendTime{index, at})
}

// timeOf returns when index was appended, at second precision; for records
// from before this process started it returns fallback.
func (a *appendTimes) timeOf(index uint64, fallback time.Time) time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	i := sort.Search(len(a.entries), func(i int) bool { return a.entries[i].index > index })
	if i == 0 {
		return fallback
	}
	return a.entries[i-1].at
}

func (a *appendTimes) forget(through uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	i := sort.Search(len(a.entries), func(i int) bool { return a.entries[i].index > through })
	if i > 1 {
		a.entries = append(a.entries[:0], a.entries[i-1:]...)
	}
}
