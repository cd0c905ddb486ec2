package statetest

import (
	"testing"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/vfs"

	"github.com/holdfast/holdfast/internal/state"
)

// PowerLoss is a strict in-memory file system holding one store.
type PowerLoss struct {
	t  testing.TB
	fs *vfs.MemFS
}

// NewPowerLoss makes the file system with the store's directory created
// and synced, as a collector's data directory is before its store opens.
func NewPowerLoss(t testing.TB) *PowerLoss {
	t.Helper()
	fs := vfs.NewStrictMem()
	if err := fs.MkdirAll("state", 0o755); err != nil {
		t.Fatal(err)
	}
	root, err := fs.OpenDir("")
	if err != nil {
		t.Fatal(err)
	}
	if err := root.Sync(); err != nil {
		t.Fatal(err)
	}
	root.Close()
	return &PowerLoss{t: t, fs: fs}
}

// Open opens the store (creating it the first time).
func (p *PowerLoss) Open() *pebble.DB {
	p.t.Helper()
	db, err := state.OpenFS(p.fs, "state", nil)
	if err != nil {
		p.t.Fatal(err)
	}
	return db
}

// Cut is the power loss: closeAll (which closes the store and whatever is
// built on it) runs without any of its syncs taking effect, and every write
// that was not synced is dropped. Open the store again after it.
func (p *PowerLoss) Cut(closeAll func()) {
	p.fs.SetIgnoreSyncs(true)
	closeAll()
	p.fs.ResetToSyncedState()
	p.fs.SetIgnoreSyncs(false)
}
