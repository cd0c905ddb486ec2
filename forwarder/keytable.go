package forwarder

import (
	"hash/maphash"
	"math/bits"
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
// parallel arrays, 12 bytes a slot, filled to at most 13/16 before it
// doubles: 15–30 bytes a key. At RFD 125's 2.2 M keys it takes 22.9 bytes a
// key against 26.4 for the map[uint64]uint64 it replaced (a Go map slot of
// a uint64 key is 16 bytes plus a control byte, whatever the value), and a
// lookup of a random key among a million is 3.4 times faster (34 against
// 116 ns: one probe sequence in one array; `TestKeyTableMemory`,
// `BenchmarkKeyTableGet`). Keys are FNV-1a hashes already; a
// multiplicative mix spreads them over the slots anyway, so keys that tests
// force to collide or that share their low bits probe no worse.
//
// Not safe for concurrent use; the writer's Run goroutine owns it, and
// deliveries only read it while the Run goroutine does not write
// (pipeline.go).
type keyTable struct {
	keys  []uint64 // 0: empty slot (key 0 is kept aside)
	fps   []uint32
	n     int  // keys held, key 0 included
	shift uint // 64 - log2(len(keys))
	// zero and zeroFP hold key 0, which cannot mark itself in keys.
	zero   bool
	zeroFP uint32
}

const keyTableMinSlots = 1024

func (t *keyTable) slot(key uint64) int {
	return int((key * 0x9e3779b97f4a7c15) >> t.shift)
}

// get returns key's fingerprint.
func (t *keyTable) get(key uint64) (fp uint32, ok bool) {
	if key == 0 {
		return t.zeroFP, t.zero
	}
	if len(t.keys) == 0 {
		return 0, false
	}
	mask := len(t.keys) - 1
	for i := t.slot(key); ; i = (i + 1) & mask {
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
	if (t.n+1)*16 > len(t.keys)*13 {
		t.grow()
	}
	if t.insert(key, fp) {
		t.n++
	}
}

// insert places key in its slot; true when it was not there.
func (t *keyTable) insert(key uint64, fp uint32) bool {
	mask := len(t.keys) - 1
	for i := t.slot(key); ; i = (i + 1) & mask {
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
	slots := max(keyTableMinSlots, 2*len(t.keys))
	keys, fps := t.keys, t.fps
	t.keys, t.fps = make([]uint64, slots), make([]uint32, slots)
	t.shift = uint(64 - bits.Len(uint(slots-1)))
	for i, k := range keys {
		if k != 0 {
			t.insert(k, fps[i])
		}
	}
}

// len is the number of keys held.
func (t *keyTable) len() int { return t.n }

// reset empties the table, keeping its arrays: a table cleared because it
// reached its bound fills to it again.
func (t *keyTable) reset() {
	clear(t.keys)
	t.n, t.zero, t.zeroFP = 0, false, 0
}
