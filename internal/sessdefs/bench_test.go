package sessdefs

import (
	"encoding/binary"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble"

	"github.com/holdfast/holdfast/internal/state"
)

// The definitions workload of a fleet's first period: sessions (producers)
// each defining their series in records of 1,000, interleaved, synced once
// per 20 records (a checkpoint), ~110-byte definitions.
const (
	benchSessions  = 20
	benchPerRecord = 1000
	benchDefBytes  = 110
)

func benchDef(id uint64) []byte {
	d := make([]byte, benchDefBytes)
	binary.BigEndian.PutUint64(d, id*0x9e3779b97f4a7c15)
	copy(d[8:], "virtual_machine:cpu_busy project_id instance_id vcpu_id state")
	d[len(d)-1] = 1
	return d
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchDefinitions stores n definitions per session through put, syncing
// with sync, and reports the process's CPU time per definition (background
// work, Pebble's compactions, included: settle waits for it).
func benchDefinitions(b *testing.B, n int, put func(session int, id uint64, def []byte) error, record, sync, settle func() error) {
	b.Helper()
	def := benchDef(1)
	start, wall := cpuTime(), time.Now()
	records := 0
	for first := 0; first < n; first += benchPerRecord {
		for s := 0; s < benchSessions; s++ {
			for id := first; id < min(first+benchPerRecord, n); id++ {
				binary.BigEndian.PutUint64(def, uint64(id)*0x9e3779b97f4a7c15)
				if err := put(s, uint64(id), def); err != nil {
					b.Fatal(err)
				}
			}
			if err := record(); err != nil {
				b.Fatal(err)
			}
			if records++; records%20 == 0 {
				if err := sync(); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	if err := sync(); err != nil {
		b.Fatal(err)
	}
	if err := settle(); err != nil {
		b.Fatal(err)
	}
	total := float64(n * benchSessions)
	b.ReportMetric(float64(cpuTime()-start)/total, "cpu-ns/def")
	b.ReportMetric(float64(time.Since(wall))/total, "wall-ns/def")
}

// BenchmarkDefinitionsFiles: this package. Compare with
// BenchmarkDefinitionsPebble in the same run (BENCHMARKS.md).
func BenchmarkDefinitionsFiles(b *testing.B) {
	for _, n := range []int{110_000} { // 2.2 M definitions across the sessions
		b.Run(fmt.Sprint(n*benchSessions), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				s, err := Open(b.TempDir(), Options{})
				if err != nil {
					b.Fatal(err)
				}
				keys := make([]string, benchSessions)
				for j := range keys {
					keys[j] = fmt.Sprintf("producer-%d\x00inc\x00session", j)
				}
				benchDefinitions(b, n, func(session int, id uint64, def []byte) error { return s.Append(keys[session], id, def) },
					s.Flush, s.Sync, func() error { return nil })
				s.CloseAll()
			}
		})
	}
}

// BenchmarkDefinitionsPebble: the state store as versions before 0.9 used
// it (a NoSync batch per record, a Sync write per checkpoint), with this
// project's Pebble options, waiting at the end for the compactions the
// writes caused.
func BenchmarkDefinitionsPebble(b *testing.B) {
	for _, n := range []int{110_000} {
		b.Run(fmt.Sprint(n*benchSessions), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				db, err := state.Open(b.TempDir(), nil)
				if err != nil {
					b.Fatal(err)
				}
				batch := db.NewBatch()
				var key []byte
				benchDefinitions(b, n, func(session int, id uint64, def []byte) error {
					key = append(key[:0], "sessdef/"...)
					key = fmt.Appendf(key, "producer-%d\x00inc\x00session", session)
					key = binary.BigEndian.AppendUint32(key, uint32(id))
					return batch.Set(key, def, nil)
				}, func() error {
					err := batch.Commit(pebble.NoSync)
					batch.Reset()
					return err
				}, func() error {
					return db.Set([]byte("checkpoint"), []byte{1}, pebble.Sync)
				}, func() error {
					for db.Metrics().Compact.NumInProgress > 0 {
						time.Sleep(10 * time.Millisecond)
					}
					return nil
				})
				db.Close()
			}
		})
	}
}

// BenchmarkClosedFileLookups: the definitions of a record of 1,000 ids
// looked up in a closed session file of 110,000 (a producer's share of RFD
// 125 at N=100) by Lookup, which scans the file from its start for each
// id, and by a Lookuper, which reads it once. Reported per record.
func BenchmarkClosedFileLookups(b *testing.B) {
	dir := b.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.CloseAll()
	const n = 110_000
	for id := uint64(0); id < n; id++ {
		if err := s.Append(testKey, id, def(id)); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Sync(); err != nil {
		b.Fatal(err)
	}
	if err := s.Close(testKey); err != nil {
		b.Fatal(err)
	}
	record := func(lookup func(id uint64) ([]byte, error)) {
		for id := uint64(n - 1000); id < n; id++ {
			if _, err := lookup(id); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("Lookup", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			record(func(id uint64) ([]byte, error) { return s.Lookup(testKey, id) })
		}
	})
	b.Run("Lookuper", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			record(s.Lookuper(testKey))
		}
	})
}
