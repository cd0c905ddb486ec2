package forwarder

import (
	"context"
	"errors"
	"fmt"

	pa "github.com/holdfast/holdfast/producerapi"
	"github.com/holdfast/holdfast/wal"
)

// ErrKeyCollision marks samples refused because their timeseries key
// (FNV-1a 64) is already taken by a different timeseries: storing them would
// merge two timeseries into one.
var ErrKeyCollision = errors.New("forwarder: timeseries key collision")

// quarantineCollisions keeps the samples of record idx that addSamples
// refused as key collisions in the quarantine, as a page record of just
// those samples under the record's index, with the reason; the rest of the
// record is delivered. They are counted and logged: a collision is a
// ~1e-6 event at 10 million timeseries, and someone must look.
func (f *Forwarder) quarantineCollisions(ctx context.Context, idx uint64, page *pa.PageRecord, refused []collision) error {
	samples := make([]pa.Sample, len(refused))
	for i, c := range refused {
		samples[i] = page.Samples[c.index]
	}
	first := refused[0]
	reason := fmt.Sprintf("%v: %d samples of record %d, the first of %s with key %#016x, which another timeseries already has",
		ErrKeyCollision, len(refused), idx, first.name, first.key)
	f.log.Error("timeseries key collision: refusing the second timeseries' samples rather than merging two timeseries",
		"index", idx, "timeseries", first.name, "key", fmt.Sprintf("%#016x", first.key), "samples", len(refused))
	f.m.keyCollisions.Add(float64(len(refused)))
	return f.quarantineOrHold(ctx, QuarantinedRecord{Index: idx, Type: uint8(wal.TypePage),
		Payload: pa.AppendPageRecord(nil, page.Producer, page.Incarnation, samples), Reason: reason}, "key_collision")
}

// noteRefused remembers which samples of record idx add refused, so that a
// rebuild of the record during bisection leaves out exactly those.
func (b *batch) noteRefused(idx uint64, refused []collision) {
	if b.refused == nil {
		b.refused = make(map[uint64][]int)
	}
	skip := make([]int, len(refused))
	for i, c := range refused {
		skip[i] = c.index
	}
	b.refused[idx] = skip
}

// addSamplesExcept adds samples to rs, all but those at the indexes in skip
// (ascending), without checking collisions again: the decision made when the
// record was first read stands, whatever the key cache holds now. A
// re-check could insert a sample already quarantined as a collision (its
// rival's key forgotten meanwhile) or refuse an accepted one without
// quarantining it (the checkpoint would then pass a sample stored nowhere).
func (w *writer) addSamplesExcept(rs *rowSet, samples []pa.Sample, skip []int) {
	for i := range samples {
		if len(skip) > 0 && skip[0] == i {
			skip = skip[1:]
			continue
		}
		s := &samples[i]
		w.scratch = pa.AppendTimeseriesKeyBytes(w.scratch[:0], s)
		key, fp := w.keyOf(w.scratch), fingerprintOf(w.seed, w.scratch)
		// Present the fingerprint rs.add would compare with, so it adds.
		if known, ok := w.seenKeys.get(key); ok {
			fp = known
		} else if known, ok := rs.newKeys[key]; ok {
			fp = known
		}
		rs.add(w.names.name(s.Target.Name, s.Metric.Name), key, fp, s, w)
	}
}
