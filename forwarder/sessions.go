package forwarder

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/cockroachdb/pebble"

	"github.com/holdfast/holdfast/internal/offheap"
	"github.com/holdfast/holdfast/internal/sessdefs"
	"github.com/holdfast/holdfast/internal/state"
	pa "github.com/holdfast/holdfast/producerapi"
)

// Session dictionaries of version 3 page records (DESIGN.md, "The
// forwarder's read path"). A record v3 carries only the series definitions
// its session had not sent before; its samples name series by session id
// (0, 1, 2, ... per producer, incarnation and session). The forwarder keeps,
// per session, an array indexed by id of what a sample's row needs (name,
// key, fingerprint, datum type, state): a sample costs an index, not a
// hash. Definitions are stored when first read, so that after a restart, a
// bisection or a quarantine the definitions of records the WAL no longer
// holds are still found: each in its session's append-only file
// (internal/sessdefs, Options.SessionDir), and each session's first index in
// Pebble:
//
//	sessmeta/ producer 0x00 incarnation 0x00 session(BE8) -> WAL index of its first record (BE8)
//
// Definitions are written to the OS per record, the metadata NoSync in one
// batch per record; before the checkpoint's Sync write the definition files
// written since the last checkpoint are synced, so every definition a
// checkpointed record made is durable when the checkpoint is. A session
// superseded by a later one of the same producer is deleted (memory, file
// and Pebble) once the checkpoint passed its successor's first record: no
// record left to read or rebuild needs it. A session not used for
// sessionIdle leaves memory (its file stays; it is loaded again when a
// record names it).
//
// Versions before 0.9 kept definitions in Pebble, under
//
//	sessdef/ producer 0x00 incarnation 0x00 session(BE8) id(BE4) -> the definition's bytes
//
// load moves them into files once (migrateDefs).
var (
	sessDefPrefix  = []byte("sessdef/")
	sessMetaPrefix = []byte("sessmeta/")
)

const (
	// sessionChunk is how many ids one array of entries holds: a hole in
	// the ids (a lost record's definitions) or a huge first id costs no
	// memory for the ids in between, and growing a session never copies
	// more than one chunk.
	sessionChunkBits = 12
	sessionChunk     = 1 << sessionChunkBits
	// maxSessionIDs bounds the ids the forwarder accepts in one session
	// (producers start a new session at 1<<20 by default): a record naming
	// more is quarantined as malformed rather than allocating for it.
	maxSessionIDs = 1 << 24
	// sessionIdle is how long a session may go unused before its arrays
	// leave memory.
	sessionIdle = 10 * time.Minute
)

// sessState is what the forwarder knows of a session id.
type sessState uint8

const (
	stUndefined  sessState = iota // no definition read (yet, or lost with its record)
	stUnresolved                  // defined (in its file), not yet decoded: a session loaded after a restart
	stOK                          // decoded, validated, keyed
	stRefused                     // the writing collector refused it: no sample may name it
	stInvalid                     // it does not validate here (e.g. stricter limits than the collector's)
	stCollision                   // its key is another timeseries': its samples are quarantined
)

// sessEntry is one session id: 20 bytes, no pointer (the name is an index
// into the session's names; the key is two 32-bit halves so that the entry
// aligns to 4 bytes, not 8), so 2.2 M series take 44 MB the garbage
// collector never scans.
type sessEntry struct {
	keyLo, keyHi uint32 // TimeseriesKey (key, resolvedEntry)
	fp           uint32 // the writer's fingerprint
	name         uint32 // index into session.names
	// gen is the low 8 bits of the row set (rowSet.gen) this series was
	// last admitted into, as cachedSeries.gen. Row set generations are
	// unique and never 0 in their low 8 bits (nextRowSetGen); when their
	// higher bits move on (every 256 row sets: two minutes at RFD 125's
	// N=100), every loaded entry's gen is cleared (sessions.noteRowSet,
	// about 10 ms for 2.2 M entries), so an old gen never equals a new row
	// set's.
	gen uint8
	// seen is the writer's seenEpoch when this key was found in seenKeys
	// with this series' fingerprint (0: not known). While the epoch holds,
	// the key is still there, and no other timeseries can have been
	// admitted under it since (it would have collided with this one), so
	// admitting it into a new batch needs no map lookup.
	seen  uint8
	typ   pa.DatumType
	state sessState
}

