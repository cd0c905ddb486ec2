package forwarder

import (
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
func (f *Forwarder) quarantineCollisions(idx uint64, page *pa.PageRecord, refused []collision) error {
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
	return f.quarantine(QuarantinedRecord{Index: idx, Type: uint8(wal.TypePage),
		Payload: pa.AppendPageRecord(nil, page.Producer, page.Incarnation, samples), Reason: reason}, "key_collision")
}
