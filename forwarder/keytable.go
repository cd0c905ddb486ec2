package forwarder

import (
	"hash/maphash"
	"math/bits"

	"github.com/holdfast/holdfast/internal/offheap"
)

// fingerprintOf is the writer's second, independent hash of the bytes a
// timeseries key hashes (pa.AppendTimeseriesKeyBytes): two timeseries under
// one key with different fingerprints collided (DESIGN.md, "Collisions").
// 32 bits: a collision the fingerprint misses needs both a key collision
// and a fingerprint one, about 2⁻⁹⁶ per pair of timeseries, and every
// written key costs 4 bytes less than with 64.
func fingerprintOf(seed maphash.Seed, keyBytes []byte) uint32 {
	return uint32(maphash.Bytes(seed, keyBytes))
}

// keyTable is the writer's set of written timeseries keys with their
// fingerprints: an open-addressing hash table (linear probing) over two
// parallel arrays, 12 bytes a slot. It is filled to at most 3/4 and then
// grows by a quarter, not twice: its slot count need not be a power of two
// (a key's home slot is the high word of its mixed hash times the slot
// count), so any number of keys past the first 768 takes 16–20 bytes a
// key rather than the 15–30 of doubling (17.2 against 22.9 at RFD 125's
// 2.2 M keys, where the doubled table was half empty), and a growth holds
// 2.25 times the old arrays for a moment rather than 3 times. The price: each key is rehashed
// about four times over the table's life instead of twice. Lookups of
// random keys among a million took the same time as with doubling within
// this machine's noise (`BenchmarkKeyTableGet`, 19–27 against 15–31 ns in
// alternating runs); the load stays under 3/4 so that probe sequences stay
// short. A Go map[uint64]uint64 takes 26.4 bytes a key (a slot of a uint64
// key is 16 bytes plus a control byte, whatever the value;
// `TestKeyTableMemory`). Keys are FNV-1a hashes already; the
// multiplicative mix spreads them over the slots anyway, so keys that tests
// force to collide or that share their low bits probe no worse.
//
// Not safe for concurrent use; the writer's Run goroutine owns it, and
// deliveries only read it while the Run goroutine does not write
// (pipeline.go).
type keyTable struct {
	keys []uint64 // 0: empty slot (key 0 is kept aside)
	fps  []uint32
	// offHeap puts the arrays outside the Go heap (internal/offheap): the
	// forwarder's table lives as long as the process and would otherwise
	// count twice in RSS at GOGC=100. Its owner frees them (release).
	offHeap bool
	n       int // keys held, key 0 included
	// zero and zeroFP hold key 0, which cannot mark itself in keys.
	zero   bool
	zeroFP uint32
}

const keyTableMinSlots = 1024

// slot is key's home slot: its mixed hash scaled to [0, len(t.keys)).
func (t *keyTable) slot(key uint64) int {
	hi, _ := bits.Mul64(key*0x9e3779b97f4a7c15, uint64(len(t.keys)))
	return int(hi)
}

// get returns key's fingerprint.
func (t *keyTable) get(key uint64) (fp uint32, ok bool) {
	if key == 0 {
		return t.zeroFP, t.zero
	}
	if len(t.keys) == 0 {
		return 0, false
	}
	for i := t.slot(key); ; i++ {
		if i == len(t.keys) {
			i = 0
		}
		switch t.keys[i] {
		case key:
			return t.fps[i], true
		case 0:
			return 0, false
		}
	}
}

// put sets key's fingerprint.
func (t *keyTable) put(key uint64, fp uint32) {
	if key == 0 {
		if !t.zero {
			t.n++
		}
		t.zero, t.zeroFP = true, fp
		return
	}
	if (t.n+1)*4 > len(t.keys)*3 {
		t.grow()
	}
	if t.insert(key, fp) {
		t.n++
	}
}

// insert places key in its slot; true when it was not there.
func (t *keyTable) insert(key uint64, fp uint32) bool {
	for i := t.slot(key); ; i++ {
		if i == len(t.keys) {
			i = 0
		}
		switch t.keys[i] {
		case key:
			t.fps[i] = fp
			return false
		case 0:
			t.keys[i], t.fps[i] = key, fp
			return true
		}
	}
}

func (t *keyTable) grow() {
	slots := max(keyTableMinSlots, len(t.keys)+len(t.keys)/4)
	keys, fps := t.keys, t.fps
	if t.offHeap {
		t.keys, t.fps = offheap.Make[uint64](slots), offheap.Make[uint32](slots)
	} else {
		t.keys, t.fps = make([]uint64, slots), make([]uint32, slots)
	}
	for i, k := range keys {
		if k != 0 {
			t.insert(k, fps[i])
		}
	}
	t.free(keys, fps)
}

// free gives arrays of the table back to the OS when they are off the heap
// (heap ones are the garbage collector's); nothing may hold them.
func (t *keyTable) free(keys []uint64, fps []uint32) {
	if t.offHeap {
		offheap.Free(keys)
		offheap.Free(fps)
	}
}

// release empties the table and gives its arrays back.
func (t *keyTable) release() {
	t.free(t.keys, t.fps)
	t.keys, t.fps = nil, nil
	t.n, t.zero, t.zeroFP = 0, false, 0
}

// len is the number of keys held.
func (t *keyTable) len() int { return t.n }

// reset empties the table, keeping its arrays: a table cleared because it
// reached its bound fills to it again.
func (t *keyTable) reset() {
	clear(t.keys)
	t.n, t.zero, t.zeroFP = 0, false, 0
}
