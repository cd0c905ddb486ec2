package quarantine

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/cockroachdb/pebble"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/holdfast/holdfast/internal/promutil"
	"github.com/holdfast/holdfast/internal/state"
)

// DefaultBudgetBytes is the bound of a Store whose Options leave it zero.
const DefaultBudgetBytes = 256 << 20

// ErrNotFound is returned for an id the store does not hold.
var ErrNotFound = errors.New("quarantine: no such entry")

// ErrFull is returned by PutAll when the entries do not fit the budget.
var ErrFull = errors.New("quarantine: full")

// Options configure a Store. Zero values mean defaults.
type Options struct {
	BudgetBytes int64 // default DefaultBudgetBytes; negative: no bound
	Registerer  prometheus.Registerer
	Logger      *slog.Logger
}

// Stats describe the store.
type Stats struct {
	Entries     uint64 `json:"entries"`
	Samples     uint64 `json:"samples"` // entries of KindSample
	Records     uint64 `json:"records"` // entries of KindRecord
	Bytes       int64  `json:"bytes"`
	BudgetBytes int64  `json:"budget_bytes"` // 0: no bound
	Full        bool   `json:"full"`         // an entry did not fit (until entries are removed), or the store is at its bound
	Overflow    uint64 `json:"overflow"`     // entries not stored for lack of room since start
	LastReason  string `json:"last_reason,omitempty"`
}

// Store is the quarantine. See the package documentation.
type Store struct {
	db     *pebble.DB
	budget int64
	log    *slog.Logger
	m      *metrics

	mu struct {
		sync.Mutex
		next     uint64 // next id
		entries  uint64
		samples  uint64
		records  uint64
		bytes    int64
		overflow uint64
		full     bool
		last     string
	}
}

// Open opens the quarantine in db, moving entries of older builds into it
// and counting what it holds.
func Open(db *pebble.DB, opts Options) (*Store, error) {
	if opts.BudgetBytes == 0 {
		opts.BudgetBytes = DefaultBudgetBytes
	}
	if opts.BudgetBytes < 0 {
		opts.BudgetBytes = 0
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Store{db: db, budget: opts.BudgetBytes, log: opts.Logger}
	s.mu.next = 1
	if err := s.migrate(); err != nil {
		return nil, err
	}
	if err := s.count(); err != nil {
		return nil, err
	}
	var err error
	if s.m, err = newMetrics(opts.Registerer); err != nil {
		return nil, err
	}
	s.m.budget.Set(float64(s.budget))
	s.publish()
	return s, nil
}

// Close unregisters the metrics. The db stays open (its owner closes it).
func (s *Store) Close() error {
	s.m.set.Unregister()
	return nil
}

func prefixBounds(prefix string) *pebble.IterOptions {
	lower, upper := state.PrefixBounds([]byte(prefix))
	return &pebble.IterOptions{LowerBound: lower, UpperBound: upper}
}

// nextKey holds the next id, written with every Put, so ids are never
// reused, even after the store emptied and the process restarted: an id an
// operator noted (or a script holds) never names a different entry.
var nextKey = []byte("quarantine-next")

func (s *Store) storedNext() (uint64, error) {
	v, closer, err := s.db.Get(nextKey)
	if errors.Is(err, pebble.ErrNotFound) {
		return 1, nil
	}
	if err != nil {
		return 0, fmt.Errorf("quarantine: reading the next id: %w", err)
	}
	defer closer.Close()
	if len(v) != 8 {
		return 0, fmt.Errorf("%w: next id of %d bytes", ErrMalformed, len(v))
	}
	return max(1, binary.BigEndian.Uint64(v)), nil
}

func (s *Store) count() error {
	next, err := s.storedNext()
	if err != nil {
		return err
	}
	s.mu.next = next
	it, err := s.db.NewIter(prefixBounds(keyPrefix))
	if err != nil {
		return fmt.Errorf("quarantine: %w", err)
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		id, err := idOf(it.Key())
		if err != nil {
			return err
		}
		v := it.Value()
		s.mu.entries++
		if len(v) > 1 && Kind(v[1]) == KindRecord {
			s.mu.records++
		} else {
			s.mu.samples++
		}
		s.mu.bytes += storedSize(len(v))
		s.mu.next = max(s.mu.next, id+1)
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("quarantine: counting entries: %w", err)
	}
	s.mu.full = s.budget > 0 && s.mu.bytes >= s.budget
	return nil
}

// legacyPrefix is where the forwarder kept refused records before this
// package: key u64 index, value i64 time_ns | u8 type | u32 len | reason | payload.
const legacyPrefix = "forwarder/quarantine/"

func (s *Store) migrate() error {
	it, err := s.db.NewIter(prefixBounds(legacyPrefix))
	if err != nil {
		return fmt.Errorf("quarantine: %w", err)
	}
	var old []Entry
	var keys [][]byte
	for it.First(); it.Valid(); it.Next() {
		k, v := it.Key(), it.Value()
		if len(k) != len(legacyPrefix)+8 || len(v) < 13 || uint64(binary.BigEndian.Uint32(v[9:13])) > uint64(len(v)-13) {
			it.Close()
			return fmt.Errorf("%w: legacy forwarder entry %q", ErrMalformed, k)
		}
		n := binary.BigEndian.Uint32(v[9:13])
		old = append(old, Entry{Kind: KindRecord, WALIndex: binary.BigEndian.Uint64(k[len(legacyPrefix):]),
			TimeNs: int64(binary.BigEndian.Uint64(v)), RecordType: v[8], Code: CodeRejected,
			Reason: string(v[13 : 13+n]), Payload: append([]byte(nil), v[13+n:]...)})
		keys = append(keys, append([]byte(nil), k...))
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("quarantine: reading legacy entries: %w", err)
	}
	if len(old) == 0 {
		return nil
	}
	// Ids follow whatever the new prefix already holds or has held.
	next, err := s.storedNext()
	if err != nil {
		return err
	}
	it2, err := s.db.NewIter(prefixBounds(keyPrefix))
	if err != nil {
		return fmt.Errorf("quarantine: %w", err)
	}
	if it2.Last() {
		if id, err := idOf(it2.Key()); err == nil {
			next = max(next, id+1)
		}
	}
	it2.Close()
	b := s.db.NewBatch()
	defer b.Close()
	for i := range old {
		b.Set(entryKey(next+uint64(i)), encodeValue(&old[i]), nil)
		b.Delete(keys[i], nil)
	}
	b.Set(nextKey, binary.BigEndian.AppendUint64(nil, next+uint64(len(old))), nil)
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("quarantine: moving legacy entries: %w", err)
	}
	s.log.Info("quarantine: moved the forwarder's older entries", "entries", len(old))
	return nil
}

