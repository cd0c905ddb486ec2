package forwarder

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/cockroachdb/pebble"

	pa "github.com/holdfast/holdfast/producerapi"
	"github.com/holdfast/holdfast/quarantine"
	"github.com/holdfast/holdfast/wal"
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

// errQuarantineFull is returned when a record the forwarder cannot deliver
// does not fit the quarantine. The record is acknowledged data (a valid
// sample ClickHouse refused, a key collision): it is never dropped. The
// forwarder holds instead, retrying with backoff, and the checkpoint stays
// before the record, so the WAL keeps it and its budget pushes back to the
// producers until an operator removes entries.
var errQuarantineFull = errors.New("forwarder: quarantine full, holding")

// producerLabel is the pattern a producer id must match to be used as a
// log or metric value: it is read from a payload that may be corrupt.
// Producer ids are registry ids or, for static producers, their URLs:
// printable ASCII without spaces, bounded.
var producerLabel = regexp.MustCompile(`^[!-~]{1,512}$`)

// quarantine keeps a record the forwarder cannot deliver (synced before the
// checkpoint passes it), or returns errQuarantineFull when it does not fit.
func (f *Forwarder) quarantine(q QuarantinedRecord, reason string) error {
	e := quarantine.Entry{Kind: quarantine.KindRecord, WALIndex: q.Index, RecordType: q.Type, Payload: q.Payload, Code: reason, Reason: q.Reason}
	if isRecord3(wal.Record{Type: wal.RecordType(q.Type), Payload: q.Payload}) {
		// Stored self-contained: the quarantine's tools read one entry
		// at a time, without the session's earlier definitions.
		p, err := selfContained3(f.defs, q.Payload)
		switch {
		case err == nil:
			e.Payload = p
			e.Reason += " (stored as a version 2 record of the same samples)"
		case errors.Is(err, errDefinitionUnreadable):
			// Stored as it is, the entry would need the session's file,
			// which goes with the session: keep the record in the WAL
			// rather than quarantine what could not be read back.
			return fmt.Errorf("forwarder: quarantining record %d: %w", q.Index, err)
		default: // it does not decode: stored as it is, with its origin
			var h pa.Record3Head
			if pa.ParsePageRecord3(q.Payload, &h) == nil {
				e.Producer, e.Incarnation = string(h.Producer), string(h.Incarnation)
			}
		}
	}
	if e.Producer == "" {
		e.Producer, e.Incarnation, _ = pa.PageRecordOrigin(e.Payload) // best effort: it may be what is broken
	}
	if !producerLabel.MatchString(e.Producer) {
		e.Producer, e.Incarnation = "unknown", ""
	}
	es := []quarantine.Entry{e}
	if err := f.q.PutAll(es); err != nil {
		if errors.Is(err, quarantine.ErrFull) {
			return fmt.Errorf("%w: record %d (%s): %v", errQuarantineFull, q.Index, reason, err)
		}
		return fmt.Errorf("forwarder: quarantining record %d: %w", q.Index, err)
	}
	f.m.quarantined.WithLabelValues(reason).Inc()
	f.log.Error("quarantined WAL record", "index", q.Index, "producer", e.Producer, "reason", q.Reason, "id", es[0].ID)
	f.mu.Lock()
	f.mu.status.QuarantinedRecords++
	f.mu.Unlock()
	return nil
}

// quarantineOrHold quarantines a record, waiting (with backoff, status and
// /healthz saying why) while the quarantine is full. It returns ctx's error
// if ctx ends first: the record was not kept and the checkpoint must not
// pass it.
func (f *Forwarder) quarantineOrHold(ctx context.Context, q QuarantinedRecord, reason string) error {
	for attempt := 0; ; attempt++ {
		err := f.quarantine(q, reason)
		if !errors.Is(err, errQuarantineFull) {
			if err == nil && attempt > 0 {
				f.mu.Lock()
				f.mu.status.ConsecutiveFailures, f.mu.status.LastInsertError = 0, ""
				f.mu.Unlock()
			}
			return err
		}
		delay := f.backoff(attempt)
		f.noteFailure(err)
		f.log.Error("quarantine full: holding the WAL at this record until entries are removed", "err", err, "attempt", attempt+1, "retry_in", delay)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
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
