package forwarder

import (
	"context"
	"testing"

	"github.com/holdfast/holdfast/internal/sampletest"
	pa "github.com/holdfast/holdfast/producerapi"
	"github.com/holdfast/holdfast/wal"
)

// BenchmarkAddRecord measures what the forwarder spends per sample turning
// WAL page records into batch columns (decode or scan, validation, key,
// rows), in steady state: every timeseries known and written, the batch's
// arrays grown. decode_v1 is the decoding path every record took before
// issue 9 (decode, Validate, key per sample); v1 and v2 the scanning paths,
// v2 verified (as the collector writes them) and not, v3 a session's
// records once its series are defined (samples by session id, verified).
// Reported per sample:
// ns, bytes and allocations. ClickHouse is not involved.
func BenchmarkAddRecord(b *testing.B) {
	const vms, perRecord, records = 1000, 1000, 22 // 22,000 samples, 22,000 series: each seen once per batch
	samples := sampletest.NewFleet(vms).Append(nil, perRecord*records, 1)
	for _, c := range []struct {
		name     string
		v2, v3   bool
		verified bool
		decode   bool
	}{{"decode_v1", false, false, false, true}, {"v1", false, false, false, false}, {"v2_verified", true, false, true, false}, {"v2_unverified", true, false, false, false}, {"v3_verified", false, true, true, false}} {
		b.Run(c.name, func(b *testing.B) {
			var recs, defining [][]byte
			sess := newSession3("p", "i", 1)
			for i := 0; i < len(samples); i += perRecord {
				page := samples[i : i+perRecord]
				if c.v3 {
					defining = append(defining, sess.record(page))
					recs = append(recs, sess.record(page)) // ids only
					continue
				}
				if c.v2 {
					recs = append(recs, pa.AppendPageRecord2(nil, "p", "i", c.verified, pa.AppendBlock2(nil, page)))
				} else {
					recs = append(recs, pa.AppendPageRecord(nil, "p", "i", page))
				}
			}
			f := scanForwarder3(b, nil)
			bt := &batch{}
			bt.reset()
			var page pa.PageRecord
			for i, r := range defining {
				if err := f.add(context.Background(), bt, uint64(i+1), wal.Record{Type: wal.TypePage, Payload: r}, &page); err != nil {
					b.Fatal(err)
				}
			}
			round := func() {
				for i, r := range recs {
					rec := wal.Record{Type: wal.TypePage, Payload: r}
					if c.decode {
						if err := f.decode(rec, &page); err != nil {
							b.Fatal(err)
						}
						f.w.addSamples(bt.rows, page.Samples, nil)
						continue
					}
					if err := f.add(context.Background(), bt, uint64(i+1), rec, &page); err != nil {
						b.Fatal(err)
					}
				}
			}
			round() // the keys are written: the steady state
			for k, fp := range bt.rows.newKeys {
				f.w.seenKeys.put(k, fp)
			}
			bt.reset()
			round()
			bt.reset()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				round()
				bt.rows.columns()
				bt.reset()
			}
			n := float64(b.N * len(samples))
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/sample")
			b.StopTimer()
		})
	}
}

// BenchmarkResolve3 measures what resolving one page v3 definition costs
// the forwarder (decode, validate, key, fingerprint, name): what a restart
// pays for every series of its sessions, and a new fleet for each of its
// series. Definitions of the RFD 125 shape (22 series a VM), in records
// of 1,000.
func BenchmarkResolve3(b *testing.B) {
	samples := sampletest.NewFleet(1000).Append(nil, 22_000, 1)
	raws := make([][]byte, len(samples))
	for i := range samples {
		raws[i] = pa.AppendSeries(nil, &samples[i])
	}
	f := scanForwarder3(b, nil)
	sess := &session{}
	var e sessEntry
	var ident pa.SeriesIdentity
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%1000 == 0 {
			f.beginRecord(0) // records of 1,000 definitions
		}
		f.resolve3(sess, &e, raws[i%len(raws)], &ident)
		if e.state != stOK {
			b.Fatalf("definition %d: state %d", i%len(raws), e.state)
		}
	}
}

// BenchmarkAddRecord3Defining measures the forwarder's side of a fleet's
// first period, or of a restart's replay: records of page v3 sessions that
// define every series they name, whose timeseries are new (fields rows
// added, keys checked against the batch's and the written ones). Each
// round is a new session of the same 22,000 series in records of 1,000.
// Reported per definition (one sample each).
func BenchmarkAddRecord3Defining(b *testing.B) {
	const vms, perRecord = 1000, 1000
	samples := sampletest.NewFleet(vms).Append(nil, 22*vms, 1)
	f := scanForwarder3(b, nil)
	bt := &batch{}
	bt.reset()
	var page pa.PageRecord
	recs := make([][]byte, 0, len(samples)/perRecord)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		sess := newSession3("p", "i", uint64(i+1))
		recs = recs[:0]
		for j := 0; j < len(samples); j += perRecord {
			recs = append(recs, sess.record(samples[j:j+perRecord]))
		}
		bt.reset()
		b.StartTimer()
		for j, r := range recs {
			if err := f.add(context.Background(), bt, uint64(i*len(recs)+j+1), wal.Record{Type: wal.TypePage, Payload: r}, &page); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(samples)), "ns/definition")
}