// key is the entry's TimeseriesKey.
func (e *sessEntry) key() uint64 { return uint64(e.keyHi)<<32 | uint64(e.keyLo) }

// resolvedEntry is the entry of a decoded, validated and keyed series.
func resolvedEntry(key uint64, fp, name uint32, typ pa.DatumType) sessEntry {
	return sessEntry{keyLo: uint32(key), keyHi: uint32(key >> 32), fp: fp, name: name, typ: typ, state: stOK}
}

// session is one (producer, incarnation, session) dictionary.
type session struct {
	key      string // producer 0x00 incarnation 0x00 session(BE8)
	producer string
	first    uint64 // WAL index of its first record
	// superseded is the WAL index of the first record of a later session of
	// the same producer (0: current), or for a session of a previous run
	// the WAL's last index at this start (endedBy).
	superseded uint64
	// endedBy is, for a session of a previous run (loaded at start), the
	// WAL's last index at this start: no collector continues a session
	// after a restart (its state is in memory only; the producer starts a
	// new one), so the session has no record after it, and replaying its
	// records does not make it current again (note).
	endedBy uint64
	listed  bool // in sessions.superseded
	loaded  bool // chunks and types are in memory
	chunks  [][]sessEntry
	types   []pa.DatumType // per id: 0 undefined, for BlockScanner.SetSessionTypes
	names   []string
	nameIdx map[string]uint32
	used    time.Time
}

// entry returns id's entry, nil when no definition was read for it.
func (s *session) entry(id uint64) *sessEntry {
	c := id >> sessionChunkBits
	if c >= uint64(len(s.chunks)) {
		return nil
	}
	ch := s.chunks[c]
	i := id & (sessionChunk - 1)
	if i >= uint64(len(ch)) {
		return nil
	}
	return &ch[i]
}

// grow makes room for ids below n (n <= maxSessionIDs) and returns id's
// entry.
func (s *session) slot(id uint64) *sessEntry {
	c := int(id >> sessionChunkBits)
	for len(s.chunks) <= c {
		s.chunks = append(s.chunks, nil)
	}
	i := int(id & (sessionChunk - 1))
	ch := s.chunks[c]
	if len(ch) <= i {
		if cap(ch) > i {
			ch = ch[:i+1]
		} else {
			var n []sessEntry
			if c := min(sessionChunk, max(2*(i+1), 16)); c == sessionChunk {
				// A full chunk (80 KiB) lives outside the Go heap
				// (internal/offheap): at GOGC=100 a byte of the heap's
				// lasting state costs two of RSS. release frees it.
				n = offheap.Make[sessEntry](sessionChunk)[:i+1]
			} else {
				n = make([]sessEntry, i+1, c)
			}
			copy(n, ch)
			ch = n
		}
		s.chunks[c] = ch
	}
	if uint64(len(s.types)) <= id {
		if uint64(cap(s.types)) > id {
			s.types = s.types[:id+1]
		} else {
			n := make([]pa.DatumType, id+1, max(2*(id+1), 64))
			copy(n, s.types)
			s.types = n
		}
	}
	return &ch[i]
}

// nameIndex returns the index of name in the session's names.
func (s *session) nameIndex(name string) uint32 {
	if i, ok := s.nameIdx[name]; ok {
		return i
	}
	if s.nameIdx == nil {
		s.nameIdx = make(map[string]uint32)
	}
	i := uint32(len(s.names))
	s.names = append(s.names, name)
	s.nameIdx[name] = i
	return i
}

// unload drops a session's arrays and closes its file (which keeps its
// definitions).
func (ss *sessions) unload(s *session) error {
	ss.release(s)
	if err := ss.defs.Close(s.key); err != nil {
		return fmt.Errorf("forwarder: %w", err)
	}
	return nil
}

