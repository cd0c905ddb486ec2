package collector_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/holdfast/holdfast/internal/tmpfstest"
	"github.com/holdfast/holdfast/wal"
)

// TestFullDiskSurvivedAndRecovered reproduces issue 8's full disk: the
// collector's data directory is a small tmpfs, ClickHouse is down, and the
// WAL (no budget) fills the disk. It stops at --wal-reserve: the state
// store beside it keeps room for the series definitions and checkpoints it
// must write (Pebble panics when a write fails; before the reserve, a
// version 3 session's definitions written on the full disk crashed the
// collector). The collector stops acknowledging (the producer keeps its
// samples, drops none) and says so in /v1/status; when ClickHouse returns,
// the forwarder's truncation frees space: collection resumes and every
// sample arrives, once. The WAL's own ENOSPC path (a failed write cut and
// recovered) is TestFullDiskFreedFromOutside's and package wal's.
func TestFullDiskSurvivedAndRecovered(t *testing.T) {
	newClickHouse(t, "") // requires ClickHouse (fails under CI without it)
	// The state store takes ~10 MiB of it: Pebble preallocates each log
	// file (4.4 MiB) and keeps one for reuse, and the series definitions
	// of the producer's session fill a memtable. Version 3 pages are ~27
	// bytes a sample: 400,000 samples are more than the WAL has room for
	// before its reserve, and the rest fits the producer's 256 MiB buffer.
	mnt := tmpfstest.Mount(t, "24m")
	chAddr, restartClickHouse := downClickHouse(t)

	addr := freeAddr(t)
	const total = 400_000
	startProc(t, "producer", producerArgs(addr, 1000, "200ms", total)...)
	admin := freeAddr(t)
	db := "e2e_fulldisk"
	const reserve = 6 << 20
	c := startProc(t, "collector", collectorArgs(filepath.Join(mnt, "data"), admin, chAddr, db, []string{addr}, "--page-limit", "2000", "--wal-reserve", fmt.Sprint(reserve))...)
	waitFor(t, 2*time.Minute, "the WAL to stop at the disk's reserve", func() (bool, string) {
		st, err := collectorStatus(admin)
		if err != nil {
			return false, err.Error()
		}
		return st.State == "backpressure" && st.WALFull, fmt.Sprintf("state %s %s, checkpoint %+v", st.State, st.WALFailed, st.Checkpoint)
	})
	if free := wal.FreeBytes(mnt); free < reserve-(2<<20) {
		t.Fatalf("the WAL stopped with %d bytes free on the disk, its reserve is %d", free, reserve)
	}
	expectHeldThenDelivered(t, "on a full disk", admin, addr, total, restartClickHouse, chAddr, db)
	waitFor(t, 30*time.Second, "the collector to be running again", func() (bool, string) {
		st, err := collectorStatus(admin)
		return err == nil && st.State == "running", fmt.Sprint(st.State, st.WALFailed, err)
	})
	select {
	case <-c.done:
		t.Fatalf("the collector exited:\n%s", tail(c.out.String(), 3000))
	default:
	}
	c.stop()
}

// TestFullDiskFreedFromOutside: ClickHouse is up, and something else fills
// the collector's disk (a filler file on its 48 MiB tmpfs). The WAL fails
// with ENOSPC; the producer keeps what was not acknowledged; when the filler
// is deleted the WAL recovers by itself (its background retry, no restart)
// and everything arrives, once.
func TestFullDiskFreedFromOutside(t *testing.T) {
	ch := newClickHouse(t, "")
	db := ch.database("fulldisk_outside")
	// 48 MiB: the state store takes ~15 MiB of it with a session's series
	// definitions (Pebble preallocates its log files), and must have room
	// for them before the filler takes the rest.
	mnt := tmpfstest.Mount(t, "48m")
	addr := freeAddr(t)
	const total = 300_000
	startProc(t, "producer", producerArgs(addr, 1000, "200ms", total)...)
	admin := freeAddr(t)
	// No --wal-reserve: the filler takes the last byte and the WAL's own
	// write fails (ENOSPC), the path this test is about. The series
	// definitions were stored before the disk filled; the forwarder
	// stores none without room (forwarder/diskspace.go).
	c := startProc(t, "collector", collectorArgs(filepath.Join(mnt, "data"), admin, ch.addr, db, []string{addr}, "--page-limit", "2000", "--wal-reserve", "0")...)
	waitFor(t, time.Minute, "collection to start", func() (bool, string) {
		st, err := producerStats(addr)
		return err == nil && st.Released > 0, fmt.Sprintf("%+v %v", st.BufferStats, err)
	})
	filler := filepath.Join(mnt, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 256<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			break // the disk is full
		}
	}
	f.Close()
	waitFor(t, time.Minute, "the WAL to fail on the full disk", func() (bool, string) {
		st, err := collectorStatus(admin)
		if err != nil {
			return false, err.Error()
		}
		return st.State == "wal_failed", fmt.Sprintf("state %s %s", st.State, st.WALFailed)
	})
	ps, err := producerStats(addr)
	if err != nil || ps.Dropped != 0 {
		t.Fatalf("producer while the disk is full: %+v %v", ps.BufferStats, err)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	waitReleased(t, addr, total, 3*time.Minute)
	flush(t, admin)
	ch.expect(db, total)
	waitFor(t, 30*time.Second, "the collector to be running again", func() (bool, string) {
		st, err := collectorStatus(admin)
		return err == nil && st.State == "running", fmt.Sprint(st.State, st.WALFailed, err)
	})
	if !strings.Contains(c.out.String(), "recovered from a failed write") {
		t.Errorf("no recovery in the collector's log:\n%s", tail(c.out.String(), 2000))
	}
	c.stop()
}
