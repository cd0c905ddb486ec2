package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// errNotWAL is what `holdfast wal verify` says about a path that is neither a
// collector data directory nor a WAL directory. An empty or wrong directory
// used to verify as "no records ... OK", which an operator reads as "my data
// is fine" while pointing at the wrong place.
var errNotWAL = errors.New("not a collector data directory (no wal/ in it) nor a WAL directory (no segment files in it)")

// locateWAL resolves what the operator pointed at: a collector data directory
// (DIR/wal holds segments; DIR/state, if present, the checkpoint) or a WAL
// directory itself. Anything else (missing path, a file, an empty or
// unrelated directory, a data directory whose wal/ has no segments) is an
// error that names the path, never a silently empty WAL.
func locateWAL(dir string) (walDir, stateDir string, err error) {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "", "", fmt.Errorf("%s: no such directory (want a collector data directory, as in --data-dir, or its wal/)", dir)
	case err != nil:
		return "", "", err
	case !fi.IsDir():
		return "", "", fmt.Errorf("%s is a file, not a directory (want a collector data directory or its wal/, not a segment file)", dir)
	}
	if fi, err := os.Stat(filepath.Join(dir, "wal")); err == nil && fi.IsDir() {
		w, st := resolveDataDir(dir)
		n, err := countSegments(w)
		if err != nil {
			return "", "", err
		}
		if n == 0 {
			return "", "", fmt.Errorf("%s: data directory whose wal/ holds no segment files (a collector creates one when it opens its WAL)", dir)
		}
		return w, st, nil
	}
	n, err := countSegments(dir)
	if err != nil {
		return "", "", err
	}
	if n == 0 {
		return "", "", fmt.Errorf("%s: %w", dir, errNotWAL)
	}
	return dir, "", nil
}

// countSegments counts files named like WAL segments (20 decimal digits, as
// tidwall/wal names them). wal.Verify skips everything else silently, which
// is right inside a WAL and wrong for telling whether this is one.
func countSegments(dir string) (int, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || len(name) != 20 {
			continue
		}
		if v, err := strconv.ParseUint(name, 10, 64); err == nil && v > 0 {
			n++
		}
	}
	return n, nil
}
