package producerapi_test

import (
	"bytes"
	"errors"
	"math"
	"testing"

	"github.com/holdfast/holdfast/internal/sampletest"
	pa "github.com/holdfast/holdfast/producerapi"
)

// session3 is a test's session: the producer's encoder, started on first
// use.
type session3 struct{ enc *pa.SessionEncoder }

// block encodes samples as the session's next block.
func (s *session3) block(samples []pa.Sample) []byte {
	if s.enc == nil {
		s.enc = pa.NewSessionEncoder()
	}
	return s.enc.AppendBlock(nil, samples)
}

func (s *session3) lookup(id uint64) ([]byte, bool) { return s.enc.Definition(id) }

// ids is how many ids the session has defined.
func (s *session3) ids() int { return int(s.enc.Len()) }

// TestBlock3SessionRoundTripExact: blocks of one session decode, with the
// earlier blocks' defs, to exactly what was encoded; the second period of
// a fleet carries no defs and is a fifth of its version 2 size.
func TestBlock3SessionRoundTripExact(t *testing.T) {
	var s session3
	fleet := sampletest.NewFleet(100)
	first := append(sampletest.EveryDatumType(math.MinInt64), fleet.Append(nil, 2200, 1_700_000_000_000_000_000)...)
	second := fleet.Append(nil, 2200, 1_700_000_010_000_000_000)
	b1, b2 := s.block(first), s.block(second)
	for i, c := range []struct {
		block []byte
		in    []pa.Sample
	}{{b1, first}, {b2, second}} {
		out, err := pa.DecodeBlock3(c.block, nil, s.lookup)
		if err != nil {
			t.Fatalf("block %d: %v", i, err)
		}
		if len(out) != len(c.in) {
			t.Fatalf("block %d: %d samples, want %d", i, len(out), len(c.in))
		}
		for j := range c.in {
			if !sameSample(&c.in[j], &out[j]) {
				t.Fatalf("block %d sample %d differs:\n in: %+v\nout: %+v", i, j, c.in[j], out[j])
			}
		}
	}
	var sc pa.BlockScanner
	if err := sc.Reset3(b2, nil); err != nil {
		t.Fatal(err)
	}
	if sc.NumSeries() != 0 || sc.FirstID() != uint64(s.ids()) {
		t.Fatalf("second period defines %d series from id %d, want 0 from %d", sc.NumSeries(), sc.FirstID(), s.ids())
	}
	v2 := pa.AppendBlock2(nil, second)
	perSample := float64(len(b2)) / float64(len(second))
	t.Logf("second period: %.1f bytes a sample in version 3, %.1f in version 2", perSample, float64(len(v2))/float64(len(second)))
	if perSample > 30 || len(b2)*4 > len(v2) {
		t.Fatalf("second period takes %.1f bytes a sample (%d bytes against %d in version 2)", perSample, len(b2), len(v2))
	}
	// Without the earlier defs the second block cannot be read.
	if _, err := pa.DecodeBlock3(b2, nil, nil); !errors.Is(err, pa.ErrMalformed) {
		t.Fatalf("second block without its session decoded: %v", err)
	}
}

