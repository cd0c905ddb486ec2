package forwarder

import (
	"fmt"
	"testing"
	"time"
)

// TestSeriesCacheKeepsWhatItHoldsWhenFull: a full cache answers for the
// series it holds and takes new ones for the current record only; it
// starts over once it has been full for its refresh period. Starting over
// at once (the old behaviour) made a fleet larger than the cache, met in
// the same order every period, miss on every series.
func TestSeriesCacheKeepsWhatItHoldsWhenFull(t *testing.T) {
	now := time.Unix(1000, 0)
	c := newSeriesCache(3)
	c.now = func() time.Time { return now }
	raw := func(i int) []byte { return []byte(fmt.Sprintf("series-%d", i)) }
	period := func() (hits int) {
		for i := 0; i < 10; i++ { // one record per series
			c.beginRecord()
			if _, ok := c.lookup(raw(i)); ok {
				hits++
				continue
			}
			idx := c.add(raw(i), cachedSeries{key: uint64(i)})
			if got, ok := c.lookup(raw(i)); !ok || got != idx || c.entries[got].key != uint64(i) {
				t.Fatalf("series %d not found in its own record", i)
			}
		}
		return hits
	}
	if hits := period(); hits != 0 {
		t.Fatalf("first period: %d hits", hits)
	}
	for p := 0; p < 3; p++ {
		if hits := period(); hits != 3 {
			t.Fatalf("period %d: %d hits, want the 3 series kept", p, hits)
		}
		if len(c.index) > 4 || len(c.entries) > 4 {
			t.Fatalf("cache grew: %d index entries, %d entries", len(c.index), len(c.entries))
		}
	}
	now = now.Add(seriesCacheRefresh)
	c.beginRecord() // full for the refresh period: starts over
	if _, ok := c.lookup(raw(0)); ok || len(c.entries) != 0 {
		t.Fatalf("not started over after the refresh period: %d entries", len(c.entries))
	}
}
