package sessdefs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// Repair reports a file that stopped reading back: the records before
// Offset were kept, the Dropped bytes from Offset on copied to Aside and
// cut off the file.
type Repair struct {
	Key    string
	Path   string
	Offset int64
	// Dropped is how many bytes were cut; Aside where they were copied
	// ("" when copying failed, which Err then says).
	Dropped int64
	Aside   string
	Reason  error
	Err     error
}

// Options configure a Store.
type Options struct {
	// OnRepair is told of every repaired file (from the owner's
	// goroutine): log it, count it.
	OnRepair func(Repair)
}

// Store is a directory of session definition files.
type Store struct {
	dir  string
	opts Options
	mu   struct {
		sync.Mutex
		files map[string]*file
		// dirty holds the files written since their last fsync, each with
		// the write generation (gen) it was marked at: a Sync removes a
		// file only when no write came after the one its fsync covers.
		dirty    map[*file]uint64
		gen      uint64
		dirDirty uint64 // like dirty's generations, for the directory (0: clean)
		// failed is the first fsync error: sticky, as a failed fsync
		// may have dropped the data it did not write (Linux marks the
		// pages clean), so a later fsync's success proves nothing.
		failed error
	}
	// syncMu serialises Syncs: one that finds nothing dirty while another
	// is still syncing must not return before it.
	syncMu sync.Mutex
	// The owner's: appends not yet written (all of one file) and the
	// buffer Get reads through.
	pending *file
	pend    []byte
	rd      reader
}

// file is one open session file.
type file struct {
	key, path string
	h         *os.File
	first     int64 // offset of the first record (the header's length)
	mu        struct {
		sync.Mutex
		size     int64   // bytes written to the OS: what readers may read
		marks    []int64 // per 1<<markBits ids, the offset of the first record of an id at or above them
		unsorted bool    // a record was appended out of id order: readers scan from first
		beyond   int64   // offset of the first record of an id at or above maxMarkedID (0: none)
		closed   bool
	}
	// The owner's.
	end        int64 // size plus pending appends
	lastID     uint32
	count      int
	cursor     int64  // offset after the record the last Get found
	cursorNext uint64 // every record from cursor on has an id at or above it
	// broken is the error of a failed write: the file takes no more
	// appends (its sparse index may name records that are not there).
	broken error
	// reserved is the offset up to which the file's blocks are allocated
	// (Reserve); noFallocate: its file system cannot.
	reserved    int64
	noFallocate bool
}

// Open opens (creating) the directory of session files.
func Open(dir string, opts Options) (*Store, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("sessdefs: %w", err)
	}
	if err := syncDir(filepath.Dir(dir)); err != nil {
		return nil, err
	}
	s := &Store{dir: dir, opts: opts, rd: reader{size: 64 << 10}}
	s.mu.files = make(map[string]*file)
	s.mu.dirty = make(map[*file]uint64)
	return s, nil
}

// Dir returns the store's directory.
func (s *Store) Dir() string { return s.dir }

// Load opens key's file, if there is one, and calls fn (when not nil) for
// each of its definitions in file order; def is valid during the call. A
// file that does not read back to its end is repaired (Options.OnRepair).
// The file stays open until Close or Remove.
func (s *Store) Load(key string, fn func(id uint32, def []byte)) error {
	if fi := s.lookupOpen(key); fi != nil {
		if fn == nil {
			return nil
		}
		return s.scanOpen(fi, fn)
	}
	_, err := s.open(key, false, fn)
	return err
}

// Append adds a definition of id to key's file (creating it), written to
// the operating system by Flush (or when enough is pending).
func (s *Store) Append(key string, id uint64, def []byte) error {
	if id > math.MaxUint32 {
		return fmt.Errorf("sessdefs: id %d beyond 32 bits", id)
	}
	if len(def) == 0 || len(def) > MaxDefinition {
		return fmt.Errorf("sessdefs: a definition of %d bytes (1..%d)", len(def), MaxDefinition)
	}
	fi := s.pending
	if fi == nil || fi.key != key {
		if err := s.Flush(); err != nil {
			return err
		}
		var err error
		if fi, err = s.file(key, true); err != nil {
			return err
		}
		s.pending = fi
	}
	if fi.broken != nil {
		return fi.broken
	}
	off := fi.end
	s.pend = appendRecord(s.pend, uint32(id), def)
	fi.end += int64(recordHead + len(def))
	fi.note(uint32(id), off)
	if len(s.pend) >= 1<<20 {
		return s.Flush()
	}
	return nil
}

