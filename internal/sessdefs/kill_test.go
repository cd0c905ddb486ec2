package sessdefs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

const killChildEnv = "HOLDFAST_SESSDEFS_KILL_CHILD"

// TestKilledWriterKeepsSyncedDefinitions: a child process appends
// definitions to two sessions, syncing every 50 and recording after each
// Sync how far it got, and is SIGKILLed at a different moment each round.
// Reopened, every file holds every definition the last completed Sync
// covered, in order, reads back with at most a record the kill tore at its
// end cut back (and set aside), and takes appends again.
func TestKilledWriterKeepsSyncedDefinitions(t *testing.T) {
	keys := []string{"a\x00i\x00s1", "b\x00i\x00s2"}
	for round, after := range []time.Duration{30 * time.Millisecond, 80 * time.Millisecond, 150 * time.Millisecond, 300 * time.Millisecond} {
		t.Run(fmt.Sprint(round), func(t *testing.T) {
			dir := t.TempDir()
			cmd := exec.Command(os.Args[0], "-test.run=^TestKillChild$", "-test.count=1")
			cmd.Env = append(os.Environ(), killChildEnv+"="+dir)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			// Wait for the first Sync, then let it run a little longer.
			deadline := time.Now().Add(30 * time.Second)
			for {
				if _, err := os.Stat(filepath.Join(dir, "synced")); err == nil {
					break
				}
				if time.Now().After(deadline) {
					cmd.Process.Kill()
					t.Fatal("the child never synced")
				}
				time.Sleep(5 * time.Millisecond)
			}
			time.Sleep(after)
			cmd.Process.Signal(syscall.SIGKILL)
			cmd.Wait()
			b, err := os.ReadFile(filepath.Join(dir, "synced"))
			if err != nil {
				t.Fatal(err)
			}
			synced, err := strconv.Atoi(string(b))
			if err != nil {
				t.Fatalf("synced marker %q: %v", b, err)
			}
			var repairs []Repair
			s := openStore(t, filepath.Join(dir, "defs"), &repairs)
			for _, k := range keys {
				var got []uint32
				if err := s.Load(k, func(id uint32, d []byte) {
					if !bytes.Equal(d, def(uint64(id))) {
						t.Fatalf("%q id %d reads %q", k, id, d)
					}
					got = append(got, id)
				}); err != nil {
					t.Fatal(err)
				}
				if len(got) < synced {
					t.Fatalf("%q: %d definitions after the kill, %d were synced", k, len(got), synced)
				}
				for i, id := range got {
					if id != uint32(i) {
						t.Fatalf("%q: definition %d has id %d", k, i, id)
					}
				}
				if err := s.Append(k, uint64(len(got)), def(uint64(len(got)))); err != nil {
					t.Fatal(err)
				}
				if d, err := s.Get(nil, k, uint64(len(got))); err != nil || !bytes.Equal(d, def(uint64(len(got)))) {
					t.Fatalf("%q: an append after the kill reads %q, %v", k, d, err)
				}
				t.Logf("%q: %d definitions, %d synced", k, len(got), synced)
			}
			// The page cache keeps what write(2) copied, but Linux may end a
			// write between pages when a fatal signal arrives: the record
			// being written then is torn at the file's end, and only it
			// may be cut back (the synced definitions were counted above).
			for _, r := range repairs {
				if !errors.Is(r.Reason, io.ErrUnexpectedEOF) || r.Dropped <= 0 || r.Dropped > 4096 {
					t.Fatalf("a repair after a SIGKILL other than one torn record at the end: %+v", r)
				}
				if fi, err := os.Stat(r.Aside); err != nil || fi.Size() < r.Dropped {
					t.Fatalf("the torn tail was not set aside: %+v, %v", r, err)
				}
				t.Logf("a record torn by the kill was cut back: %+v", r)
			}
		})
	}
}

// TestKillChild is TestKilledWriterKeepsSyncedDefinitions' child: it
// appends until killed.
func TestKillChild(t *testing.T) {
	dir := os.Getenv(killChildEnv)
	if dir == "" {
		return
	}
	s, err := Open(filepath.Join(dir, "defs"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	keys := []string{"a\x00i\x00s1", "b\x00i\x00s2"}
	for id := uint64(0); ; id++ {
		for _, k := range keys {
			if err := s.Append(k, id, def(id)); err != nil {
				t.Fatal(err)
			}
			if err := s.Flush(); err != nil {
				t.Fatal(err)
			}
		}
		if id%50 == 49 {
			if err := s.Sync(); err != nil {
				t.Fatal(err)
			}
			// Written after the Sync returned: what the parent may count on.
			tmp := filepath.Join(dir, "synced.tmp")
			if err := os.WriteFile(tmp, []byte(strconv.FormatUint(id+1, 10)), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, filepath.Join(dir, "synced")); err != nil {
				t.Fatal(err)
			}
		}
	}
}