// Put stores entries with one synced write, assigning their ids (set in
// entries[i].ID; 0 for an entry not stored). Entries that do not fit the
// budget are not stored: they are returned as overflow, counted, and the
// store reports itself full. err is non-nil only when the write failed, and
// then nothing was stored.
func (s *Store) Put(entries []Entry) (overflow []Entry, err error) {
	return s.put(entries, false)
}

func (s *Store) put(entries []Entry, all bool) (overflow []Entry, err error) {
	if len(entries) == 0 {
		return nil, nil
	}
	now := time.Now().UnixNano()
	// Each entry encoded once, as it will be stored (the ID is not part of
	// the value); entries are changed only once they are being stored.
	vals := make([][]byte, len(entries))
	for i := range entries {
		e := entries[i]
		if e.TimeNs == 0 {
			e.TimeNs = now
		}
		vals[i] = encodeValue(&e)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if all && s.budget > 0 {
		var size int64
		for _, v := range vals {
			size += storedSize(len(v))
		}
		if s.mu.bytes+size > s.budget {
			if !s.mu.full {
				s.mu.full = true
				s.log.Error("quarantine full: the forwarder holds (the WAL keeps its records) until entries are removed; inspect with `holdfast quarantine list`, remove with `holdfast quarantine delete` or `replay`, or raise --quarantine-budget",
					"bytes", s.mu.bytes, "budget_bytes", s.budget, "wanted_bytes", size)
			}
			s.publishLocked()
			return nil, fmt.Errorf("%w: %d bytes wanted, %d of %d held", ErrFull, size, s.mu.bytes, s.budget)
		}
	}
	b := s.db.NewBatch()
	defer b.Close()
	next, bytes := s.mu.next, s.mu.bytes
	var samples, records uint64
	for i := range entries {
		e := &entries[i]
		e.ID = 0
		if e.TimeNs == 0 {
			e.TimeNs = now
		}
		v := vals[i]
		sz := storedSize(len(v))
		if s.budget > 0 && bytes+sz > s.budget {
			overflow = append(overflow, *e)
			continue
		}
		e.ID = next
		next++
		bytes += sz
		if e.Kind == KindRecord {
			records++
		} else {
			samples++
		}
		b.Set(entryKey(e.ID), v, nil)
	}
	if !b.Empty() {
		b.Set(nextKey, binary.BigEndian.AppendUint64(nil, next), nil)
		if err := b.Commit(pebble.Sync); err != nil {
			for i := range entries {
				entries[i].ID = 0
			}
			return nil, fmt.Errorf("quarantine: storing %d entries: %w", len(entries), err)
		}
	}
	s.mu.next, s.mu.bytes = next, bytes
	s.mu.entries += samples + records
	s.mu.samples += samples
	s.mu.records += records
	for i := range entries {
		if entries[i].ID != 0 {
			s.mu.last = entries[i].Reason
			s.m.stored.WithLabelValues(entries[i].Kind.String(), entries[i].Code).Inc()
		}
	}
	for _, e := range overflow {
		s.mu.overflow++
		s.mu.last = e.Reason
		s.m.overflow.WithLabelValues(e.Producer, e.Code).Inc()
	}
	// Full is sticky until entries are removed: data was lost, and the
	// operator should hear of it even if a smaller entry fits again.
	wasFull := s.mu.full
	s.mu.full = wasFull || len(overflow) > 0 || (s.budget > 0 && bytes >= s.budget)
	if s.mu.full && !wasFull {
		s.log.Error("quarantine full: further rejected data is counted and logged but not kept; inspect with `holdfast quarantine list` and remove entries with `holdfast quarantine replay` or raise --quarantine-budget",
			"bytes", bytes, "budget_bytes", s.budget)
	}
	s.publishLocked()
	return overflow, nil
}

// PutAll stores entries with one synced write, all of them or none: when
// they do not fit the budget it stores nothing, counts nothing as overflow
// (the caller keeps the data and tries again later), reports the store full
// and returns ErrFull. The forwarder uses it: its records are acknowledged
// data that must wait in the WAL rather than be dropped.
func (s *Store) PutAll(entries []Entry) error {
	_, err := s.put(entries, true)
	return err
}

// Get returns one entry.
func (s *Store) Get(id uint64) (Entry, error) {
	v, closer, err := s.db.Get(entryKey(id))
	if errors.Is(err, pebble.ErrNotFound) {
		return Entry{}, fmt.Errorf("%w: %d", ErrNotFound, id)
	}
	if err != nil {
		return Entry{}, fmt.Errorf("quarantine: reading entry %d: %w", id, err)
	}
	defer closer.Close()
	return decodeValue(id, v)
}

// List returns up to limit entries with ids above after, oldest first, and
// whether more follow.
func (s *Store) List(after uint64, limit int) ([]Entry, bool, error) {
	return s.list(after, limit, true, 0)
}

// ListHeaders is List without payloads (Payload nil, PayloadBytes set):
// listing 1,000 entries must not load up to a WAL record each.
func (s *Store) ListHeaders(after uint64, limit int) ([]Entry, bool, error) {
	return s.list(after, limit, false, 0)
}

// ListUpTo is List that also stops once the payloads returned reach
// maxBytes (always at least one entry), so a page of entries is bounded in
// memory however large they are.
func (s *Store) ListUpTo(after uint64, limit, maxBytes int) ([]Entry, bool, error) {
	return s.list(after, limit, true, maxBytes)
}

func (s *Store) list(after uint64, limit int, payloads bool, maxBytes int) ([]Entry, bool, error) {
	if limit <= 0 {
		limit = 100
	}
	opts := prefixBounds(keyPrefix)
	if after > 0 {
		opts.LowerBound = entryKey(after + 1)
		if after == ^uint64(0) {
			return nil, false, nil
		}
	}
	it, err := s.db.NewIter(opts)
	if err != nil {
		return nil, false, fmt.Errorf("quarantine: %w", err)
	}
	defer it.Close()
	var out []Entry
	bytes := 0
	for it.First(); it.Valid(); it.Next() {
		if len(out) == limit {
			return out, true, nil
		}
		id, err := idOf(it.Key())
		if err != nil {
			return out, false, err
		}
		v := it.Value()
		if maxBytes > 0 && len(out) > 0 && bytes+len(v) > maxBytes {
			return out, true, nil
		}
		e, err := decodeValueOpt(id, v, payloads)
		if err != nil {
			return out, false, err
		}
		bytes += len(v)
		out = append(out, e)
	}
	return out, false, it.Error()
}

// Delete removes entries (unknown ids are ignored) with one synced write.
func (s *Store) Delete(ids []uint64) error {
	return s.apply(ids, nil)
}

// Update rewrites entries in place (same ids), e.g. with a new reason after
// a replay found them still refused. Unknown ids are ignored.
func (s *Store) Update(entries []Entry) error {
	ids := make([]uint64, len(entries))
	for i := range entries {
		ids[i] = entries[i].ID
	}
	return s.apply(ids, entries)
}

// apply deletes ids, or replaces them with repl (same order) when repl is
// not nil, in one synced batch, and keeps the counters exact.
func (s *Store) apply(ids []uint64, repl []Entry) error {
	if len(ids) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.db.NewBatch()
	defer b.Close()
	var bytes int64
	var samples, records, gone int64
	for i, id := range ids {
		k := entryKey(id)
		v, closer, err := s.db.Get(k)
		if errors.Is(err, pebble.ErrNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("quarantine: reading entry %d: %w", id, err)
		}
		old := storedSize(len(v))
		kind := KindSample
		if len(v) > 1 {
			kind = Kind(v[1])
		}
		closer.Close()
		bytes -= old
		if repl != nil {
			nv := encodeValue(&repl[i])
			bytes += storedSize(len(nv))
			b.Set(k, nv, nil)
			continue
		}
		b.Delete(k, nil)
		gone++
		if kind == KindRecord {
			records++
		} else {
			samples++
		}
	}
	if b.Empty() {
		return nil
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("quarantine: writing %d entries: %w", len(ids), err)
	}
	s.mu.bytes += bytes
	s.mu.entries -= uint64(gone)
	s.mu.samples -= uint64(samples)
	s.mu.records -= uint64(records)
	switch {
	case s.budget > 0 && s.mu.bytes >= s.budget:
		// An Update with longer reasons can take the store to its bound.
		s.mu.full = true
	case s.mu.full && repl == nil:
		s.mu.full = false
		s.log.Info("quarantine has room again", "bytes", s.mu.bytes, "budget_bytes", s.budget)
	}
	s.publishLocked()
	return nil
}

// Stats returns the store's counters.
func (s *Store) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{Entries: s.mu.entries, Samples: s.mu.samples, Records: s.mu.records, Bytes: s.mu.bytes,
		BudgetBytes: s.budget, Full: s.mu.full, Overflow: s.mu.overflow, LastReason: s.mu.last}
}

