package statetest

import (
	"testing"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/vfs"
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
	db, err := pebble.Open("state", &pebble.Options{FS: p.fs, FormatMajorVersion: pebble.FormatVirtualSSTables})
	if err != nil {
		p.t.Fatal(err)
	}
	return db
}

// Cut is the power loss: db is closed without its close syncing anything,
// every write that was not synced is dropped, and the store is opened
// again.
func (p *PowerLoss) Cut(db *pebble.DB) *pebble.DB {
	p.t.Helper()
	p.fs.SetIgnoreSyncs(true)
	db.Close()
	p.fs.ResetToSyncedState()
	p.fs.SetIgnoreSyncs(false)
	return p.Open()
}
