package forwarder

import (
	"context"
	"fmt"
	"time"

	"github.com/holdfast/holdfast/wal"
)

// walGap handles a read before the WAL's first record at run time. The
// forwarder truncates the WAL only through its own checkpoint, so the
// records from the reader's position up to the WAL's first were never
// forwarded and are gone (a segment file deleted from outside, a log
// recreated): skipping to the first record would lose them without a word.
// It stops forwarding with a *wal.CorruptionError naming the missing range,
// shown in the status; nil means the range moved meanwhile and the read can
// be tried again.
func (f *Forwarder) walGap(r *wal.Reader) error {
	err := f.wal.CheckCheckpoint(r.Position() - 1)
	if err == nil {
		return nil
	}
	err = fmt.Errorf("forwarder: stopped: %w", err)
	f.log.Error("records missing from the WAL; forwarding stopped", "err", err)
	f.mu.Lock()
	f.mu.status.LastInsertError, f.mu.status.LastErrorTime = err.Error(), time.Now()
	f.mu.Unlock()
	return err
}

// waitReadRetry waits before reading again after a read error that is not
// damage (wal.ErrRead: an I/O error; the record may be intact, and
// quarantining it would drop a good record). It reports false when ctx ended.
func (f *Forwarder) waitReadRetry(ctx context.Context, attempt int, err error) bool {
	delay := f.backoff(attempt - 1)
	f.log.Warn("reading the WAL failed; retrying", "err", err, "attempt", attempt, "retry_in", delay)
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
