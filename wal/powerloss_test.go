package wal_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/holdfast/holdfast/internal/tmpfstest"
	"github.com/holdfast/holdfast/wal"
)

const powerLossChildEnv = "HOLDFAST_WAL_POWERLOSS_CHILD"

// TestPowerLossChild is the child side of TestPowerLossLosesNothingAcknowledged;
// it skips in a normal run. It appends from eight writers and reports
// on stdout, in order, every durable segment size ("S name size", from the
// log's synced hook, before the appends of that commit return) and every
// acknowledgement ("A index writer seq").
func TestPowerLossChild(t *testing.T) {
	spec := os.Getenv(powerLossChildEnv)
	if spec == "" {
		t.Skip("the child of TestPowerLossLosesNothingAcknowledged; runs only when it starts it")
	}
	dir, roundStr, _ := strings.Cut(spec, "|")
	round, _ := strconv.Atoi(roundStr)
	say := childSay()
	opts := wal.Options{SegmentSize: 32 << 10}
	wal.SetSyncedHook(&opts, func(seg string, size int64) {
		// Widen the window in which written bytes are not yet known to
		// be durable (on a tmpfs fsync is instant): the parent rolls
		// them back, as a power cut may.
		time.Sleep(300 * time.Microsecond)
		say("S %s %d\n", seg, size)
	})
	l, err := wal.Open(dir, opts)
	if err != nil {
		fmt.Fprintf(os.Stderr, "child open: %v\n", err)
		os.Exit(3)
	}
	appendForever(l, round, func(idx uint64, writer, seq int) {
		say("A %d %d %d\n", idx, writer, seq)
	})
}

