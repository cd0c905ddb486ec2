package sessdefs

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

const testKey = "producer\x00incarnation\x00\x00\x00\x00\x00\x00\x00\x00\x07"

func def(id uint64) []byte {
	return []byte(fmt.Sprintf("series-%d-%s\x01", id, strings.Repeat("x", int(id%37))))
}

func openStore(t *testing.T, dir string, repairs *[]Repair) *Store {
	t.Helper()
	s, err := Open(dir, Options{OnRepair: func(r Repair) {
		if repairs != nil {
			*repairs = append(*repairs, r)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.CloseAll() })
	return s
}

// ids returns n ids in increasing order with gaps (refused or lost ids).
func ids(n int) []uint64 {
	var out []uint64
	for id := uint64(0); len(out) < n; id++ {
		if id%7 == 3 || id%100 == 50 {
			continue
		}
		out = append(out, id)
	}
	return out
}

func TestAppendGetLookupLoad(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, nil)
	all := ids(5000)
	for i, id := range all {
		if err := s.Append(testKey, id, def(id)); err != nil {
			t.Fatal(err)
		}
		if i%100 == 99 {
			if err := s.Flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
	check := func(name string, get func(id uint64) ([]byte, error)) {
		t.Helper()
		order := append([]uint64(nil), all...)
		rand.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		for _, id := range append(all, order...) {
			got, err := get(id)
			if err != nil || !bytes.Equal(got, def(id)) {
				t.Fatalf("%s(%d) = %q, %v; want %q", name, id, got, err, def(id))
			}
		}
		for _, id := range []uint64{3, 50, 10, all[len(all)-1] + 1, 1 << 30, 1 << 40} {
			if id == 10 {
				continue
			}
			if got, err := get(id); !errors.Is(err, ErrNotFound) {
				t.Fatalf("%s(%d) of an undefined id = %q, %v; want ErrNotFound", name, id, got, err)
			}
		}
	}
	check("Get", func(id uint64) ([]byte, error) { return s.Get(nil, testKey, id) })
	// Lookup from other goroutines while the owner appends more.
	var wg sync.WaitGroup
	for g := 0; g < 3; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, id := range all[:2000] {
				if got, err := s.Lookup(testKey, id); err != nil || !bytes.Equal(got, def(id)) {
					t.Errorf("Lookup(%d) = %q, %v", id, got, err)
					return
				}
			}
		}()
	}
	more := uint64(1 << 20)
	for id := more; id < more+3000; id++ {
		if err := s.Append(testKey, id, def(id)); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	for id := more; id < more+3000; id++ {
		all = append(all, id)
	}
	check("Lookup", func(id uint64) ([]byte, error) { return s.Lookup(testKey, id) })
	check("Lookuper of an open file", s.Lookuper(testKey))
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(testKey); err != nil {
		t.Fatal(err)
	}
	// A closed file is read from its first record: a sample of ids.
	for _, id := range []uint64{0, 1, 2, 4, 4001, more, more + 2999} {
		if got, err := s.Lookup(testKey, id); err != nil || !bytes.Equal(got, def(id)) {
			t.Fatalf("Lookup(%d) of a closed file = %q, %v", id, got, err)
		}
	}
	if _, err := s.Lookup(testKey, 3); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Lookup(3) of a closed file: %v", err)
	}
	// A Lookuper reads a closed file once: it still answers every id
	// with the file gone, and a torn tail loses only the last record.
	path := filepath.Join(dir, fileName(testKey))
	saved, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lk := s.Lookuper(testKey)
	if _, err := lk(all[0]); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	check("Lookuper of a closed file, read once", lk)
	if _, err := s.Lookuper(testKey)(all[0]); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Lookuper of a removed file: %v; want ErrNotFound", err)
	}
	if err := os.WriteFile(path, saved[:len(saved)-2], 0o644); err != nil {
		t.Fatal(err)
	}
	torn := s.Lookuper(testKey)
	last := all[len(all)-1]
	if _, err := torn(last); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Lookuper(%d) past a torn tail: %v; want ErrNotFound", last, err)
	}
	if got, err := torn(all[len(all)-2]); err != nil || !bytes.Equal(got, def(all[len(all)-2])) {
		t.Fatalf("Lookuper(%d) before a torn tail = %q, %v", all[len(all)-2], got, err)
	}
	if err := os.WriteFile(path, saved, 0o644); err != nil {
		t.Fatal(err)
	}

	s2 := openStore(t, dir, nil)
	var loaded []uint64
	if err := s2.Load(testKey, func(id uint32, d []byte) {
		if !bytes.Equal(d, def(uint64(id))) {
			t.Fatalf("loaded %d = %q", id, d)
		}
		loaded = append(loaded, uint64(id))
	}); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(loaded) != fmt.Sprint(all) {
		t.Fatalf("loaded %d ids, want %d", len(loaded), len(all))
	}
	check("Get after Load", func(id uint64) ([]byte, error) { return s2.Get(nil, testKey, id) })
	if err := s2.Load("another", nil); err != nil {
		t.Fatalf("Load of a session with no file: %v", err)
	}
	if _, err := s2.Get(nil, "another", 1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get of a session with no file: %v", err)
	}
}