// release drops a session's arrays from memory and the counts.
func (ss *sessions) release(s *session) {
	if s.loaded {
		ss.loaded--
		ss.ids -= len(s.types)
	}
	for _, ch := range s.chunks {
		offheap.Free(ch) // full chunks were mapped; smaller ones are the heap's
	}
	s.chunks, s.types, s.names, s.nameIdx, s.loaded = nil, nil, nil, nil, false
}

// releaseAll drops every session's arrays (the forwarder is closing).
func (ss *sessions) releaseAll() {
	for _, s := range ss.m {
		ss.release(s)
	}
}

// sessions holds the forwarder's session dictionaries. Used by the Run
// goroutine only; deliveries read definitions with defLookup.
type sessions struct {
	db         *pebble.DB
	defs       *sessdefs.Store
	m          map[string]*session
	current    map[string]*session // per producer, its latest session
	superseded []*session          // sessions waiting for the checkpoint to pass their successor
	last       *session
	key        []byte // scratch: a session key being looked up
	pk         []byte // scratch: a Pebble key
	def        []byte // scratch: the definition getDef read
	batch      *pebble.Batch
	now        func() time.Time
	sweptAt    time.Time
	// loaded and ids count the sessions in memory and their ids (the
	// gauges holdfast_forwarder_sessions_loaded and _session_ids).
	loaded, ids int
	// genHigh is the row set generation's bits above the low 8 that the
	// entries' gens belong to (sessEntry.gen).
	genHigh uint64
	// left are producers whose collector stopped collecting them
	// (Forwarder.ProducerLeft), waiting for the checkpoint to pass the
	// WAL's last index when they left.
	left []leftProducer
}

// leftProducer is a producer that left (Forwarder.ProducerLeft) and the
// WAL's last index then: no record after it belongs to the producer's
// session of that time.
type leftProducer struct {
	producer string
	last     uint64
}

// sessionFileRepaired reports a session file cut back where it stopped
// reading back (sessdefs.Options.OnRepair).
func (f *Forwarder) sessionFileRepaired(r sessdefs.Repair) {
	f.m.sessionFileRepairs.Inc()
	f.log.Error("session definitions file damaged: kept the definitions before the damage; samples naming the others are quarantined unless the WAL still holds their records",
		"path", r.Path, "offset", r.Offset, "dropped_bytes", r.Dropped, "copied_to", r.Aside, "reason", r.Reason, "copy_err", r.Err)
}

// ProducerLeft tells the forwarder that the WAL will hold no more records
// of the producer's current page v3 session: its collector stopped
// collecting it (a return starts a new session). That session's
// definitions leave the state store once the checkpoint passes the WAL's
// last index now, rather than at the next restart. Safe from any
// goroutine.
func (f *Forwarder) ProducerLeft(producer string) {
	last := f.wal.Stats().LastIndex
	f.mu.Lock()
	f.mu.left = append(f.mu.left, leftProducer{producer: producer, last: last})
	f.mu.Unlock()
}

// sweepSessions takes the producers that left since the last sweep and
// sweeps the sessions (Run goroutine).
func (f *Forwarder) sweepSessions(checkpoint uint64) error {
	f.mu.Lock()
	left := f.mu.left
	f.mu.left = nil
	f.mu.Unlock()
	f.sess.left = append(f.sess.left, left...)
	if err := f.sess.sweep(checkpoint); err != nil {
		return err
	}
	if now := f.sess.now(); now.Sub(f.sessionFilesAt) >= time.Minute {
		f.sessionFilesAt = now
		f.noteSessionFiles()
	}
	return nil
}

// noteSessionFiles sets the session file gauges.
func (f *Forwarder) noteSessionFiles() {
	n, bytes, err := f.defs.Usage()
	if err != nil {
		f.log.Warn("measuring the session definition files", "err", err)
		return
	}
	f.m.sessionFiles.Set(float64(n))
	f.m.sessionFileBytes.Set(float64(bytes))
}