// Flush writes pending appends to the operating system (not to disk: Sync).
func (s *Store) Flush() error {
	fi := s.pending
	if fi == nil || len(s.pend) == 0 {
		return nil
	}
	fi.mu.Lock()
	at := fi.mu.size
	fi.mu.Unlock()
	if _, err := fi.h.WriteAt(s.pend, at); err != nil {
		// A short write (a full disk) leaves part of a record: cut it, so
		// that a reopening reads whole records. The definitions not
		// written are lost to this file, which takes no more appends;
		// the caller stops, and the WAL still holds their records (no
		// checkpoint passed them). The next start reads the file again.
		s.pend = s.pend[:0]
		fi.end = at
		if terr := fi.h.Truncate(at); terr != nil {
			err = errors.Join(err, terr)
		}
		fi.broken = fmt.Errorf("sessdefs: writing %s: %w", fi.path, err)
		return fi.broken
	}
	fi.mu.Lock()
	fi.mu.size += int64(len(s.pend))
	fi.mu.Unlock()
	s.markDirty(fi, false)
	if cap(s.pend) > 4<<20 {
		s.pend = nil // a burst's buffer is not kept
	}
	s.pend = s.pend[:0]
	return nil
}

// Get appends key's definition of id to dst (ErrNotFound: none). Reading
// ids in increasing order reads the file once.
func (s *Store) Get(dst []byte, key string, id uint64) ([]byte, error) {
	if id > math.MaxUint32 {
		return dst, ErrNotFound
	}
	fi, err := s.file(key, false)
	if err != nil {
		return dst, err
	}
	if fi == nil {
		return dst, ErrNotFound
	}
	if s.pending == fi {
		if err := s.Flush(); err != nil {
			return dst, err
		}
	}
	fi.mu.Lock()
	start, limit, unsorted := startOf(fi, uint32(id)), fi.mu.size, fi.mu.unsorted
	fi.mu.Unlock()
	if !unsorted && fi.cursorNext <= id && fi.cursor > start {
		start = fi.cursor
	}
	def, next, err := find(&s.rd, fi.h, start, limit, uint32(id), unsorted)
	if err != nil {
		return dst, wrapRead(fi.path, err)
	}
	fi.cursor, fi.cursorNext = next, id+1
	return append(dst, def...), nil
}

// Lookup returns a copy of key's definition of id (ErrNotFound: none).
// Safe from any goroutine, beside the owner.
func (s *Store) Lookup(key string, id uint64) ([]byte, error) {
	if id > math.MaxUint32 {
		return nil, ErrNotFound
	}
	rd := reader{size: 16 << 10}
	if def, open, err := s.lookupIfOpen(&rd, key, uint32(id)); open {
		return def, err
	}
	return lookupPath(&rd, filepath.Join(s.dir, fileName(key)), key, uint32(id))
}

// lookupIfOpen is Lookup of a file the owner has open (its sparse index
// finds id); open=false when it has not, or closed it under the read
// (unloaded or removed): the caller reads it from its path.
func (s *Store) lookupIfOpen(rd *reader, key string, id uint32) (def []byte, open bool, err error) {
	s.mu.Lock()
	fi := s.mu.files[key]
	var start, limit int64
	var unsorted bool
	var h *os.File
	if fi != nil {
		fi.mu.Lock()
		if !fi.mu.closed {
			start, limit, unsorted, h = startOf(fi, id), fi.mu.size, fi.mu.unsorted, fi.h
		}
		fi.mu.Unlock()
	}
	s.mu.Unlock()
	if h == nil {
		return nil, false, nil
	}
	def, _, err = find(rd, h, start, limit, id, unsorted)
	if errors.Is(err, os.ErrClosed) {
		return nil, false, nil
	}
	return append([]byte(nil), def...), true, wrapRead(filepath.Join(s.dir, fileName(key)), err)
}

