package wal

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// writeFileAtomic creates or replaces path durably and all or nothing, the
// standard way: fill writes the content to tmp (created exclusively), which
// is fsynced, renamed over path, and the directory is fsynced. On failure
// tmp is removed, so a full disk never leaves a partial file behind; before
// the rename path is untouched. tmp must be a name removeStaleTemps removes
// at Open (a crash can leave it).
func writeFileAtomic(path, tmp string, fill func(io.Writer) error) error {
	err := func() error {
		f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o640)
		if err != nil {
			return err
		}
		if err := fill(f); err != nil {
			f.Close()
			return err
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		if atomicCrashHook != nil {
			atomicCrashHook()
		}
		return os.Rename(tmp, path)
	}()
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(filepath.Dir(path))
}

// truncateSynced cuts a file to size bytes and fsyncs it.
func truncateSynced(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return fmt.Errorf("wal: truncating %s to %d bytes: %w", path, size, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("wal: fsync of cut %s: %w", path, err)
	}
	return f.Close()
}

// atomicCrashHook, when set (by crash tests only, in a child process they
// kill), runs after writeFileAtomic's temp file is synced and closed and
// before it is renamed.
var atomicCrashHook func()