// noteRowSet is told the generation of the row set entries are about to
// be admitted into: when its bits above the low 8 differ from those the
// entries' gens were taken under (once per 256 row sets), every loaded
// entry's gen is cleared, so none can equal the new row set's by its low
// bits alone.
func (ss *sessions) noteRowSet(gen uint64) {
	h := gen >> 8
	if h == ss.genHigh {
		return
	}
	ss.genHigh = h
	ss.eachLoadedEntry(func(e *sessEntry) { e.gen = 0 })
}

// eachLoadedEntry calls fn with every entry of the sessions in memory.
func (ss *sessions) eachLoadedEntry(fn func(*sessEntry)) {
	for _, s := range ss.m {
		for _, ch := range s.chunks {
			for i := range ch {
				fn(&ch[i])
			}
		}
	}
}

// renewSeenEpoch starts the writer's seenEpoch over when it has run out
// (254 emptyings of seenKeys: a fleet larger than MaxSeenKeys empties it
// again and again), clearing every loaded entry's note first, so that the
// notes keep saving the lookups of a series' first sample in a batch.
// Entries of sessions not in memory carry no note. Run goroutine only,
// with no delivery reading the entries.
func (f *Forwarder) renewSeenEpoch() {
	if f.w.seenEpoch < math.MaxUint8 {
		return
	}
	f.sess.eachLoadedEntry(func(e *sessEntry) { e.seen = 0 })
	f.w.seenEpoch = 1
}

func newSessions(db *pebble.DB, defs *sessdefs.Store) *sessions {
	return &sessions{db: db, defs: defs, m: make(map[string]*session), current: make(map[string]*session), now: time.Now}
}

// sessionKey appends producer 0x00 incarnation 0x00 session(BE8) to dst.
func sessionKey(dst, producer, incarnation []byte, id uint64) []byte {
	dst = append(dst, producer...)
	dst = append(dst, 0)
	dst = append(dst, incarnation...)
	dst = append(dst, 0)
	return binary.BigEndian.AppendUint64(dst, id)
}

// defKey appends the Pebble key of a definition to dst.
func defKey(dst []byte, skey string, id uint64) []byte {
	dst = append(dst, sessDefPrefix...)
	dst = append(dst, skey...)
	return binary.BigEndian.AppendUint32(dst, uint32(id))
}

// load reads the sessions Pebble holds (their metadata, not their
// definitions) and works out which are superseded: what a restart needs to
// delete the sessions the last run left waiting. Every one is a previous
// run's, whose records all lie at or before walLast, the WAL's last index
// now: a producer's latest is superseded from there (endedBy), so it is
// deleted once the checkpoint passes walLast, like the others once it
// passes their successor. Without this a producer that never came back
// (moved to another collector, retired) kept its definitions in the state
// store for good.
func (ss *sessions) load(walLast uint64) error {
	if err := ss.loadMetas(); err != nil {
		return err
	}
	keys := make([]string, 0, len(ss.m))
	for k := range ss.m {
		keys = append(keys, k)
	}
	// Files of sessions Pebble does not know: a crash between a file's
	// creation and its session's metadata, or between a session's
	// deletion and its file's.
	if _, err := ss.defs.RemoveOthers(keys); err != nil {
		return fmt.Errorf("forwarder: %w", err)
	}
	if err := ss.migrateDefs(); err != nil {
		return err
	}
	end := max(walLast, 1)
	for _, s := range ss.m {
		s.endedBy = end
		ss.supersede(s, end)
	}
	return nil
}

func (ss *sessions) loadMetas() error {
	lower, upper := state.PrefixBounds(sessMetaPrefix)
	it, err := ss.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return fmt.Errorf("forwarder: reading sessions: %w", err)
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()[len(sessMetaPrefix):]
		v := it.Value()
		producer, ok := splitSessionKey(k)
		if !ok || len(v) != 8 {
			continue // not ours to understand; left alone
		}
		s := &session{key: string(k), producer: producer, first: binary.BigEndian.Uint64(v)}
		ss.m[s.key] = s
		// At start-up the order of first records tells which session of
		// a producer came last.
		switch cur := ss.current[s.producer]; {
		case cur == nil:
			ss.current[s.producer] = s
		case s.first >= cur.first:
			ss.supersede(cur, s.first)
			ss.current[s.producer] = s
		default:
			ss.supersede(s, cur.first)
		}
	}
	return it.Error()
}

