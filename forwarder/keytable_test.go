package forwarder

import (
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/holdfast/holdfast/internal/offheap"
)

// TestKeyTableAgainstMap: random puts, overwrites and gets, key 0 and keys
// sharing their low and high bits included, agree with a Go map through
// growth and reset.
func TestKeyTableAgainstMap(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	keyGens := map[string]func() uint64{
		"random":    r.Uint64,
		"small":     func() uint64 { return r.Uint64N(5000) }, // key 0 and many repeats
		"high bits": func() uint64 { return r.Uint64N(1<<12) << 52 },
		"low bits":  func() uint64 { return r.Uint64N(1 << 12) },
	}
	for _, offHeap := range []bool{false, true} {
		for name, next := range keyGens {
			if offHeap {
				name += ", off the heap"
			}
			t.Run(name, func(t *testing.T) { keyTableAgainstMap(t, r, next, offHeap) })
		}
	}
}

// keyTableAgainstMap runs TestKeyTableAgainstMap with a key generator,
// then releases the table: off the heap, every mapped byte goes back.
func keyTableAgainstMap(t *testing.T, r *rand.Rand, next func() uint64, offHeap bool) {
	mapped := offheap.Bytes()
	tab := keyTable{offHeap: offHeap}
	want := map[uint64]uint32{}
	for round := 0; round < 3; round++ {
		for i := 0; i < 20_000; i++ {
			k, fp := next(), r.Uint32()
			tab.put(k, fp)
			want[k] = fp
			q := next()
			got, ok := tab.get(q)
			if w, wok := want[q]; ok != wok || got != w {
				t.Fatalf("get(%d) = %d, %v; want %d, %v", q, got, ok, w, wok)
			}
		}
		if tab.len() != len(want) {
			t.Fatalf("len %d, want %d", tab.len(), len(want))
		}
		for k, w := range want {
			if got, ok := tab.get(k); !ok || got != w {
				t.Fatalf("get(%d) = %d, %v; want %d", k, got, ok, w)
			}
		}
		tab.reset()
		clear(want)
		if _, ok := tab.get(0); ok || tab.len() != 0 {
			t.Fatalf("after reset: len %d, key 0 present %v", tab.len(), ok)
		}
	}
	if offHeap && runtime.GOOS == "linux" && len(tab.keys)*8 >= offheap.MinBytes && offheap.Bytes() == mapped {
		t.Fatal("nothing was mapped outside the heap")
	}
	tab.release()
	if got := offheap.Bytes(); got != mapped {
		t.Fatalf("released: %d bytes mapped, want %d", got, mapped)
	}
	if _, ok := tab.get(1); ok || tab.len() != 0 {
		t.Fatal("a released table still holds keys")
	}
}

// TestKeyTableMemory: RFD 125's 2.2 M timeseries (N=100) take at most 20
// bytes a key (12-byte slots at least 0.6 full, the load just after a
// growth by a quarter), and less than the Go map[uint64]uint64 it replaced
// takes for the same keys, measured here.
func TestKeyTableMemory(t *testing.T) {
	const n = 2_200_000
	keys := make([]uint64, n)
	r := rand.New(rand.NewPCG(3, 4))
	for i := range keys {
		keys[i] = r.Uint64()
	}
	heapOf := func(fill func() any) float64 {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		v := fill()
		runtime.GC()
		runtime.ReadMemStats(&after)
		runtime.KeepAlive(v)
		return float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / n
	}
	table := heapOf(func() any {
		tab := &keyTable{}
		for i, k := range keys {
			tab.put(k, uint32(i))
		}
		return tab
	})
	goMap := heapOf(func() any {
		m := map[uint64]uint64{}
		for i, k := range keys {
			m[k] = uint64(i)
		}
		return m
	})
	t.Logf("%d keys: keyTable %.1f bytes a key, map[uint64]uint64 %.1f", n, table, goMap)
	if table > 20 || table >= goMap {
		t.Errorf("keyTable takes %.1f bytes a key, want at most 20 and less than the map's %.1f", table, goMap)
	}
}

func BenchmarkKeyTableGet(b *testing.B) {
	var tab keyTable
	r := rand.New(rand.NewPCG(5, 6))
	keys := make([]uint64, 1<<20)
	for i := range keys {
		keys[i] = r.Uint64()
		tab.put(keys[i], uint32(i))
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, ok := tab.get(keys[i&(len(keys)-1)]); !ok {
			b.Fatal("missing")
		}
	}
}

func BenchmarkGoMapGet(b *testing.B) {
	m := map[uint64]uint64{}
	r := rand.New(rand.NewPCG(5, 6))
	keys := make([]uint64, 1<<20)
	for i := range keys {
		keys[i] = r.Uint64()
		m[keys[i]] = uint64(i)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, ok := m[keys[i&(len(keys)-1)]]; !ok {
			b.Fatal("missing")
		}
	}
}

// TestWrittenKeysRestartCounted: a written-key set that fills starts
// over (forgets every key, so their fields rows are written again) and
// counts it, for holdfast_forwarder_written_keys_restarts_total and the
// warning that names --max-seen-keys. Before issue 9's raise of the
// default, 4.4 M timeseries (RFD 125 at N=200) filled 4,194,304 keys every
// period, unseen: the collector fell behind at 10.9 CPU-s per million
// samples.
func TestWrittenKeysRestartCounted(t *testing.T) {
	w := newWriter(nil, "db", 4)
	batch := func(keys ...uint64) *rowSet {
		rs := newRowSet()
		for _, k := range keys {
			rs.newKeys[k] = uint32(k)
		}
		return rs
	}
	w.markSeen(batch(1, 2, 3))
	w.markSeen(batch(4))
	if n := w.seenRestarts.Load(); n != 0 {
		t.Fatalf("%d restarts with 4 keys in a set of 4", n)
	}
	w.markSeen(batch(5, 6))
	if n := w.seenRestarts.Load(); n != 1 {
		t.Fatalf("%d restarts after a fifth key, want 1", n)
	}
	if _, ok := w.seenKeys.get(1); ok {
		t.Fatal("a key of before the restart is still remembered")
	}
	for _, k := range []uint64{5, 6} {
		if fp, ok := w.seenKeys.get(k); !ok || fp != uint32(k) {
			t.Fatalf("key %d of the batch that restarted the set: %v %v", k, fp, ok)
		}
	}
	d := w.forDelivery()
	d.markSeen(batch(7, 8, 9))
	if n := w.seenRestarts.Load(); n != 2 {
		t.Fatalf("a delivery's writer restarted the set: %d restarts counted, want 2 (the counter is shared)", n)
	}
}