// TestBlockScanner3: the scanner reads samples by session id with the
// types the caller keeps, refuses an id the session does not define, and
// allocates nothing.
func TestBlockScanner3(t *testing.T) {
	var s session3
	fleet := sampletest.NewFleet(500)
	b1 := s.block(fleet.Append(nil, 11_000, 1))
	b2 := s.block(fleet.Append(nil, 11_000, 2))
	var sc pa.BlockScanner
	var v pa.SampleView
	var types []pa.DatumType
	if err := sc.Reset3(b1, &pa.PageLimits{MaxSamples: 20_000}); err != nil {
		t.Fatal(err)
	}
	types = sc.AppendSessionTypes(types)
	if len(types) != s.ids() {
		t.Fatalf("%d types, want %d", len(types), s.ids())
	}
	lim := &pa.PageLimits{MaxSamples: 20_000}
	n := 0
	allocs := testing.AllocsPerRun(20, func() {
		n = 0
		if sc.Reset3(b2, lim) != nil {
			t.Fatal(sc.Err())
		}
		sc.SetSessionTypes(types)
		for sc.Next(&v) {
			if v.Type != types[v.Series] || pa.ValidateSampleView("x:y", &v, pa.Limits{}) != nil {
				n = -1 << 30
			}
			n++
		}
	})
	if sc.Err() != nil || n != 11_000 {
		t.Fatalf("scanned %d of 11000: %v", n, sc.Err())
	}
	if allocs != 0 {
		t.Fatalf("%.1f allocations per block, want 0", allocs)
	}
	// Without the session's types, or with one id forgotten, the block is refused.
	for name, types := range map[string][]pa.DatumType{"none": nil, "short": types[:len(types)-1], "zeroed": append(append([]pa.DatumType{}, types[:5]...), append([]pa.DatumType{0}, types[6:]...)...)} {
		if sc.Reset3(b2, nil) != nil {
			t.Fatal(sc.Err())
		}
		sc.SetSessionTypes(types)
		for sc.Next(&v) {
		}
		if !errors.Is(sc.Err(), pa.ErrMalformed) {
			t.Fatalf("%s: scan of a block naming undefined ids ended with %v", name, sc.Err())
		}
	}
}

// TestPageRecord3: the head round-trips, the block is the one appended,
// and the generic record readers see version 3.
func TestPageRecord3(t *testing.T) {
	var s session3
	in := sampletest.NewFleet(3).Append(nil, 66, 7)
	block := s.block(in)
	rec := append(pa.AppendPageRecord3Head(nil, "prod-a", "inc-1", true, 0xfeedface12345678, []uint64{2, 300}), block...)
	var h pa.Record3Head
	if err := pa.ParsePageRecord3(rec, &h); err != nil {
		t.Fatal(err)
	}
	if string(h.Producer) != "prod-a" || string(h.Incarnation) != "inc-1" || !h.Verified || h.Session != 0xfeedface12345678 ||
		len(h.Refused) != 2 || h.Refused[0] != 2 || h.Refused[1] != 300 || !bytes.Equal(h.Block, block) {
		t.Fatalf("head read back as %+v", h)
	}
	version, verified, blk, err := pa.PageRecordBlock(rec)
	if err != nil || version != 3 || !verified || !bytes.Equal(blk, block) {
		t.Fatalf("PageRecordBlock: %d %v %v", version, verified, err)
	}
	if p, inc, err := pa.PageRecordOrigin(rec); err != nil || p != "prod-a" || inc != "inc-1" {
		t.Fatalf("PageRecordOrigin: %q %q %v", p, inc, err)
	}
	var pr pa.PageRecord
	if err := pa.DecodePageRecord(rec, &pr); err != nil || len(pr.Samples) != len(in) || pr.Version != 3 {
		t.Fatalf("self-contained record decodes to %d samples (version %d): %v", len(pr.Samples), pr.Version, err)
	}
	// A record of a later block needs the session.
	later := append(pa.AppendPageRecord3Head(nil, "prod-a", "inc-1", true, 1, nil), s.block(sampletest.NewFleet(3).Append(nil, 66, 8))...)
	if err := pa.DecodePageRecord(later, &pr); !errors.Is(err, pa.ErrMalformed) {
		t.Fatalf("later record without its session: %v", err)
	}
	if err := pa.DecodePageRecord3(later, &pr, s.lookup); err != nil || len(pr.Samples) != 66 {
		t.Fatalf("later record with its session: %d samples, %v", len(pr.Samples), err)
	}
	// Truncated heads are errors, never panics.
	for i := range rec[:len(rec)-len(block)] {
		if err := pa.ParsePageRecord3(rec[:i], &h); err == nil {
			t.Fatalf("head cut at %d parsed", i)
		}
	}
}