// splitSessionKey returns the producer of a session key.
func splitSessionKey(k []byte) (string, bool) {
	if len(k) < 10 {
		return "", false
	}
	for i, c := range k {
		if c == 0 {
			return string(k[:i]), true
		}
	}
	return "", false
}

// note makes s, read in the record at WAL index idx, its producer's
// current session: the one it replaces is superseded from idx on (all its
// records read so far come before idx). Reading order decides, not the
// sessions' first indexes, which may come from another WAL (a replaced WAL
// directory restarts its indexes).
func (ss *sessions) note(s *session, idx uint64) {
	if s.endedBy != 0 && idx <= s.endedBy {
		return // a previous run's record read again: it stays as load left it
	}
	s.endedBy = 0
	s.superseded = 0 // read again: current (sweep skips it)
	if cur := ss.current[s.producer]; cur != s {
		if cur != nil {
			ss.supersede(cur, idx)
		}
		ss.current[s.producer] = s
	}
}

// supersede marks s superseded from WAL index at on.
func (ss *sessions) supersede(s *session, at uint64) {
	if s.superseded != 0 && s.superseded <= at {
		return
	}
	s.superseded = at
	if !s.listed {
		s.listed = true
		ss.superseded = append(ss.superseded, s)
	}
}

// get returns the session a record at WAL index idx names, loading it from
// Pebble or creating it (its metadata added to the batch) as needed.
// known reports whether the session is in memory (adding a record of it
// without definitions writes nothing to the state store).
func (ss *sessions) known(producer, incarnation []byte, id uint64) bool {
	ss.key = sessionKey(ss.key[:0], producer, incarnation, id)
	_, ok := ss.m[string(ss.key)]
	return ok
}

func (ss *sessions) get(producer, incarnation []byte, id uint64, idx uint64) (*session, error) {
	ss.key = sessionKey(ss.key[:0], producer, incarnation, id)
	s := ss.last
	if s == nil || s.key != string(ss.key) {
		s = ss.m[string(ss.key)] // no allocation for the lookup
	}
	if s == nil {
		s = &session{key: string(ss.key), producer: string(producer), first: idx}
		found, err := ss.loadMeta(s)
		if err != nil {
			return nil, err
		}
		if !found {
			s.loaded = true
			ss.loaded++
			ss.pk = append(append(ss.pk[:0], sessMetaPrefix...), s.key...)
			ss.stage().Set(ss.pk, binary.BigEndian.AppendUint64(nil, idx), nil)
		}
		ss.m[s.key] = s
	}
	if !s.loaded {
		if err := ss.loadDefs(s); err != nil {
			return nil, err
		}
	}
	// A record of a superseded session after its successor began makes it
	// current again (not what collectors write, but nothing must be
	// deleted under it).
	ss.note(s, idx)
	s.used = ss.now()
	ss.last = s
	return s, nil
}

// loadMeta reads a session's first index from Pebble.
func (ss *sessions) loadMeta(s *session) (bool, error) {
	ss.pk = append(append(ss.pk[:0], sessMetaPrefix...), s.key...)
	v, closer, err := ss.db.Get(ss.pk)
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("forwarder: reading session metadata: %w", err)
	}
	defer closer.Close()
	if len(v) == 8 {
		s.first = binary.BigEndian.Uint64(v)
	}
	return true, nil
}

// loadDefs reads which ids s's file defines and their datum types; the
// definitions are decoded when a sample first names them (stUnresolved).
func (ss *sessions) loadDefs(s *session) error {
	before := len(s.types)
	err := ss.defs.Load(s.key, func(id32 uint32, def []byte) {
		id := uint64(id32)
		t := pa.DatumType(def[len(def)-1])
		if id >= maxSessionIDs || !t.Valid() {
			return
		}
		e := s.slot(id)
		*e = sessEntry{typ: t, state: stUnresolved}
		s.types[id] = t
	})
	if err != nil {
		return fmt.Errorf("forwarder: loading session definitions: %w", err)
	}
	s.loaded = true
	ss.loaded++
	ss.ids += len(s.types) - before
	return nil
}

