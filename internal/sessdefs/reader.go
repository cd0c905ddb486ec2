package sessdefs

import (
	"io"
	"os"
)

// reader reads records through a buffer of a file's bytes, with ReadAt:
// the buffer stays valid while the file only grows (records are never
// rewritten), so records read in order cost a copy per buffer, not a
// system call each.
type reader struct {
	f    *os.File // whose bytes buf holds
	buf  []byte
	off  int64 // file offset of buf[0]
	size int   // buffer size to read at a time
}

// record returns the record at offset off of f, whose first limit bytes
// are readable. io.EOF at limit; io.ErrUnexpectedEOF when the record runs
// past limit (torn); errCorrupt wrapped when it does not read back. def is
// valid until the next call.
func (r *reader) record(f *os.File, off, limit int64) (id uint32, def []byte, next int64, err error) {
	if off >= limit {
		return 0, nil, off, io.EOF
	}
	if r.f != f {
		r.f, r.buf = f, r.buf[:0]
	}
	for {
		var b []byte
		if off >= r.off && off < r.off+int64(len(r.buf)) {
			b = r.buf[off-r.off:]
		}
		id, def, n, need, perr := parseRecord(b)
		if perr != nil {
			return 0, nil, off, perr
		}
		if need == 0 {
			return id, def, off + int64(n), nil
		}
		if int64(need) > limit-off {
			return 0, nil, off, io.ErrUnexpectedEOF
		}
		want := max(need, r.size)
		want = int(min(int64(want), limit-off))
		if cap(r.buf) < want {
			r.buf = make([]byte, want)
		}
		r.buf = r.buf[:want]
		got, rerr := f.ReadAt(r.buf, off)
		r.buf, r.off = r.buf[:got], off
		if got < need {
			if rerr == nil || rerr == io.EOF {
				rerr = io.ErrUnexpectedEOF // the file is shorter than its size said
			}
			return 0, nil, off, rerr
		}
	}
}
