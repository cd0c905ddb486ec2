package sessdefs

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoad reads arbitrary bytes as a session file: never a panic, every
// definition it yields is one whose checksum held, and a second opening of
// the repaired file reads the same definitions with no repair.
func FuzzLoad(f *testing.F) {
	good := appendHeader(nil, testKey)
	for id := uint32(0); id < 5; id++ {
		good = appendRecord(good, id, def(uint64(id)))
	}
	f.Add(good)
	f.Add(good[:len(good)-1])
	f.Add(append(append([]byte(nil), good...), 0, 0, 0, 9, 0))
	f.Add([]byte(magic))
	f.Fuzz(func(t *testing.T, b []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, fileName(testKey)), b, 0o644); err != nil {
			t.Fatal(err)
		}
		read := func() ([][]byte, int) {
			repairs := 0
			s, err := Open(dir, Options{OnRepair: func(Repair) { repairs++ }})
			if err != nil {
				t.Fatal(err)
			}
			defer s.CloseAll()
			var defs [][]byte
			var loaded []uint32
			if err := s.Load(testKey, func(id uint32, d []byte) {
				defs = append(defs, append([]byte(nil), d...))
				loaded = append(loaded, id)
			}); err != nil {
				t.Fatal(err)
			}
			for _, id := range loaded {
				if got, err := s.Get(nil, testKey, uint64(id)); err != nil || len(got) == 0 {
					t.Fatalf("Get(%d) of a loaded definition: %v", id, err)
				}
			}
			return defs, repairs
		}
		first, _ := read()
		again, repairs := read()
		if repairs != 0 || len(first) != len(again) {
			t.Fatalf("second read: %d definitions, %d repairs; first read %d", len(again), repairs, len(first))
		}
		for i := range first {
			if !bytes.Equal(first[i], again[i]) {
				t.Fatalf("definition %d changed between readings", i)
			}
		}
	})
}