// TestPage3Head: a version 3 page's head carries the session.
func TestPage3Head(t *testing.T) {
	var s session3
	in := sampletest.NewFleet(2).Append(nil, 44, 7)
	p := pa.Page{Version: pa.PageVersion3, Producer: "p", Incarnation: "i", Token: "t", Dropped: 3, More: true, Session: 42}
	body := append(pa.AppendPage3Head(nil, &p), s.block(in)...)
	var got pa.Page
	block, _, err := pa.ScanPageHead(body, &got, nil)
	if err != nil || got.Session != 42 || got.Version != 3 || got.Token != "t" || got.Dropped != 3 || !got.More {
		t.Fatalf("head read back as %+v: %v", got, err)
	}
	var sc pa.BlockScanner
	if err := sc.Reset3(block, nil); err != nil || sc.NumSamples() != 44 {
		t.Fatalf("block: %d samples, %v", sc.NumSamples(), err)
	}
	if err := pa.DecodePage(body, &got); err != nil || len(got.Samples) != 44 {
		t.Fatalf("DecodePage: %d samples, %v", len(got.Samples), err)
	}
}

func block3Seeds(f *testing.F) {
	var s session3
	f.Add(s.block(sampletest.EveryDatumType(1)), s.block(sampletest.EveryDatumType(2)))
	var s2 session3
	f.Add(s2.block(sampletest.NewFleet(3).Append(nil, 30, 1)), s2.block(sampletest.NewFleet(3).Append(nil, 30, 2)))
	f.Add([]byte{3, 0, 0, 0}, []byte{3, 0, 0, 1, 0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3, 4, 5, 6, 7, 8})
}

// FuzzBlockScanner3: two blocks of one session: the scanner never panics,
// agrees with DecodeBlock3, never reads an id without a valid type, and
// accepts nothing over the limits.
func FuzzBlockScanner3(f *testing.F) {
	block3Seeds(f)
	lim := &pa.PageLimits{MaxSamples: 50, Sample: pa.Limits{MaxFields: 8, MaxHistogramBins: 16}}
	f.Fuzz(func(t *testing.T, first, second []byte) {
		var sc pa.BlockScanner
		var v pa.SampleView
		var types []pa.DatumType
		var defs [][]byte
		lookup := func(id uint64) ([]byte, bool) {
			if id < uint64(len(defs)) && defs[id] != nil {
				return defs[id], true
			}
			return nil, false
		}
		for _, block := range [][]byte{first, second} {
			n := 0
			if sc.Reset3(block, lim) == nil {
				if sc.FirstID()+uint64(sc.NumSeries()) > 1<<20 {
					continue // a session that large is legal, but not for this test's table
				}
				types = sc.AppendSessionTypes(types)
				sc.SetSessionTypes(types)
				for sc.Next(&v) {
					if v.Series < 0 || v.Series >= len(types) || !types[v.Series].Valid() || v.Type != types[v.Series] {
						t.Fatalf("bad view %+v", v)
					}
					_ = pa.ValidateSampleView("x", &v, pa.Limits{})
					_ = v.Datum()
					n++
				}
				if sc.NumSamples() > 50 || sc.NumSeries() > 50 || v.Hist.NBins > 16 {
					t.Fatal("accepted counts over the limits")
				}
				decoded, err := pa.DecodeBlock3(block, nil, lookup)
				if (err == nil) != (sc.Err() == nil) || (err == nil && n != len(decoded)) {
					t.Fatalf("scanner (%d, %v) and DecodeBlock3 (%d, %v) disagree", n, sc.Err(), len(decoded), err)
				}
				for i := 0; i < sc.NumSeries(); i++ {
					id := sc.FirstID() + uint64(i)
					for uint64(len(defs)) <= id {
						defs = append(defs, nil)
					}
					defs[id] = append([]byte(nil), sc.Series(i).Raw...)
				}
			}
			if err := sc.Err(); err != nil && !errors.Is(err, pa.ErrMalformed) && !errors.Is(err, pa.ErrPageLimit) {
				var le *pa.LimitError
				if !errors.As(err, &le) {
					t.Fatalf("error %v wraps neither ErrMalformed nor a limit", err)
				}
			}
		}
	})
}
