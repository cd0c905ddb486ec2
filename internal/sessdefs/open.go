package sessdefs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// open opens key's file, reading it through (fn sees each definition) and
// repairing what does not read back, and registers it. nil, nil when it
// does not exist and create is false.
func (s *Store) open(key string, create bool, fn func(uint32, []byte)) (*file, error) {
	path := filepath.Join(s.dir, fileName(key))
	flag := os.O_RDWR
	if create {
		flag |= os.O_CREATE
	}
	h, err := os.OpenFile(path, flag, 0o644)
	if errors.Is(err, fs.ErrNotExist) && !create {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("sessdefs: %w", err)
	}
	fi := &file{key: key, path: path, h: h}
	size, err := s.readThrough(fi, fn)
	if err != nil {
		h.Close()
		return nil, err
	}
	if size == 0 {
		if !create {
			// Created by a run that died before writing its header: no
			// definitions.
			h.Close()
			if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("sessdefs: %w", err)
			}
			return nil, nil
		}
		hdr := appendHeader(nil, key)
		if _, err := h.WriteAt(hdr, 0); err != nil {
			h.Close()
			return nil, fmt.Errorf("sessdefs: writing %s: %w", path, err)
		}
		size, fi.first = int64(len(hdr)), int64(len(hdr))
	}
	fi.mu.size, fi.end = size, size
	s.mu.Lock()
	s.mu.files[key] = fi
	s.mu.Unlock()
	// Synced at the next Sync whatever it holds, with its directory entry:
	// a new file's must reach the disk, and a file a killed process wrote
	// may still be only in the page cache, where a replay that finds its
	// definitions there writes nothing that would mark it.
	s.markDirty(fi, true)
	return fi, nil
}

// readThrough reads an opened file's header and records, repairing it
// where it stops reading back, and returns the length kept (0: no valid
// header, the file is empty).
func (s *Store) readThrough(fi *file, fn func(uint32, []byte)) (int64, error) {
	st, err := fi.h.Stat()
	if err != nil {
		return 0, fmt.Errorf("sessdefs: %w", err)
	}
	size := st.Size()
	if size == 0 {
		return 0, nil
	}
	hkey, n, err := readHeader(fi.h, size)
	if err == nil && hkey != fi.key {
		err = fmt.Errorf("%w: header names another session", errCorrupt)
	}
	if err != nil {
		if !isDamage(err) {
			return 0, fmt.Errorf("sessdefs: reading %s: %w", fi.path, err)
		}
		return 0, s.repair(fi, 0, size, err)
	}
	fi.first = int64(n)
	rd := reader{size: 256 << 10}
	for off := fi.first; ; {
		id, def, next, err := rd.record(fi.h, off, size)
		if err == io.EOF {
			return size, nil
		}
		if err != nil {
			if !isDamage(err) {
				return 0, fmt.Errorf("sessdefs: reading %s: %w", fi.path, err)
			}
			if rerr := s.repair(fi, off, size, err); rerr != nil {
				return 0, rerr
			}
			return off, nil
		}
		fi.note(id, off)
		if fn != nil {
			fn(id, def)
		}
		off = next
	}
}

// scanOpen calls fn for each definition of an open file.
func (s *Store) scanOpen(fi *file, fn func(uint32, []byte)) error {
	if err := s.flushFor(fi); err != nil {
		return err
	}
	fi.mu.Lock()
	limit := fi.mu.size
	fi.mu.Unlock()
	rd := reader{size: 256 << 10}
	for off := fi.first; ; {
		id, def, next, err := rd.record(fi.h, off, limit)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			if isDamage(err) {
				return &CorruptionError{Path: fi.path, Offset: off, Err: err}
			}
			return fmt.Errorf("sessdefs: reading %s: %w", fi.path, err)
		}
		fn(id, def)
		off = next
	}
}

// note records that a record of id is at off (the sparse index).
func (fi *file) note(id uint32, off int64) {
	fi.mu.Lock()
	if fi.count > 0 && id <= fi.lastID {
		fi.mu.unsorted = true
	}
	if id >= maxMarkedID {
		// Marks would cost memory for every id below it: searches for
		// such ids start at the first record beyond the bound.
		if fi.mu.beyond == 0 {
			fi.mu.beyond = off
		}
	} else {
		for b := int(id >> markBits); len(fi.mu.marks) <= b; {
			fi.mu.marks = append(fi.mu.marks, off)
		}
	}
	fi.mu.Unlock()
	fi.lastID, fi.count = id, fi.count+1
}

