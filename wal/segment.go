package wal

import (
	"bufio"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
)

// segmentFile is one segment as found on disk.
type segmentFile struct {
	name    string // 20-digit first index
	start   uint64 // first index
	size    int64
	records uint64 // frames that check; set by checkSegments
}

// segmentName mirrors tidwall/wal's file naming.
func segmentName(index uint64) string { return fmt.Sprintf("%020d", index) }

// listSegments returns the segment files of dir sorted by first index. Other
// files (LOCK, *.broken) are ignored, as tidwall/wal ignores them. Leftovers of
// tidwall/wal's own truncation (.START, .END) are refused: holdfast never
// creates them, so their presence means someone else wrote here.
func listSegments(dir string) ([]segmentFile, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []segmentFile
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || len(name) < 20 {
			continue
		}
		start, err := strconv.ParseUint(name[:20], 10, 64)
		if err != nil || start == 0 {
			continue
		}
		if len(name) != 20 {
			if filepath.Ext(name) == ".START" || filepath.Ext(name) == ".END" {
				return nil, fmt.Errorf("wal: %s: unexpected tidwall truncation file; holdfast does not use TruncateFront/TruncateBack", filepath.Join(dir, name))
			}
			continue
		}
		info, err := e.Info()
		if err != nil {
			return nil, err
		}
		out = append(out, segmentFile{name: name, start: start, size: info.Size()})
	}
	slices.SortFunc(out, func(a, b segmentFile) int { return cmp.Compare(a.start, b.start) })
	return out, nil
}

// frameInfo describes one frame found by scanSegment.
type frameInfo struct {
	Index  uint64
	Offset int64 // of the frame's length prefix
	Size   int64 // length prefix + envelope
	Record Record
}

// errStopScan lets a visitor end a scan early without an error.
var errStopScan = errors.New("stop scan")

// scanSegment reads a segment file frame by frame (uvarint length, envelope),
// checking every envelope, in constant memory. visit, if not nil, sees each
// good frame; its Record aliases a buffer reused for the next frame. On
// damage it returns the number of good frames, the offset where damage starts
// and a *CorruptionError.
func scanSegment(dir string, seg segmentFile, visit func(frameInfo) error) (good uint64, goodEnd int64, err error) {
	f, err := os.Open(filepath.Join(dir, seg.name))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<20)
	var buf []byte
	var off int64
	corrupt := func(cause error) (uint64, int64, error) {
		return good, off, &CorruptionError{Dir: dir, Segment: seg.name, Offset: off, Index: seg.start + good, Err: cause}
	}
	for {
		n, lenBytes, err := readUvarint(br)
		if err == io.EOF && lenBytes == 0 {
			return good, off, nil
		}
		if err != nil {
			return corrupt(fmt.Errorf("torn length prefix: %w", err))
		}
		if n < headerSize || n > headerSize+MaxPayload {
			return corrupt(fmt.Errorf("%w: frame length %d out of range", ErrBadRecord, n))
		}
		if uint64(cap(buf)) < n {
			buf = make([]byte, n)
		}
		buf = buf[:n]
		if _, err := io.ReadFull(br, buf); err != nil {
			return corrupt(fmt.Errorf("torn record: want %d bytes: %w", n, err))
		}
		rec, err := decodeEnvelope(buf)
		if err != nil {
			return corrupt(err)
		}
		size := int64(lenBytes) + int64(n)
		if visit != nil {
			if err := visit(frameInfo{Index: seg.start + good, Offset: off, Size: size, Record: rec}); err != nil {
				if err == errStopScan {
					return good + 1, off + size, nil
				}
				return good, off, err
			}
		}
		good++
		off += size
	}
}

// readUvarint reads a uvarint and says how many bytes it consumed.
func readUvarint(r io.ByteReader) (uint64, int, error) {
	var x uint64
	var s uint
	for i := 0; i < binary.MaxVarintLen64; i++ {
		b, err := r.ReadByte()
		if err != nil {
			if err == io.EOF && i > 0 {
				err = io.ErrUnexpectedEOF
			}
			return x, i, err
		}
		if b < 0x80 {
			if i == binary.MaxVarintLen64-1 && b > 1 {
				return x, i + 1, errors.New("uvarint overflows 64 bits")
			}
			return x | uint64(b)<<s, i + 1, nil
		}
		x |= uint64(b&0x7f) << s
		s += 7
	}
	return x, binary.MaxVarintLen64, errors.New("uvarint overflows 64 bits")
}

// syncDir fsyncs a directory so that file creations, renames and removals in
// it survive a power loss.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
