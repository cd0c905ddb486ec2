package wal_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/holdfast/holdfast/wal"
)

const rollCrashChildEnv = "HOLDFAST_WAL_ROLL_CRASH_CHILD"

// rollCrashOptions and rollCrashRecord: a budget the child fills with
// records that leave bytes in the tail segment (3,570 of 4,096), so that
// truncating through the last record rolls the tail.
func rollCrashOptions() wal.Options {
	return wal.Options{SegmentSize: 4096, BudgetBytes: 16 << 10}
}

const rollCrashRecord = 700

// TestRollCrashChild is the child side of TestKilledInsideTheTailRoll; it
// does nothing in a normal test run. It fills the log to its budget, says
// how many records it appended, then truncates through the last one, which
// rolls the tail; it is SIGKILLed inside that roll, after the new segment's
// temp file is synced and before its rename.
func TestRollCrashChild(t *testing.T) {
	dir := os.Getenv(rollCrashChildEnv)
	if dir == "" {
		return
	}
	l, err := wal.Open(dir, rollCrashOptions())
	if err != nil {
		os.Exit(3)
	}
	n := 0
	for ; ; n++ {
		_, err := l.Append(context.Background(), wal.Record{Type: wal.TypePage, Payload: payload(n+1, rollCrashRecord)})
		if errors.Is(err, wal.ErrFull) {
			break
		}
		if err != nil {
			os.Exit(4)
		}
	}
	say := childSay()
	tail := ""
	for name := range l.SegmentsModel() { // names are 20-digit first indexes
		tail = max(tail, name)
	}
	if l.SegmentsModel()[tail] == 0 {
		say("tail empty\n") // nothing to roll: rollCrashRecord no longer leaves bytes in the tail
		os.Exit(7)
	}
	say("appended %d\n", n)
	wal.SetAtomicCrashHook(func() {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	})
	if _, err := l.TruncateThrough(uint64(n)); err != nil {
		os.Exit(5)
	}
	os.Exit(6) // no roll: the hook never ran
}

// TestKilledInsideTheTailRoll: a collector killed while it rolls the WAL's
// tail (the new segment written as a temp file, synced, not yet renamed)
// leaves that temp file behind. Open removes it, every acknowledged record
// is still there, and the next roll, which creates the same temp name
// exclusively, succeeds.
func TestKilledInsideTheTailRoll(t *testing.T) {
	dir := t.TempDir()
	c := startChild(t, "TestRollCrashChild", rollCrashChildEnv, dir)
	// A child stuck in an append or the roll must not hang the run.
	stuck := time.AfterFunc(time.Minute, func() { c.cmd.Process.Kill() })
	var lines []string
	for line := range c.lines {
		lines = append(lines, line)
	}
	err := c.cmd.Wait()
	if !stuck.Stop() {
		t.Fatalf("child still running after a minute; it said %q", lines)
	}
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child: %v (%s), want it killed in the roll; it said %q", err, c.stderr.String(), lines)
	}
	var n int
	if len(lines) != 1 {
		t.Fatalf("child said %q", lines)
	}
	if _, err := fmt.Sscanf(lines[0], "appended %d", &n); err != nil || n < 2 {
		t.Fatalf("child said %q", lines)
	}
	temps, _ := filepath.Glob(filepath.Join(dir, "*.tmp"))
	if len(temps) != 1 || !strings.HasSuffix(temps[0], ".repair.tmp") {
		t.Fatalf("temp files after the kill: %v, want the roll's one", temps)
	}

	l := openLog(t, dir, rollCrashOptions())
	defer l.Close()
	if temps, _ := filepath.Glob(filepath.Join(dir, "*.tmp")); len(temps) != 0 {
		t.Fatalf("Open left %v", temps)
	}
	checkRecords(t, l, 1, n, rollCrashRecord)
	if _, err := l.TruncateThrough(uint64(n)); err != nil {
		t.Fatal(err)
	}
	if st := l.Stats(); st.Full() {
		t.Fatalf("after the truncation the log is still full: %+v (the roll failed)", st)
	}
	appendN(t, l, n+1, 3, rollCrashRecord)
	checkRecords(t, l, n+1, n+3, rollCrashRecord)
}
