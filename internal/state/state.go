// Package state opens the collector's local key-value store (Pebble) with a
// small, fixed footprint. It holds the forwarder's checkpoint, the
// quarantine (package quarantine) and the cached producer assignment. Every write that matters is
// made with pebble.Sync by its owner.
package state

import (
	"fmt"
	"log/slog"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/vfs"
)

// Open opens (creating if needed) the store in dir.
func Open(dir string, log *slog.Logger) (*pebble.DB, error) {
	return OpenFS(vfs.Default, dir, log)
}

// OpenFS is Open on the file system fs: tests run the store on one that
// loses power (internal/statetest).
func OpenFS(fs vfs.FS, dir string, log *slog.Logger) (*pebble.DB, error) {
	if log == nil {
		log = slog.Default()
	}
	cache := pebble.NewCache(8 << 20)
	defer cache.Unref()
	db, err := pebble.Open(dir, &pebble.Options{
		FS:                 fs,
		Cache:              cache,
		MemTableSize:       4 << 20,
		MaxOpenFiles:       64,
		FormatMajorVersion: pebble.FormatVirtualSSTables,
		Logger:             pebbleLogger{log.With("component", "pebble")},
	})
	if err != nil {
		return nil, fmt.Errorf("state: opening %s: %w", dir, err)
	}
	return db, nil
}

type pebbleLogger struct{ log *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) { p.log.Debug(fmt.Sprintf(format, args...)) }
func (p pebbleLogger) Errorf(format string, args ...any) {
	p.log.Error(fmt.Sprintf(format, args...))
}
func (p pebbleLogger) Fatalf(format string, args ...any) {
	// Pebble calls Fatalf on unrecoverable states; it expects no return.
	panic(fmt.Sprintf("pebble: "+format, args...))
}
