package forwarder

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble"
)

// On a cluster, replicated tables drop a block identical to one inserted
// before (same rows, same order, same partition), which makes a replayed
// batch invisible even without FINAL. A replay after a crash between INSERT
// and checkpoint produces identical blocks only if it cuts the batch at the
// same record as the lost run. Batch size limits cut it there by themselves
// (same records from the same checkpoint), but FlushAge and Flush cut by
// time. So before a batch's first INSERT the forwarder stores the batch's
// last index as "in flight" (pebble.Sync, one fsync per batch); after a
// restart the first batch ends exactly there.
var inflightKey = []byte("forwarder/inflight-last")

func storeInflight(db *pebble.DB, last uint64) error {
	if err := db.Set(inflightKey, binary.BigEndian.AppendUint64(nil, last), pebble.Sync); err != nil {
		return fmt.Errorf("forwarder: writing the in-flight batch end %d: %w", last, err)
	}
	return nil
}

// loadInflight returns the last index of the batch in flight when the
// process stopped, or 0.
func loadInflight(db *pebble.DB) (uint64, error) {
	v, closer, err := db.Get(inflightKey)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("forwarder: reading the in-flight batch end: %w", err)
	}
	defer closer.Close()
	if len(v) != 8 {
		return 0, fmt.Errorf("forwarder: in-flight batch end of %d bytes, want 8", len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}
