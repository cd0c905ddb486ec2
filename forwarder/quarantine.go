package forwarder

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble"
)

// Keys in the state store (Pebble) owned by the forwarder.
var (
	checkpointKey    = []byte("forwarder/checkpoint")
	quarantinePrefix = []byte("forwarder/quarantine/")
)

// QuarantinedRecord is a WAL record the forwarder could not deliver because
// the data itself was refused (undecodable, invalid, or rejected by
// ClickHouse). It is kept, with the reason, for an operator to inspect.
type QuarantinedRecord struct {
	Index   uint64
	TimeNs  int64
	Reason  string
	Type    uint8
	Payload []byte // the record's payload as it was in the WAL, nil if unreadable
}

func quarantineKey(index uint64) []byte {
	return binary.BigEndian.AppendUint64(append([]byte(nil), quarantinePrefix...), index)
}

// value := i64 time_ns | u8 type | u32 len(reason) | reason | payload
func encodeQuarantined(q QuarantinedRecord) []byte {
	b := binary.BigEndian.AppendUint64(nil, uint64(q.TimeNs))
	b = append(b, q.Type)
	b = binary.BigEndian.AppendUint32(b, uint32(len(q.Reason)))
	b = append(b, q.Reason...)
	return append(b, q.Payload...)
}

func decodeQuarantined(key, val []byte) (QuarantinedRecord, error) {
	if len(key) != len(quarantinePrefix)+8 || len(val) < 13 {
		return QuarantinedRecord{}, errors.New("forwarder: malformed quarantine entry")
	}
	q := QuarantinedRecord{Index: binary.BigEndian.Uint64(key[len(quarantinePrefix):])}
	q.TimeNs = int64(binary.BigEndian.Uint64(val))
	q.Type = val[8]
	n := binary.BigEndian.Uint32(val[9:13])
	if uint64(n) > uint64(len(val)-13) {
		return QuarantinedRecord{}, errors.New("forwarder: malformed quarantine entry")
	}
	q.Reason = string(val[13 : 13+n])
	if rest := val[13+n:]; len(rest) > 0 {
		q.Payload = append([]byte(nil), rest...)
	}
	return q, nil
}

func putQuarantined(db *pebble.DB, q QuarantinedRecord) error {
	if q.TimeNs == 0 {
		q.TimeNs = time.Now().UnixNano()
	}
	if err := db.Set(quarantineKey(q.Index), encodeQuarantined(q), pebble.Sync); err != nil {
		return fmt.Errorf("forwarder: quarantining record %d: %w", q.Index, err)
	}
	return nil
}

// Quarantined lists the quarantined records, oldest index first.
func Quarantined(db *pebble.DB) ([]QuarantinedRecord, error) {
	upper := append([]byte(nil), quarantinePrefix...)
	upper[len(upper)-1]++
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: quarantinePrefix, UpperBound: upper})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []QuarantinedRecord
	for it.First(); it.Valid(); it.Next() {
		q, err := decodeQuarantined(it.Key(), it.Value())
		if err != nil {
			return nil, err
		}
		out = append(out, q)
	}
	return out, it.Error()
}

// LoadCheckpoint returns the index of the last WAL record known to be in
// ClickHouse, 0 if none.
func LoadCheckpoint(db *pebble.DB) (uint64, error) {
	v, closer, err := db.Get(checkpointKey)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("forwarder: reading checkpoint: %w", err)
	}
	defer closer.Close()
	if len(v) != 8 {
		return 0, fmt.Errorf("forwarder: checkpoint value of %d bytes, want 8", len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

func storeCheckpoint(db *pebble.DB, index uint64) error {
	if err := db.Set(checkpointKey, binary.BigEndian.AppendUint64(nil, index), pebble.Sync); err != nil {
		return fmt.Errorf("forwarder: writing checkpoint %d: %w", index, err)
	}
	return nil
}