// Out-of-order ids (not what the forwarder writes) are still found.
func TestUnsortedAppend(t *testing.T) {
	s := openStore(t, t.TempDir(), nil)
	order := []uint64{500, 3, 900, 64, 65, 2}
	for _, id := range order {
		if err := s.Append(testKey, id, def(id)); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range order {
		if got, err := s.Get(nil, testKey, id); err != nil || !bytes.Equal(got, def(id)) {
			t.Fatalf("Get(%d) = %q, %v", id, got, err)
		}
		if got, err := s.Lookup(testKey, id); err != nil || !bytes.Equal(got, def(id)) {
			t.Fatalf("Lookup(%d) = %q, %v", id, got, err)
		}
	}
	if _, err := s.Get(nil, testKey, 4); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get(4) = %v", err)
	}
}

func TestBadAppendsRefused(t *testing.T) {
	s := openStore(t, t.TempDir(), nil)
	for _, c := range []struct {
		id  uint64
		def []byte
	}{{1, nil}, {1 << 32, []byte{1}}, {1, make([]byte, MaxDefinition+1)}} {
		if err := s.Append(testKey, c.id, c.def); err == nil {
			t.Fatalf("Append(%d, %d bytes) took it", c.id, len(c.def))
		}
	}
}

// writeFile writes n definitions to a fresh store's file and returns its
// path and each record's offset.
func writeFile(t *testing.T, dir string, n int) (string, []int64) {
	t.Helper()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var offs []int64
	off := int64(len(appendHeader(nil, testKey)))
	for id := uint64(0); id < uint64(n); id++ {
		offs = append(offs, off)
		off += int64(recordHead + len(def(id)))
		if err := s.Append(testKey, id, def(id)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CloseAll(); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, fileName(testKey)), offs
}

func TestRepair(t *testing.T) {
	const n = 40
	cases := []struct {
		name    string
		corrupt func(b []byte, offs []int64) []byte
		survive int // records kept
		repairs int
	}{
		{"intact", func(b []byte, _ []int64) []byte { return b }, n, 0},
		{"torn_last_record", func(b []byte, offs []int64) []byte { return b[:len(b)-3] }, n - 1, 1},
		{"torn_last_head", func(b []byte, offs []int64) []byte { return b[:offs[n-1]+5] }, n - 1, 1},
		{"bad_checksum", func(b []byte, offs []int64) []byte { b[offs[17]+recordHead+2] ^= 0x40; return b }, 17, 1},
		{"bad_length", func(b []byte, offs []int64) []byte { b[offs[9]] = 0xff; return b }, 9, 1},
		{"zero_length", func(b []byte, offs []int64) []byte { copy(b[offs[5]:], []byte{0, 0, 0, 0}); return b }, 5, 1},
		{"flipped_id", func(b []byte, offs []int64) []byte { b[offs[30]+7] ^= 1; return b }, 30, 1},
		{"zeroed_tail", func(b []byte, offs []int64) []byte { return append(b, make([]byte, 100)...) }, n, 1},
		{"bad_magic", func(b []byte, _ []int64) []byte { b[0] = 'X'; return b }, 0, 1},
		{"bad_header_checksum", func(b []byte, _ []int64) []byte { b[len(magic)+5] ^= 1; return b }, 0, 1},
		{"torn_header", func(b []byte, _ []int64) []byte { return b[:len(magic)+6] }, 0, 1},
		{"empty", func(b []byte, _ []int64) []byte { return b[:0] }, 0, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			path, offs := writeFile(t, dir, n)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, c.corrupt(b, offs), 0o644); err != nil {
				t.Fatal(err)
			}
			var repairs []Repair
			s := openStore(t, dir, &repairs)
			var got []uint32
			if err := s.Load(testKey, func(id uint32, d []byte) {
				if !bytes.Equal(d, def(uint64(id))) {
					t.Fatalf("record %d reads %q", id, d)
				}
				got = append(got, id)
			}); err != nil {
				t.Fatal(err)
			}
			if len(got) != c.survive || len(repairs) != c.repairs {
				t.Fatalf("kept %d records with %d repairs, want %d and %d", len(got), len(repairs), c.survive, c.repairs)
			}
			for _, r := range repairs {
				if r.Aside == "" || r.Err != nil {
					t.Fatalf("repair kept no evidence: %+v", r)
				}
				aside, err := os.ReadFile(r.Aside)
				if err != nil || int64(len(aside)) != r.Dropped {
					t.Fatalf("aside %s: %d bytes, %v; want %d", r.Aside, len(aside), err, r.Dropped)
				}
			}
			// The repaired file takes appends and reads them back, here
			// and after a reopening.
			if err := s.Append(testKey, 1000, def(1000)); err != nil {
				t.Fatal(err)
			}
			if d, err := s.Get(nil, testKey, 1000); err != nil || !bytes.Equal(d, def(1000)) {
				t.Fatalf("Get after repair = %q, %v", d, err)
			}
			if err := s.CloseAll(); err != nil {
				t.Fatal(err)
			}
			repairs = nil
			s2 := openStore(t, dir, &repairs)
			count := 0
			if err := s2.Load(testKey, func(uint32, []byte) { count++ }); err != nil {
				t.Fatal(err)
			}
			if count != c.survive+1 || len(repairs) != 0 {
				t.Fatalf("reopened: %d records, %d repairs; want %d and 0", count, len(repairs), c.survive+1)
			}
		})
	}
}

