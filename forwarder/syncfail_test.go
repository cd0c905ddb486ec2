package forwarder

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/holdfast/holdfast/internal/sampletest"
)

// TestFailedDefinitionsSyncStopsTheForwarder: before a checkpoint passes
// version 3 records, the session files holding their definitions are
// fsynced with their directory. When that fsync fails (here the sessions
// directory is renamed away after the batch's INSERT, so the directory's
// fsync fails) the forwarder stops with the error instead of retrying (the
// kernel may have dropped what it did not write) and the checkpoint does
// not move. A forwarder started again, with the directory back, delivers
// every sample once.
func TestFailedDefinitionsSyncStopsTheForwarder(t *testing.T) {
	e := newEnv(t, "")
	all := e.appendRecords3(newSession3("test", "inc-1", 0xbeef), sampletest.NewFleet(5), 20, 110)
	sessions := e.options().SessionDir
	f, err := New(e.wal, e.state, e.options())
	if err != nil {
		t.Fatal(err)
	}
	f.afterInsert = func() {
		if err := os.Rename(sessions, sessions+".away"); err != nil {
			t.Error(err)
		}
	}
	runErr := make(chan error, 1)
	go func() { runErr <- f.Run(context.Background()) }()
	select {
	case err := <-runErr:
		if err == nil || !strings.Contains(err.Error(), "forwarder") {
			t.Fatalf("Run returned %v, want the failed sync", err)
		}
		t.Logf("Run stopped: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("the forwarder went on after the definitions' fsync failed")
	}
	f.Close()
	if ckpt, err := LoadCheckpoint(e.state); err != nil || ckpt != 0 {
		t.Fatalf("checkpoint %d (%v) after the failed sync, want 0: it passed records whose definitions are not durable", ckpt, err)
	}
	if err := os.Rename(sessions+".away", sessions); err != nil {
		t.Fatal(err)
	}
	f2, _ := e.start(e.options())
	e.flush(f2, 60*time.Second)
	if n := e.count(true); n != uint64(len(all)) {
		t.Fatalf("readers see %d samples, want %d", n, len(all))
	}
}
