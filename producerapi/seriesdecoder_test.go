package producerapi_test

import (
	"bytes"
	"fmt"
	"reflect"
	"testing"

	pa "github.com/holdfast/holdfast/producerapi"
)

// seriesRaws returns the series entries of samples, as blocks carry them.
func seriesRaws(samples []pa.Sample) [][]byte {
	raws := make([][]byte, len(samples))
	for i := range samples {
		raws[i] = pa.AppendSeries(nil, &samples[i])
	}
	return raws
}

// TestSeriesDecoderDecodesAsDecodeSeries: through rewinds, records of
// every size (one entry to more than the largest arena kept) and entries whose
// field types differ at the same arena positions, a SeriesDecoder returns
// exactly what DecodeSeries does, and refuses what it refuses.
func TestSeriesDecoderDecodesAsDecodeSeries(t *testing.T) {
	raws := seriesRaws(block2Corpus())
	sd := pa.NewSeriesDecoder()
	check := func(raw []byte) pa.SeriesIdentity {
		t.Helper()
		want, wantErr := pa.DecodeSeries(raw)
		got, err := sd.Decode(raw)
		if (err == nil) != (wantErr == nil) || !reflect.DeepEqual(got, want) {
			t.Fatalf("Decode = %+v, %v; DecodeSeries = %+v, %v", got, err, want, wantErr)
		}
		return got
	}
	// 30,000 entries hold more fields than the largest arena kept
	// (maxReusedFields): a record overflowing an arena that cannot grow.
	for _, record := range []int{1, 7, 100, len(raws), 30_000, 5} {
		for round := 0; round < 3; round++ {
			var ids []pa.SeriesIdentity
			for i := 0; i < record; i++ {
				// Rotate, so that the arena's slots see other field types.
				ids = append(ids, check(raws[(i+round*3)%len(raws)]))
			}
			// Every identity of the record is intact until the rewind.
			for i, id := range ids {
				want, _ := pa.DecodeSeries(raws[(i+round*3)%len(raws)])
				if !reflect.DeepEqual(id, want) {
					t.Fatalf("record of %d, round %d: identity %d changed before the rewind", record, round, i)
				}
			}
			sd.Rewind()
		}
	}
	for _, bad := range [][]byte{nil, {0xff}, raws[0][:len(raws[0])-1], append(append([]byte{}, raws[0]...), 0)} {
		check(bad)
		sd.Rewind()
	}
}

// TestSeriesDecoderReusesItsArena: once the arena fits a record, decoding
// a record of RFD 125 definitions and rewinding allocates nothing (names
// and string values interned, field slices carved from the kept arena);
// with DecodeSeries every definition allocates.
func TestSeriesDecoderReusesItsArena(t *testing.T) {
	raws := seriesRaws(block2Corpus()[len(block2Corpus())-440:]) // the fleet's
	sd := pa.NewSeriesDecoder()
	record := func() {
		for _, raw := range raws {
			if _, err := sd.Decode(raw); err != nil {
				t.Fatal(err)
			}
		}
		sd.Rewind()
	}
	record()
	record() // the arena grown to the record's size
	if a := testing.AllocsPerRun(20, record); a != 0 {
		t.Errorf("%.0f allocations to decode %d definitions and rewind, want 0", a, len(raws))
	}
	if a := testing.AllocsPerRun(5, func() {
		for _, raw := range raws {
			pa.DecodeSeries(raw)
		}
	}); a < float64(len(raws)) {
		t.Errorf("DecodeSeries made %.0f allocations for %d definitions: the comparison is void", a, len(raws))
	}
}

// FuzzSeriesDecoder: entries of arbitrary bytes (the input split at 0xff),
// decoded through one SeriesDecoder with a rewind every few entries, decode
// exactly as DecodeSeries does (identity or error), and never panic.
func FuzzSeriesDecoder(f *testing.F) {
	raws := seriesRaws(block2Corpus())
	for i := 0; i+3 < len(raws); i += 97 {
		seed := []byte{byte(i % 5)}
		for _, r := range raws[i : i+3] {
			seed = append(append(seed, r...), 0xff)
		}
		f.Add(seed)
	}
	f.Add([]byte{0, 0xff, 0xff})
	sd := pa.NewSeriesDecoder()
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		every := int(data[0]%8) + 1
		for i, raw := range bytes.Split(data[1:], []byte{0xff}) {
			want, wantErr := pa.DecodeSeries(raw)
			got, err := sd.Decode(raw)
			if (err == nil) != (wantErr == nil) || !reflect.DeepEqual(got, want) {
				t.Fatalf("entry %d: Decode = %+v, %v; DecodeSeries = %+v, %v", i, got, err, want, wantErr)
			}
			if (i+1)%every == 0 {
				sd.Rewind()
			}
		}
		sd.Rewind()
	})
}

// TestSeriesDecoderReleasesAnIdleArena: a decoder whose records stop
// carrying definitions (a forwarder in a steady session) keeps its arena
// through ReleaseIdleRewinds-1 empty rewinds, so the next definitions
// allocate nothing, and drops it at ReleaseIdleRewinds, so they allocate
// again; either way they decode as DecodeSeries does.
func TestSeriesDecoderReleasesAnIdleArena(t *testing.T) {
	corpus := block2Corpus()
	raws := seriesRaws(corpus[len(corpus)-440:])
	wants := make([]pa.SeriesIdentity, len(raws))
	for i, raw := range raws {
		wants[i], _ = pa.DecodeSeries(raw)
	}
	sd := pa.NewSeriesDecoder()
	// got keeps the last record's identities for the check after it (the
	// comparison allocates, so it is not part of the measured record).
	got := make([]pa.SeriesIdentity, len(raws))
	record := func() {
		for i, raw := range raws {
			got[i], _ = sd.Decode(raw)
		}
	}
	checkRecord := func(when string) {
		t.Helper()
		for i := range raws {
			if !reflect.DeepEqual(got[i], wants[i]) {
				t.Fatalf("%s: Decode = %+v; want %+v", when, got[i], wants[i])
			}
		}
		sd.Rewind()
	}
	record()
	checkRecord("first record")
	record()
	checkRecord("second record")
	for _, tc := range []struct {
		idle      int
		allocates bool
	}{{pa.ReleaseIdleRewinds - 1, false}, {pa.ReleaseIdleRewinds, true}, {0, false}} {
		a := testing.AllocsPerRun(3, func() {
			for i := 0; i < tc.idle; i++ {
				sd.Rewind()
			}
			record()
			sd.Rewind()
		})
		record()
		checkRecord(fmt.Sprintf("after %d idle rewinds", tc.idle))
		if (a > 0) != tc.allocates {
			t.Errorf("after %d idle rewinds: %.1f allocations per record, want allocations %v", tc.idle, a, tc.allocates)
		}
	}
}