func TestRemoveAndRemoveOthers(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, nil)
	keys := []string{"a\x00i\x00s1", "b\x00i\x00s2", "c\x00i\x00s3"}
	for _, k := range keys {
		if err := s.Append(k, 0, def(0)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "kept.damaged"), []byte("evidence"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(keys[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Lookup(keys[0], 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Lookup of a removed session: %v", err)
	}
	n, err := s.RemoveOthers(keys[2:])
	if err != nil || n != 1 {
		t.Fatalf("RemoveOthers removed %d, %v; want 1", n, err)
	}
	names, _ := filepath.Glob(filepath.Join(dir, "*"))
	if len(names) != 2 {
		t.Fatalf("left %v; want c's file and the evidence", names)
	}
	info, err := os.Stat(filepath.Join(dir, fileName(keys[2])))
	if err != nil {
		t.Fatal(err)
	}
	if files, bytes, err := s.Usage(); err != nil || files != 1 || bytes != info.Size() {
		t.Fatalf("Usage = %d files, %d bytes, %v; want 1 and %d (the evidence not counted)", files, bytes, err, info.Size())
	}
	if d, err := s.Lookup(keys[2], 0); err != nil || !bytes.Equal(d, def(0)) {
		t.Fatalf("Lookup of a kept session = %q, %v", d, err)
	}
}

func TestImportReplaces(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, nil)
	if err := s.Append(testKey, 9, []byte("stale\x01")); err != nil {
		t.Fatal(err)
	}
	i := uint64(0)
	if err := s.Import(testKey, func() (uint64, []byte, bool, error) {
		if i == 100 {
			return 0, nil, false, nil
		}
		i++
		return i - 1, def(i - 1), true, nil
	}); err != nil {
		t.Fatal(err)
	}
	if d, err := s.Get(nil, testKey, 9); err != nil || !bytes.Equal(d, def(9)) {
		t.Fatalf("Get(9) after Import = %q, %v", d, err)
	}
	count := 0
	if err := s.Load(testKey, func(uint32, []byte) { count++ }); err != nil || count != 100 {
		t.Fatalf("Load after Import: %d, %v", count, err)
	}
}
