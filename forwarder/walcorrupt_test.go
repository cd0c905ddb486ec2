package forwarder

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/holdfast/holdfast/internal/sampletest"
	"github.com/holdfast/holdfast/wal"
)

// TestRecordDamagedAfterOpenIsQuarantined: a byte of an older segment's
// record rots after the WAL was opened (Open checked it then), so the
// forwarder is the first to read the damage. That record alone is
// quarantined as corrupt, counted under its reason, and every other record
// is delivered: the pipeline neither stops nor skips more than the one
// record.
func TestRecordDamagedAfterOpenIsQuarantined(t *testing.T) {
	e := newEnv(t, "")
	// One older segment cached (the default, said here because the test
	// rests on it): with three or more segments the first is read from disk.
	e.reopenWAL(wal.Options{SegmentSize: 256 << 10, SegmentCacheSize: 1})
	samples := sampletest.NewFleet(5).Append(nil, 8000, 1_700_000_000_000_000_000)
	const pageSize = 100
	e.appendPages(samples, pageSize)
	segs := walSegments(t, e.dir+"/wal")
	if len(segs) < 3 {
		t.Fatalf("want at least 3 segments so that the first is read from disk, have %d", len(segs))
	}
	// The first segment holds records 1.. in order: damage the third
	// record's payload, past its 12-byte envelope header, in the file. The
	// frames around it stay whole, so only the envelope's CRC can tell.
	const victim = 3
	off := recordOffset(t, segs[0], victim) + 12 + 100
	flipByteAt(t, segs[0], off)

	f, _ := e.start(e.options())
	e.flush(f, 60*time.Second)

	q, err := quarantined(e.state)
	if err != nil {
		t.Fatal(err)
	}
	if len(q) != 1 || q[0].Index != victim || !strings.Contains(q[0].Reason, "corrupt") {
		t.Fatalf("quarantine holds %+v, want record %d alone, as corrupt", q, victim)
	}
	if got := counterValue(f.m.quarantined.WithLabelValues("corrupt")); got != 1 {
		t.Errorf("quarantined records counted as corrupt: %v, want 1", got)
	}
	if st := f.Status(); st.CheckpointIndex != e.wal.Stats().LastIndex {
		t.Fatalf("checkpoint %d, WAL last %d: the forwarder stopped at the damage", st.CheckpointIndex, e.wal.Stats().LastIndex)
	}
	if n, want := e.count(true), uint64(len(samples)-pageSize); n != want {
		t.Fatalf("ClickHouse holds %d samples, want every record's but the damaged one's: %d", n, want)
	}
}

// walSegments returns the WAL's segment files in order (their names are
// 20 digits: the first index).
func walSegments(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir) // sorted by name: index order
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if len(e.Name()) == 20 {
			names = append(names, filepath.Join(dir, e.Name()))
		}
	}
	return names
}

// recordOffset is the file offset of the n-th (1-based) record's bytes in
// a segment: tidwall/wal frames each as uvarint(length) followed by the
// bytes.
func recordOffset(t *testing.T, segment string, n int) int {
	t.Helper()
	b, err := os.ReadFile(segment)
	if err != nil {
		t.Fatal(err)
	}
	off := 0
	for i := 1; ; i++ {
		size, w := binary.Uvarint(b[off:])
		if w <= 0 || off+w+int(size) > len(b) {
			t.Fatalf("segment %s ends before record %d", segment, n)
		}
		if i == n {
			return off + w
		}
		off += w + int(size)
	}
}

func flipByteAt(t *testing.T, path string, off int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[off] ^= 0xff
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