// Lookuper returns a lookup of key's definitions for a reader beside the
// owner that asks for many of them (decoding a whole record): Lookup for a
// file the owner has open (its sparse index finds each id), and for one it
// has not (an idle session, unloaded), the file read once, at the first
// lookup, into memory, rather than scanned from its start for every id,
// which made decoding a record of n ids of such a session read the file n
// times. What a damaged file holds after its damage is not found, as with
// Lookup. Safe from any goroutine; the lookup itself is not safe for
// concurrent use.
func (s *Store) Lookuper(key string) func(id uint64) ([]byte, error) {
	var all map[uint32][]byte // the closed file's definitions, once read
	var failed error
	rd := reader{size: 16 << 10}
	return func(id uint64) ([]byte, error) {
		if id > math.MaxUint32 {
			return nil, ErrNotFound
		}
		if all == nil && failed == nil {
			if def, open, err := s.lookupIfOpen(&rd, key, uint32(id)); open {
				return def, err
			}
			all, failed = readAllPath(filepath.Join(s.dir, fileName(key)), key)
		}
		if failed != nil {
			return nil, failed
		}
		if def, ok := all[uint32(id)]; ok {
			return append([]byte(nil), def...), nil
		}
		return nil, ErrNotFound
	}
}

// Close writes and syncs key's file if needed, gives back the room
// reserved past its end (release), and closes it (the session left memory;
// Load opens it again).
func (s *Store) Close(key string) error {
	fi := s.lookupOpen(key)
	if fi == nil {
		return nil
	}
	if err := s.flushFor(fi); err != nil {
		return err
	}
	s.mu.Lock()
	_, dirty := s.mu.dirty[fi]
	s.mu.Unlock()
	// A Sync in progress may hold fi without having synced it yet: the
	// entry stays in dirty until its fsync succeeded, so this one syncs.
	if dirty {
		if err := fi.h.Sync(); err != nil {
			return fmt.Errorf("sessdefs: syncing %s: %w", fi.path, err)
		}
	}
	s.release(fi)
	return s.forget(fi)
}

// Remove deletes key's file (its session is over).
func (s *Store) Remove(key string) error {
	if fi := s.lookupOpen(key); fi != nil {
		if s.pending == fi {
			s.pending, s.pend = nil, s.pend[:0]
		}
		if err := s.forget(fi); err != nil {
			return err
		}
	}
	if err := os.Remove(filepath.Join(s.dir, fileName(key))); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("sessdefs: %w", err)
	}
	return nil
}

// RemoveOthers deletes the files of every session not in keys (a crash
// between a file's creation and its session's metadata, or between a
// session's deletion and its file's) and returns how many. Files put
// aside by a repair are left for an operator.
func (s *Store) RemoveOthers(keys []string) (int, error) {
	keep := make(map[string]bool, len(keys))
	for _, k := range keys {
		keep[fileName(k)] = true
	}
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return 0, fmt.Errorf("sessdefs: %w", err)
	}
	n := 0
	for _, e := range ents {
		name := e.Name()
		if !strings.HasSuffix(name, suffix) || keep[name] || e.IsDir() {
			continue
		}
		if err := os.Remove(filepath.Join(s.dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return n, fmt.Errorf("sessdefs: %w", err)
		}
		n++
	}
	return n, nil
}

// Import writes key's file anew with the definitions next yields, and
// syncs it (moving definitions in from elsewhere: the state store of
// earlier versions). next returns ok=false after the last.
func (s *Store) Import(key string, next func() (id uint64, def []byte, ok bool, err error)) error {
	if err := s.Remove(key); err != nil {
		return err
	}
	for {
		id, def, ok, err := next()
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		if err := s.Append(key, id, def); err != nil {
			return err
		}
	}
	fi := s.lookupOpen(key)
	if fi == nil {
		return nil // nothing to import
	}
	if err := s.flushFor(fi); err != nil {
		return err
	}
	if err := fi.h.Sync(); err != nil {
		return fmt.Errorf("sessdefs: syncing %s: %w", fi.path, err)
	}
	if err := syncDir(s.dir); err != nil {
		return err
	}
	// Not left open: an upgrade may move more sessions than the process
	// may hold files; Load opens it when its session is named.
	s.mu.Lock()
	delete(s.mu.dirty, fi)
	s.mu.Unlock()
	return s.forget(fi)
}

