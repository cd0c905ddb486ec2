package sessdefs

import (
	"errors"
	"fmt"
	"syscall"
)

// reserveChunk is the least a reservation allocates: records come a page
// at a time, and one fallocate serves many.
const reserveChunk = 1 << 20

// Reserve makes sure key's file (created if needed) has its next n bytes
// allocated on disk (fallocate, keeping the file's size), so that appends
// up to them cannot fail for want of space: the forwarder reserves before
// it takes a record's definitions, and a full disk makes it wait (an error
// for which IsNoSpace is true) instead of failing half way through a
// record. On a file system without fallocate it reserves nothing and
// returns nil (appends may then fail on a full disk, stopping the caller).
func (s *Store) Reserve(key string, n int64) error {
	fi, err := s.file(key, true)
	if err != nil {
		return err
	}
	if fi.noFallocate || fi.end+n <= fi.reserved {
		return nil
	}
	from := max(fi.end, fi.reserved)
	size := max(fi.end+n-from, reserveChunk)
	err = syscall.Fallocate(int(fi.h.Fd()), 1 /* FALLOC_FL_KEEP_SIZE */, from, size)
	switch {
	case err == nil:
		fi.reserved = from + size
		return nil
	case errors.Is(err, syscall.EOPNOTSUPP), errors.Is(err, syscall.ENOSYS):
		fi.noFallocate = true
		return nil
	}
	return fmt.Errorf("sessdefs: reserving %d bytes in %s: %w", size, fi.path, err)
}

// release gives back the blocks Reserve allocated past fi's end, the
// file's size and bytes unchanged: an idle session's file, or every file
// at shutdown, keeps no room it is not using, so a collector of many
// producers does not hold a reservation (at least reserveChunk) for each.
// Best effort: where the truncation fails the blocks stay until the file
// is removed, and nothing is lost either way. Owner only, after the file
// was flushed.
func (s *Store) release(fi *file) {
	fi.mu.Lock()
	end := max(fi.end, fi.mu.size) // equal once flushed
	fi.mu.Unlock()
	if fi.noFallocate || fi.broken != nil || fi.reserved <= end {
		return // a broken file's end is not to be trusted: keep its blocks
	}
	// Truncating to the size it has frees the blocks past it (tested on
	// ext4 and tmpfs; ext4 ignores a hole punched past the end).
	if err := fi.h.Truncate(end); err == nil {
		fi.reserved = end
	}
}

// IsNoSpace reports whether err says the disk is full.
func IsNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}
