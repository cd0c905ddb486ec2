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
		// Enough for the longest length prefix and the header fields
		// parseFrameHeader checks; fewer bytes at the end of the file.
		hdr, perr := br.Peek(binary.MaxVarintLen64 + 8)
		if perr != nil && perr != io.EOF && perr != bufio.ErrBufferFull {
			return good, off, fmt.Errorf("wal: reading %s at offset %d: %w", seg.name, off, perr) // I/O, not damage
		}
		if len(hdr) == 0 {
			return good, off, nil
		}
		size, prefix, ok := parseFrameHeader(hdr)
		if !ok {
			return corrupt(fmt.Errorf("%w: bad or torn frame header (length prefix, magic, version, type or payload length)", ErrBadRecord))
		}
		if cap(buf) < size {
			buf = make([]byte, size)
		}
		buf = buf[:size]
		if _, err := io.ReadFull(br, buf); err != nil {
			if err != io.ErrUnexpectedEOF && err != io.EOF {
				return good, off, fmt.Errorf("wal: reading %s at offset %d: %w", seg.name, off, err)
			}
			return corrupt(fmt.Errorf("torn record: want %d bytes: %w", size, err))
		}
		rec, err := decodeEnvelope(buf[prefix:])
		if err != nil {
			return corrupt(err)
		}
		if visit != nil {
			if err := visit(frameInfo{Index: seg.start + good, Offset: off, Size: int64(size), Record: rec}); err != nil {
				if err == errStopScan {
					return good + 1, off + int64(size), nil
				}
				return good, off, err
			}
		}
		good++
		off += int64(size)
	}
}

// parseFrameHeader reads the length prefix and the envelope header at the
// start of b. ok says the prefix is in range and the header agrees with it
// (magic, format version, non-zero type, payload length); size is then the
// whole frame's (prefix + envelope), which may run past the end of b, and
// prefix the length prefix's. The checksum is not checked.
func parseFrameHeader(b []byte) (size, prefix int, ok bool) {
	n, used := binary.Uvarint(b)
	if used <= 0 || n < headerSize || n > headerSize+MaxPayload || len(b) < used+8 {
		return 0, 0, false
	}
	h := b[used:]
	if h[0] != magic0 || h[1] != magic1 || h[2] != formatVersion || h[3] == 0 ||
		uint64(binary.LittleEndian.Uint32(h[4:8])) != n-headerSize {
		return 0, 0, false
	}
	return used + int(n), used, true
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