func (s *Store) publish() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.publishLocked()
}

func (s *Store) publishLocked() {
	s.m.bytes.Set(float64(s.mu.bytes))
	s.m.entries.Set(float64(s.mu.entries))
	if s.mu.full {
		s.m.full.Set(1)
	} else {
		s.m.full.Set(0)
	}
}

// IDs returns the ids of entries, sorted, for callers that select by id.
func IDs(entries []Entry) []uint64 {
	ids := make([]uint64, 0, len(entries))
	for _, e := range entries {
		if e.ID != 0 {
			ids = append(ids, e.ID)
		}
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}

type metrics struct {
	set      *promutil.Set
	bytes    prometheus.Gauge
	entries  prometheus.Gauge
	budget   prometheus.Gauge
	full     prometheus.Gauge
	stored   *prometheus.CounterVec
	overflow *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	const ns = "holdfast_quarantine_"
	m := &metrics{
		bytes:    prometheus.NewGauge(prometheus.GaugeOpts{Name: ns + "bytes", Help: "Bytes the quarantine holds (keys and values)."}),
		entries:  prometheus.NewGauge(prometheus.GaugeOpts{Name: ns + "entries", Help: "Entries (samples and records) the quarantine holds."}),
		budget:   prometheus.NewGauge(prometheus.GaugeOpts{Name: ns + "budget_bytes", Help: "The quarantine's bound in bytes (0: none)."}),
		full:     prometheus.NewGauge(prometheus.GaugeOpts{Name: ns + "full", Help: "1 while the quarantine is at its bound: further rejected data is counted and logged, not kept."}),
		stored:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "stored_total", Help: "Entries stored, by kind and reason."}, []string{"kind", "reason"}),
		overflow: prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "overflow_total", Help: "Rejected samples or records not kept because the quarantine was full, by producer and reason."}, []string{"producer", "reason"}),
	}
	// Every counter exists from start-up at 0, so rate() and absent() work
	// before the first refusal.
	for _, c := range SampleCodes {
		m.stored.WithLabelValues(KindSample.String(), c)
	}
	for _, c := range RecordCodes {
		m.stored.WithLabelValues(KindRecord.String(), c)
	}
	var err error
	m.set, err = promutil.Register(reg, m.bytes, m.entries, m.budget, m.full, m.stored, m.overflow)
	return m, err
}

// TrackProducer creates a producer's overflow counters at 0 (a collector
// calls it when it starts collecting from the producer); ForgetProducer
// deletes them when the producer leaves, so /metrics does not grow with
// every producer ever seen.
func (s *Store) TrackProducer(id string) {
	for _, c := range append(SampleCodes[:len(SampleCodes):len(SampleCodes)], RecordCodes...) {
		s.m.overflow.WithLabelValues(id, c)
	}
}

// ForgetProducer: see TrackProducer.
func (s *Store) ForgetProducer(id string) {
	s.m.overflow.DeletePartialMatch(prometheus.Labels{"producer": id})
}