// Sync makes every appended definition durable: it syncs the files
// written since the last Sync and the directory when a file was created.
// Safe from any goroutine; what the owner flushed before a Sync began is
// on disk when it returns.
func (s *Store) Sync() error {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	type marked struct {
		fi  *file
		gen uint64
	}
	s.mu.Lock()
	if err := s.mu.failed; err != nil {
		s.mu.Unlock()
		return err
	}
	files := make([]marked, 0, len(s.mu.dirty))
	for fi, gen := range s.mu.dirty {
		files = append(files, marked{fi, gen})
	}
	dirGen := s.mu.dirDirty
	s.mu.Unlock()
	var errs []error
	for _, m := range files {
		// Closed: Close synced it first, or Remove deleted it.
		if err := m.fi.h.Sync(); err != nil && !errors.Is(err, os.ErrClosed) {
			errs = append(errs, fmt.Errorf("sessdefs: syncing %s: %w", m.fi.path, err))
		}
	}
	if dirGen != 0 {
		if err := syncDir(s.dir); err != nil {
			errs = append(errs, err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(errs) > 0 {
		s.mu.failed = errors.Join(errs...)
		return s.mu.failed
	}
	for _, m := range files {
		if s.mu.dirty[m.fi] == m.gen {
			delete(s.mu.dirty, m.fi) // no write since the one synced
		}
	}
	if s.mu.dirDirty == dirGen {
		s.mu.dirDirty = 0
	}
	return nil
}

// markDirty notes a write to fi (and to the directory when dir): the next
// Sync syncs it.
func (s *Store) markDirty(fi *file, dir bool) {
	s.mu.Lock()
	s.mu.gen++
	s.mu.dirty[fi] = s.mu.gen
	if dir {
		s.mu.dirDirty = s.mu.gen
	}
	s.mu.Unlock()
}

// wrapRead names the file in a read error (not ErrNotFound).
func wrapRead(path string, err error) error {
	if err == nil || errors.Is(err, ErrNotFound) {
		return err
	}
	if isDamage(err) {
		return &CorruptionError{Path: path, Err: err}
	}
	return fmt.Errorf("sessdefs: reading %s: %w", path, err)
}

// Usage returns how many session files the directory holds and their
// bytes on disk (a directory listing: for a gauge, not a hot path). Safe
// from any goroutine.
func (s *Store) Usage() (files int, bytes int64, err error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return 0, 0, fmt.Errorf("sessdefs: %w", err)
	}
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), suffix) || e.IsDir() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue // removed since the listing
		}
		files++
		bytes += info.Size()
	}
	return files, bytes, nil
}

// CloseAll closes every file (syncing the written ones).
func (s *Store) CloseAll() error {
	s.mu.Lock()
	keys := make([]string, 0, len(s.mu.files))
	for k := range s.mu.files {
		keys = append(keys, k)
	}
	s.mu.Unlock()
	var errs []error
	for _, k := range keys {
		errs = append(errs, s.Close(k))
	}
	return errors.Join(errs...)
}

func (s *Store) lookupOpen(key string) *file {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.files[key]
}

// file returns key's open file, opening it (or creating it when create)
// as needed; nil when there is none and create is false.
func (s *Store) file(key string, create bool) (*file, error) {
	if fi := s.lookupOpen(key); fi != nil {
		return fi, nil
	}
	return s.open(key, create, nil)
}

func (s *Store) flushFor(fi *file) error {
	if s.pending != fi {
		return nil
	}
	return s.Flush()
}

// forget closes an open file and drops it from the store.
func (s *Store) forget(fi *file) error {
	if s.pending == fi {
		s.pending = nil
	}
	s.mu.Lock()
	delete(s.mu.files, fi.key)
	delete(s.mu.dirty, fi)
	s.mu.Unlock()
	fi.mu.Lock()
	fi.mu.closed = true
	fi.mu.Unlock()
	if err := fi.h.Close(); err != nil {
		return fmt.Errorf("sessdefs: closing %s: %w", fi.path, err)
	}
	return nil
}

// startOf returns where a search for id begins (fi.mu held).
func startOf(fi *file, id uint32) int64 {
	if fi.mu.unsorted {
		return fi.first
	}
	if id >= maxMarkedID {
		if fi.mu.beyond == 0 {
			return fi.mu.size
		}
		return fi.mu.beyond
	}
	b := int(id >> markBits)
	if b >= len(fi.mu.marks) {
		if fi.mu.beyond != 0 {
			return fi.mu.beyond // no mark: the records beyond come next
		}
		return fi.mu.size // past every record
	}
	return fi.mu.marks[b]
}

// find reads records from start for id: in a sorted file it stops at the
// first record above id.
func find(rd *reader, h *os.File, start, limit int64, id uint32, unsorted bool) (def []byte, next int64, err error) {
	for off := start; ; {
		rid, def, n, err := rd.record(h, off, limit)
		if err != nil {
			if err == io.EOF {
				return nil, off, ErrNotFound
			}
			return nil, off, err
		}
		if rid == id {
			return def, n, nil
		}
		if rid > id && !unsorted {
			return nil, off, ErrNotFound
		}
		off = n
	}
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sessdefs: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sessdefs: syncing directory %s: %w", dir, err)
	}
	return nil
}
