package collector_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/holdfast/holdfast/internal/tmpfstest"
)

// TestFullDiskSurvivedAndRecovered reproduces issue 8's full disk: the
// collector's data directory is a small tmpfs, ClickHouse is down, and the
// WAL (no budget) fills the disk until appends fail with ENOSPC. The
// collector must stop acknowledging (the producer keeps its samples, drops
// none), say so in /v1/status and /healthz, and when ClickHouse returns the
// forwarder's truncation frees space and the WAL recovers by itself (this is
// where the old code reopened tidwall on a torn tail and panicked in
// wal.(*Log).Close): collection resumes and every sample arrives, once.
func TestFullDiskSurvivedAndRecovered(t *testing.T) {
	newClickHouse(t, "") // requires ClickHouse (fails under CI without it)
	mnt := tmpfstest.Mount(t, "12m")
	chAddr, restartClickHouse := downClickHouse(t)

	addr := freeAddr(t)
	const total = 400_000
	startProc(t, "producer", producerArgs(addr, 1000, "200ms", total)...)
	admin := freeAddr(t)
	db := "e2e_fulldisk"
	c := startProc(t, "collector", collectorArgs(filepath.Join(mnt, "data"), admin, chAddr, db, []string{addr}, "--page-limit", "2000")...)
	waitFor(t, 2*time.Minute, "the WAL to fail on the full disk", func() (bool, string) {
		st, err := collectorStatus(admin)
		if err != nil {
			return false, err.Error()
		}
		return st.State == "wal_failed" && strings.Contains(st.WALFailed, "no space left"), fmt.Sprintf("state %s %s, checkpoint %+v", st.State, st.WALFailed, st.Checkpoint)
	})
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
	if !strings.Contains(c.out.String(), "recovered") {
		t.Errorf("no recovery in the collector's log:\n%s", tail(c.out.String(), 2000))
	}
	c.stop()
}

// TestFullDiskFreedFromOutside: ClickHouse is up, and something else fills
// the collector's disk (a filler file on its 24 MiB tmpfs). The WAL fails
// with ENOSPC; the producer keeps what was not acknowledged; when the filler
// is deleted the WAL recovers by itself (its background retry, no restart)
// and everything arrives, once.
func TestFullDiskFreedFromOutside(t *testing.T) {
	ch := newClickHouse(t, "")
	db := ch.database("fulldisk_outside")
	mnt := tmpfstest.Mount(t, "24m")
	addr := freeAddr(t)
	const total = 300_000
	startProc(t, "producer", producerArgs(addr, 1000, "200ms", total)...)
	admin := freeAddr(t)
	c := startProc(t, "collector", collectorArgs(filepath.Join(mnt, "data"), admin, ch.addr, db, []string{addr}, "--page-limit", "2000")...)
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