// stage returns the batch of this record's writes.
func (ss *sessions) stage() *pebble.Batch {
	if ss.batch == nil {
		ss.batch = ss.db.NewBatch()
	}
	return ss.batch
}

// putDef appends a definition to its session's file.
func (ss *sessions) putDef(s *session, id uint64, raw []byte) error {
	if err := ss.defs.Append(s.key, id, raw); err != nil {
		return fmt.Errorf("forwarder: storing a session definition: %w", err)
	}
	return nil
}

// commit writes the record's definitions to the OS and its new session's
// metadata to Pebble (NoSync: the checkpoint syncs both before its Sync
// write).
func (ss *sessions) commit() error {
	if err := ss.defs.Flush(); err != nil {
		return fmt.Errorf("forwarder: storing session definitions: %w", err)
	}
	b := ss.batch
	if b == nil || b.Empty() {
		return nil
	}
	err := b.Commit(pebble.NoSync)
	b.Reset()
	if err != nil {
		return fmt.Errorf("forwarder: storing session metadata: %w", err)
	}
	return nil
}

// sweep deletes the superseded sessions the checkpoint has passed the
// successor of (memory and Pebble), and unloads sessions idle for
// sessionIdle. Called by the Run goroutine between records.
func (ss *sessions) sweep(checkpoint uint64) error {
	waiting := ss.left[:0]
	for _, l := range ss.left {
		if checkpoint < l.last {
			waiting = append(waiting, l)
			continue
		}
		// Every record up to l.last is read and delivered: the producer's
		// current session is the one it left with, unless a session it
		// began after coming back is (first record past l.last).
		if s := ss.current[l.producer]; s != nil && s.first <= l.last {
			ss.supersede(s, max(l.last, 1))
		}
	}
	clear(ss.left[len(waiting):])
	ss.left = waiting
	kept := ss.superseded[:0]
	var err error
	for _, s := range ss.superseded {
		if s.superseded == 0 {
			s.listed = false
			continue // current again
		}
		if checkpoint < s.superseded || err != nil {
			kept = append(kept, s)
			continue
		}
		if err = ss.drop(s); err != nil {
			kept = append(kept, s)
		} else {
			s.listed = false
		}
	}
	clear(ss.superseded[len(kept):])
	ss.superseded = kept
	if err != nil {
		return err
	}
	now := ss.now()
	if now.Sub(ss.sweptAt) < time.Minute {
		return nil
	}
	ss.sweptAt = now
	for _, s := range ss.m {
		if s.loaded && now.Sub(s.used) >= sessionIdle {
			if ss.last == s {
				ss.last = nil
			}
			if err := ss.unload(s); err != nil {
				return err
			}
		}
	}
	return nil
}

// drop deletes a session from memory, Pebble and its file. The metadata
// goes first: a crash between the two leaves a file no session names,
// which the next start deletes (load).
func (ss *sessions) drop(s *session) error {
	if err := ss.db.Delete(append(append([]byte{}, sessMetaPrefix...), s.key...), pebble.NoSync); err != nil {
		return fmt.Errorf("forwarder: deleting a superseded session's metadata: %w", err)
	}
	if ss.m[s.key] == s {
		// Not another session of the same key: one a record named after
		// an earlier drop of s failed at Remove stays where release (and
		// Close) will find its arrays.
		delete(ss.m, s.key)
	}
	if ss.current[s.producer] == s {
		delete(ss.current, s.producer)
	}
	if ss.last == s {
		ss.last = nil
	}
	ss.release(s)
	if err := ss.defs.Remove(s.key); err != nil {
		return fmt.Errorf("forwarder: deleting a superseded session's definitions: %w", err)
	}
	return nil
}

