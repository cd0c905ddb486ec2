package forwarder

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble"

	pa "github.com/holdfast/holdfast/producerapi"
	"github.com/holdfast/holdfast/quarantine"
)

// Keys in the state store (Pebble) owned by the forwarder. Its quarantine
// is the quarantine package's, shared with the collector.
var checkpointKey = []byte("forwarder/checkpoint")

// QuarantinedRecord is a WAL record the forwarder could not deliver because
// the data itself was refused (undecodable, invalid, or rejected by
// ClickHouse). It is kept, with the reason, for an operator to inspect
// (`holdfast quarantine`).
type QuarantinedRecord struct {
	Index   uint64
	TimeNs  int64
	Reason  string
	Type    uint8
	Payload []byte // the record's payload as it was in the WAL, nil if unreadable
}

func (f *Forwarder) openQuarantine(state *pebble.DB) error {
	if f.opts.Quarantine != nil {
		f.q = f.opts.Quarantine
		return nil
	}
	q, err := quarantine.Open(state, quarantine.Options{Registerer: f.opts.Registerer, Logger: f.log})
	if err != nil {
		return fmt.Errorf("forwarder: %w", err)
	}
	f.q, f.ownQ = q, true
	return nil
}

// quarantine keeps a record the forwarder cannot deliver (synced before the
// checkpoint passes it). When the quarantine is full the record is not kept:
// the store counts and reports that, and the forwarder moves on rather than
// stall every good record behind it.
func (f *Forwarder) quarantine(q QuarantinedRecord, reason string) error {
	e := quarantine.Entry{Kind: quarantine.KindRecord, WALIndex: q.Index, RecordType: q.Type, Payload: q.Payload, Code: reason, Reason: q.Reason}
	e.Producer, e.Incarnation, _ = pa.PageRecordOrigin(q.Payload) // best effort: it may be what is broken
	over, err := f.q.Put([]quarantine.Entry{e})
	if err != nil {
		return fmt.Errorf("forwarder: quarantining record %d: %w", q.Index, err)
	}
	f.m.quarantined.WithLabelValues(reason).Inc()
	if len(over) > 0 {
		f.log.Error("quarantine full: WAL record NOT kept", "index", q.Index, "producer", e.Producer, "reason", q.Reason, "payload_bytes", len(q.Payload))
		return nil
	}
	f.log.Error("quarantined WAL record", "index", q.Index, "producer", e.Producer, "reason", q.Reason, "id", e.ID)
	f.mu.Lock()
	f.mu.status.QuarantinedRecords++
	f.mu.Unlock()
	return nil
}

// Quarantined lists the records the forwarder quarantined, oldest first.
// It is for a stopped collector's state store (and tests): it opens the
// quarantine there without metrics.
func Quarantined(db *pebble.DB) ([]QuarantinedRecord, error) {
	q, err := quarantine.Open(db, quarantine.Options{BudgetBytes: -1})
	if err != nil {
		return nil, err
	}
	defer q.Close()
	var out []QuarantinedRecord
	var after uint64
	for {
		page, more, err := q.List(after, 1000)
		if err != nil {
			return nil, err
		}
		for _, e := range page {
			after = e.ID
			if e.Kind == quarantine.KindRecord {
				out = append(out, QuarantinedRecord{Index: e.WALIndex, TimeNs: e.TimeNs, Reason: e.Reason, Type: e.RecordType, Payload: e.Payload})
			}
		}
		if !more {
			return out, nil
		}
	}
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