// powerCut rolls the directory back to what a power loss could leave: every
// segment file goes back to its last durable size, plus (at random) nothing,
// a prefix of the bytes written after it, or that prefix followed by zeros
// (the shapes of partial writeback). A segment file never reported durable
// was created after the last directory fsync: it vanishes, or keeps a random
// prefix. It returns a description for failure messages.
func powerCut(t *testing.T, dir string, synced map[string]int64, rng *rand.Rand) string {
	t.Helper()
	names := segmentNames(dir)
	// tidwall/wal fsyncs a segment before it creates the next one (its
	// cycle), so a segment followed by a file that exists is durable at its
	// full size even when the commit that filled it was cut before it
	// reported. (Without this the roll-back would invent a gap no power
	// loss can make.)
	for i := 0; i+1 < len(names); i++ {
		if st, err := os.Stat(filepath.Join(dir, names[i])); err == nil {
			synced[names[i]] = max(synced[names[i]], st.Size())
		}
	}
	var did []string
	for _, name := range names {
		path := filepath.Join(dir, name)
		durable, known := synced[name]
		if st, err := os.Stat(path); err == nil && known && st.Size() == durable {
			continue // nothing written since it was durable
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !known {
			if rng.IntN(2) == 0 {
				if err := os.Remove(path); err != nil {
					t.Fatal(err)
				}
				did = append(did, name+": removed (never durable)")
				continue
			}
			durable = 0
		}
		if durable > int64(len(data)) {
			t.Fatalf("%s: reported durable at %d bytes, holds %d", name, durable, len(data))
		}
		unsynced := data[durable:]
		keep := 0
		if len(unsynced) > 0 {
			keep = rng.IntN(len(unsynced) + 1)
		}
		out := append([]byte(nil), data[:durable]...)
		how := "dropped"
		switch rng.IntN(3) {
		case 0:
		case 1:
			out = append(out, unsynced[:keep]...)
			how = "kept a prefix"
		case 2:
			out = append(out, unsynced[:keep]...)
			out = append(out, make([]byte, len(unsynced)-keep)...)
			how = "kept a prefix, zeros after"
		}
		if err := os.WriteFile(path, out, 0o640); err != nil {
			t.Fatal(err)
		}
		did = append(did, fmt.Sprintf("%s: durable %d, %d unsynced bytes %s (%d kept)", name, durable, len(unsynced), how, keep))
	}
	return strings.Join(did, "; ")
}

// TestPowerLossLosesNothingAcknowledged simulates 100 power cuts at random
// moments. tidwall/wal writes through *os.File, so there is no file-system
// seam to drop unsynced data inside the process; instead the child reports
// each durable size (after fsync of file and directory, before the appends
// return) and the parent, after SIGKILL, rolls every file back to it (see
// powerCut and DESIGN.md for what this models and what it cannot). Every
// acknowledged record must then be intact, Open must succeed (a torn end is
// repaired, never refused), and no index is ever acknowledged twice.
func TestPowerLossLosesNothingAcknowledged(t *testing.T) {
	trials := 100
	if testing.Short() {
		trials = 25
	}
	// The power cut is emulated by rolling files back, so the file
	// system's own durability plays no part: a tmpfs (where fsync costs
	// nothing) keeps 100 trials within a few seconds. Without root, a
	// normal directory works too, only slower.
	dir, why := tmpfstest.TryMount(t, "256m")
	if why != "" {
		t.Logf("no tmpfs (%s); using %s", why, dir)
	}
	acked := map[uint64]ack{}
	synced := map[string]int64{}
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(2, seed))
	repairs, verified := 0, len(acked)
	for round := 0; round < trials; round++ {
		c := startChild(t, "TestPowerLossChild", powerLossChildEnv, fmt.Sprintf("%s|%d", dir, round))
		var all []string
		for line := range c.lines {
			all = append(all, line)
			if strings.HasPrefix(line, "A ") {
				break // the child is going: cut the power at a random moment
			}
		}
		if len(all) == 0 {
			c.cmd.Wait()
			t.Fatalf("round %d: child wrote nothing; stderr: %s", round, c.stderr.String())
		}
		time.Sleep(time.Duration(rng.IntN(20000)) * time.Microsecond)
		all = append(all, c.kill(t)...)
		for _, line := range all {
			var idx uint64
			var w, s int
			var name string
			var size int64
			switch {
			case strings.HasPrefix(line, "S "):
				if _, err := fmt.Sscanf(line, "S %s %d", &name, &size); err == nil && size > synced[name] {
					synced[name] = size
				}
			case strings.HasPrefix(line, "A "):
				if _, err := fmt.Sscanf(line, "A %d %d %d", &idx, &w, &s); err != nil {
					continue // cut by the kill: not an acknowledgement
				}
				if prev, dup := acked[idx]; dup {
					t.Fatalf("round %d: index %d acknowledged twice (%v, now %d/%d/%d)", round, idx, prev, round, w, s)
				}
				acked[idx] = ack{round, w, s}
			}
		}
		cut := powerCut(t, dir, synced, rng)
		l, err := wal.Open(dir, wal.Options{SegmentSize: 32 << 10})
		if err != nil {
			t.Fatalf("round %d (seed %d): Open after a power cut: %v\ncut: %s", round, seed, err, cut)
		}
		if l.Repair() != nil {
			repairs++
		}
		r := l.NewReader(l.Stats().FirstIndex)
		for {
			idx, rec, ok, err := r.Next()
			if err != nil {
				t.Fatalf("round %d: reading %d: %v", round, r.Position(), err)
			}
			if !ok {
				break
			}
			if a, was := acked[idx]; was && !bytes.Equal(rec.Payload, crashPayload(a.round, a.writer, a.seq)) {
				t.Fatalf("round %d (seed %d): index %d holds %.30q, acknowledged %v\ncut: %s", round, seed, idx, rec.Payload, a, cut)
			}
		}
		last := l.Stats().LastIndex
		for idx, a := range acked {
			if idx > last {
				t.Fatalf("round %d (seed %d): acknowledged index %d (%v) is gone; log ends at %d\ncut: %s", round, seed, idx, a, last, cut)
			}
		}
		// Verified: drop what is behind, as the forwarder would, so each
		// round costs the same (and truncation is part of the history).
		if _, err := l.TruncateThrough(last); err != nil {
			t.Fatalf("round %d: TruncateThrough: %v", round, err)
		}
		first := l.Stats().FirstIndex
		for idx := range acked {
			if idx < first {
				delete(acked, idx)
				verified++
			}
		}
		l.Close()
		// What the verifying open left is durable now (it fsynced its
		// repair, and Close fsynced the tail): the next round starts there.
		clear(synced)
		for name, size := range wal.SegmentsOnDisk(dir) {
			synced[name] = size
		}
	}
	verified += len(acked)
	t.Logf("%d power cuts, %d acknowledged records verified, %d opens repaired a torn end (seed %d)", trials, verified, repairs, seed)
	if verified < trials {
		t.Fatalf("only %d acknowledgements in %d trials: the test did not exercise the log", len(acked), trials)
	}
}