// defLookup returns a SeriesLookup reading the definitions of a session
// from its file (safe from a delivery goroutine; sessdefs.Lookuper: a file
// the owner has closed, an idle session's, is read once rather than once
// per id); found definitions are kept for the lookup's lifetime. A
// definition the file does not hold is not found; one the file could not
// be read for (an I/O error, no file descriptor left) is not found either,
// since SeriesLookup has no error, and the first such error is kept in
// *failed for the caller to report in place of the decoder's "undefined
// series".
func defLookup(defs *sessdefs.Store, skey string, failed *error) pa.SeriesLookup {
	var got map[uint64][]byte
	lookup := defs.Lookuper(skey)
	return func(id uint64) ([]byte, bool) {
		if raw, ok := got[id]; ok {
			return raw, true
		}
		if id >= maxSessionIDs {
			return nil, false
		}
		raw, err := lookup(id)
		if err != nil {
			if !errors.Is(err, sessdefs.ErrNotFound) && *failed == nil {
				*failed = err
			}
			return nil, false
		}
		if got == nil {
			got = make(map[uint64][]byte)
		}
		got[id] = raw
		return raw, true
	}
}

// StoredDefinition returns the definition of series id of a producer's
// page v3 session as the forwarder stored it when it read the record that
// defined it: nil when it has not (the record not read yet, the series
// refused by the writing collector, or the session deleted). The collector
// reads it to quarantine, with its identity, a refused sample of a series
// defined on an earlier page (collector/verify3.go). Safe from any
// goroutine, beside a running forwarder.
func (f *Forwarder) StoredDefinition(producer, incarnation string, session, id uint64) ([]byte, error) {
	if id >= maxSessionIDs {
		return nil, nil
	}
	skey := sessionKey(nil, []byte(producer), []byte(incarnation), session)
	raw, err := f.defs.Lookup(string(skey), id)
	if errors.Is(err, sessdefs.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("forwarder: reading the definition of series %d of a session of %q: %w", id, producer, err)
	}
	return raw, nil
}

// getDef reads one definition of s (sessdefs.ErrNotFound: none); the
// bytes are valid until the next call.
func (ss *sessions) getDef(s *session, id uint64) ([]byte, error) {
	var err error
	ss.def, err = ss.defs.Get(ss.def[:0], s.key, id)
	return ss.def, err
}

// migrateDefs moves definitions an earlier version kept in Pebble
// (sessdef/) into their sessions' files, then deletes them from Pebble.
// Each file is written anew and synced before the Pebble keys go (Sync), so
// a crash part way through does the move again at the next start.
func (ss *sessions) migrateDefs() error {
	lower, upper := state.PrefixBounds(sessDefPrefix)
	it, err := ss.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return fmt.Errorf("forwarder: reading stored session definitions: %w", err)
	}
	defer it.Close()
	moved := false
	valid := it.First()
	for valid {
		k := it.Key()[len(sessDefPrefix):]
		if len(k) < 4 {
			valid = it.Next()
			continue
		}
		skey := string(k[:len(k)-4])
		next := func() (uint64, []byte, bool, error) {
			for ; valid; valid = it.Next() {
				k := it.Key()[len(sessDefPrefix):]
				if len(k) != len(skey)+4 || string(k[:len(skey)]) != skey {
					return 0, nil, false, nil // the next session's
				}
				v := it.Value()
				if len(v) == 0 {
					continue
				}
				id := uint64(binary.BigEndian.Uint32(k[len(skey):]))
				def := append([]byte(nil), v...)
				valid = it.Next()
				return id, def, true, nil
			}
			return 0, nil, false, it.Error()
		}
		if _, known := ss.m[skey]; !known {
			for { // no session names them: dropped with the range below
				if _, _, ok, err := next(); err != nil {
					return fmt.Errorf("forwarder: reading stored session definitions: %w", err)
				} else if !ok {
					break
				}
			}
			moved = true
			continue
		}
		if err := ss.defs.Import(skey, next); err != nil {
			return fmt.Errorf("forwarder: moving session definitions to %s: %w", ss.defs.Dir(), err)
		}
		moved = true
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("forwarder: reading stored session definitions: %w", err)
	}
	if !moved {
		return nil
	}
	b := ss.db.NewBatch()
	defer b.Close()
	if err := b.DeleteRange(lower, upper, nil); err != nil {
		return fmt.Errorf("forwarder: deleting moved session definitions: %w", err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("forwarder: deleting moved session definitions: %w", err)
	}
	return nil
}
