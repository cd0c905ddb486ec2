package quarantine

import (
	"context"
	"errors"
	"fmt"
	"slices"

	pa "github.com/holdfast/holdfast/producerapi"
	"github.com/holdfast/holdfast/wal"
)

// ReplayOptions say how to re-submit entries.
type ReplayOptions struct {
	// IDs selects entries; empty: all.
	IDs []uint64
	// Limits and Schemas are the current rules. Schemas may be nil (a
	// stopped collector's data directory: no schemas are known, so only
	// the replayed samples are checked against each other).
	Limits  pa.Limits
	Schemas *pa.SchemaRegistry
	// KeepSchemaConflicts keeps entries refused for a schema conflict
	// (CodeSchema) without replaying them: set when Schemas is not the
	// collector's registry (a data directory), where a conflict cannot be
	// seen and replaying would put the conflicting samples in the WAL.
	KeepSchemaConflicts bool
	// Append writes a record to the WAL and returns once it is durable.
	Append func(ctx context.Context, rec wal.Record) (uint64, error)
}

// ReplayReport says what a replay did.
type ReplayReport struct {
	Replayed      int      `json:"replayed"`              // entries appended to the WAL and removed
	StillRefused  int      `json:"still_refused"`         // entries kept, with the reason updated
	NotReplayable int      `json:"not_replayable"`        // entries holding no data (a sample too large to be read)
	SchemaKept    int      `json:"schema_kept,omitempty"` // schema-conflict entries kept unchecked (KeepSchemaConflicts)
	NotFound      []uint64 `json:"not_found,omitempty"`
	Samples       int      `json:"samples"` // samples appended to the WAL
	Records       []uint64 `json:"wal_indexes,omitempty"`
}

// Replay re-submits entries that the current rules accept: their samples
// are validated again (and checked against Schemas), appended to the WAL,
// and the entries removed; entries still refused stay with the new reason.
// A record the forwarder quarantined is appended as it was (the forwarder
// checks it again, and quarantines it again if ClickHouse still refuses it).
// Accepted samples of one producer incarnation are appended together, as one
// page record per batch of entries read.
//
// An entry is removed only after its WAL append returned: a crash between
// the two replays it again, which the tables deduplicate (the same sample
// has the same identity).
func Replay(ctx context.Context, s *Store, opts ReplayOptions) (ReplayReport, error) {
	var rep ReplayReport
	if opts.Append == nil {
		return rep, errors.New("quarantine: replay needs a WAL to append to")
	}
	if opts.Schemas == nil {
		opts.Schemas = pa.NewSchemaRegistry()
	}
	want := map[uint64]bool{}
	for _, id := range opts.IDs {
		want[id] = true
	}
	var after uint64
	for {
		page, more, err := s.ListUpTo(after, 256, 2*wal.MaxPayload)
		if err != nil {
			return rep, err
		}
		var chosen []Entry
		for _, e := range page {
			after = e.ID
			if len(want) > 0 && !want[e.ID] {
				continue
			}
			delete(want, e.ID)
			chosen = append(chosen, e)
		}
		if err := replayBatch(ctx, s, chosen, opts, &rep); err != nil {
			return rep, err
		}
		if !more || (len(opts.IDs) > 0 && len(want) == 0) {
			break
		}
	}
	for id := range want {
		rep.NotFound = append(rep.NotFound, id)
	}
	slices.Sort(rep.NotFound)
	return rep, nil
}

// origin groups accepted samples into page records.
type origin struct{ producer, incarnation string }

type group struct {
	entries []*Entry
	samples []pa.Sample
}