func isDamage(err error) bool {
	return errors.Is(err, errCorrupt) || errors.Is(err, io.ErrUnexpectedEOF)
}

// readHeader reads a file's header: its key and length.
func readHeader(h *os.File, size int64) (string, int, error) {
	want := int(min(size, 4<<10))
	for {
		b := make([]byte, want)
		if _, err := h.ReadAt(b, 0); err != nil && err != io.EOF {
			return "", 0, err
		}
		key, n, need, err := parseHeader(b)
		if err != nil {
			return "", 0, err
		}
		if need == 0 {
			return key, n, nil
		}
		if int64(need) > size {
			return "", 0, fmt.Errorf("torn header: %w", io.ErrUnexpectedEOF)
		}
		want = need
	}
}

// repair keeps a file's first off bytes: the rest is copied aside (the
// evidence) and cut off, and OnRepair told.
func (s *Store) repair(fi *file, off, size int64, reason error) error {
	r := Repair{Key: fi.key, Path: fi.path, Offset: off, Dropped: size - off, Reason: reason}
	aside := fi.path + "." + strconv.FormatInt(time.Now().UnixNano(), 10) + ".damaged"
	if err := copyTail(fi.h, off, size, aside); err != nil {
		r.Err = err
	} else {
		r.Aside = aside
	}
	if err := fi.h.Truncate(off); err != nil {
		return fmt.Errorf("sessdefs: repairing %s: %w", fi.path, err)
	}
	if err := fi.h.Sync(); err != nil {
		return fmt.Errorf("sessdefs: repairing %s: %w", fi.path, err)
	}
	if r.Aside != "" {
		if err := syncDir(s.dir); err != nil { // the evidence's name
			r.Err = err
		}
	}
	if s.opts.OnRepair != nil {
		s.opts.OnRepair(r)
	}
	return nil
}

func copyTail(h *os.File, off, size int64, to string) error {
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, io.NewSectionReader(h, off, size-off)); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// openPath opens the file at path for a reader beside the owner (one the
// owner has not open) and reads its header: h is nil, with no error, when
// there is no file, or a file of another key or with a damaged header
// (the owner repairs it when it opens it): no definition either way. The
// caller closes h.
func openPath(path, key string) (h *os.File, first, size int64, err error) {
	h, err = os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, 0, nil
	}
	if err != nil {
		return nil, 0, 0, fmt.Errorf("sessdefs: %w", err)
	}
	st, err := h.Stat()
	if err != nil {
		h.Close()
		return nil, 0, 0, fmt.Errorf("sessdefs: %w", err)
	}
	hkey, n, err := readHeader(h, st.Size())
	if err != nil && !isDamage(err) {
		h.Close()
		return nil, 0, 0, fmt.Errorf("sessdefs: reading %s: %w", path, err)
	}
	if err != nil || hkey != key {
		h.Close()
		return nil, 0, 0, nil
	}
	return h, int64(n), st.Size(), nil
}

// readAllPath reads every definition of the file at path without opening
// it in the store (Lookuper), up to its first damage.
func readAllPath(path, key string) (map[uint32][]byte, error) {
	all := make(map[uint32][]byte)
	h, first, size, err := openPath(path, key)
	if h == nil || err != nil {
		return all, err
	}
	defer h.Close()
	rd := reader{size: 256 << 10}
	var buf []byte // one allocation per 64 KiB of definitions, not per definition
	for off := first; ; {
		id, def, next, err := rd.record(h, off, size)
		if err == io.EOF || err != nil && isDamage(err) {
			return all, nil
		}
		if err != nil {
			return nil, fmt.Errorf("sessdefs: reading %s: %w", path, err)
		}
		if cap(buf)-len(buf) < len(def) {
			buf = make([]byte, 0, max(64<<10, len(def)))
		}
		buf = append(buf, def...)
		all[id] = buf[len(buf)-len(def) : len(buf) : len(buf)]
		off = next
	}
}

// lookupPath finds id in the file at path without opening it in the store
// (a reader beside the owner, for a file the owner has not open).
func lookupPath(rd *reader, path, key string, id uint32) ([]byte, error) {
	h, first, size, err := openPath(path, key)
	if err != nil {
		return nil, err
	}
	if h == nil {
		return nil, ErrNotFound
	}
	defer h.Close()
	// No sparse index here: every record from the first, ids in any order.
	def, _, err := find(rd, h, first, size, id, true)
	if err != nil {
		if isDamage(err) {
			return nil, ErrNotFound
		}
		return nil, err
	}
	return append([]byte(nil), def...), nil
}