// replayBatch replays entries. Whatever happens, the entries whose data was
// appended are removed before it returns (a replay that stopped half way
// must not append them again next time), and its errors are returned.
func replayBatch(ctx context.Context, s *Store, entries []Entry, opts ReplayOptions, rep *ReplayReport) (err error) {
	var refused []Entry
	var done []uint64
	defer func() {
		// Removal first: an entry appended but kept would be appended again.
		derr := s.Delete(done)
		uerr := s.Update(refused)
		err = errors.Join(err, derr, uerr)
	}()
	// refuse keeps an entry whose data the WAL refuses for good (a record
	// over wal.MaxPayload): a per-entry outcome, not the end of the replay.
	refuse := func(e *Entry, code string, cause error) {
		rep.StillRefused++
		e.Code, e.Reason = code, "replay refused it again: "+cause.Error()
		refused = append(refused, *e)
	}
	groups := map[origin]*group{}
	var order []origin
	for i := range entries {
		e := &entries[i]
		if len(e.Payload) == 0 {
			rep.NotReplayable++
			continue
		}
		if opts.KeepSchemaConflicts && e.Code == CodeSchema {
			rep.SchemaKept++
			continue // kept as it is: no registry here to check it against
		}
		samples, code, err := check(e, opts)
		if err != nil {
			refuse(e, code, err)
			continue
		}
		if e.Kind == KindRecord {
			idx, err := opts.Append(ctx, wal.Record{Type: wal.TypePage, Payload: e.Payload})
			if errors.Is(err, wal.ErrBadRecord) {
				refuse(e, CodeTooLarge, err)
				continue
			}
			if err != nil {
				return fmt.Errorf("quarantine: replaying entry %d: %w", e.ID, err)
			}
			rep.Records = append(rep.Records, idx)
			rep.Samples += len(samples)
			rep.Replayed++
			done = append(done, e.ID)
			continue
		}
		o := origin{e.Producer, e.Incarnation}
		g := groups[o]
		if g == nil {
			g = &group{}
			groups[o] = g
			order = append(order, o)
		}
		g.entries = append(g.entries, e)
		g.samples = append(g.samples, samples...)
	}
	for _, o := range order {
		g := groups[o]
		payload := pa.AppendPageRecord(nil, o.producer, o.incarnation, g.samples)
		if len(payload) <= wal.MaxPayload {
			idx, err := opts.Append(ctx, wal.Record{Type: wal.TypePage, Payload: payload})
			if err == nil {
				rep.Records = append(rep.Records, idx)
				rep.Samples += len(g.samples)
				for _, e := range g.entries {
					done = append(done, e.ID)
					rep.Replayed++
				}
				continue
			}
			if !errors.Is(err, wal.ErrBadRecord) {
				return fmt.Errorf("quarantine: replaying entry %d: %w", g.entries[0].ID, err)
			}
		}
		// Too much for one record: one per entry (each was one record's
		// worth when it was refused, or is kept as too large again).
		for _, e := range g.entries {
			ss, _ := e.Samples()
			idx, err := opts.Append(ctx, wal.Record{Type: wal.TypePage, Payload: pa.AppendPageRecord(nil, o.producer, o.incarnation, ss)})
			if errors.Is(err, wal.ErrBadRecord) {
				refuse(e, CodeTooLarge, err)
				continue
			}
			if err != nil {
				return fmt.Errorf("quarantine: replaying entry %d: %w", e.ID, err)
			}
			rep.Records = append(rep.Records, idx)
			rep.Samples += len(ss)
			done = append(done, e.ID)
			rep.Replayed++
		}
	}
	return nil
}

// check decodes an entry's samples and checks them against the current
// rules, returning the reason code of a refusal.
func check(e *Entry, opts ReplayOptions) ([]pa.Sample, string, error) {
	samples, err := e.Samples()
	if err != nil {
		return nil, CodeMalformed, err
	}
	if e.Kind == KindRecord && wal.RecordType(e.RecordType) != wal.TypePage {
		return nil, CodeUnknownType, fmt.Errorf("unknown record type %d", e.RecordType)
	}
	for i := range samples {
		if err := pa.Validate(&samples[i], opts.Limits); err != nil {
			return nil, CodeInvalid, fmt.Errorf("sample %d: %w", i, err)
		}
		if _, err := opts.Schemas.Check(&samples[i]); err != nil {
			return nil, CodeSchema, fmt.Errorf("sample %d: %w", i, err)
		}
	}
	return samples, "", nil
}
