package offheap

import (
	"runtime"
	"runtime/debug"
	"testing"
)

type entry struct {
	key  uint64
	fp   uint32
	kind uint8
}

func TestMakeMapsLargeArraysAndFreeUnmaps(t *testing.T) {
	before := Bytes()
	n := MinBytes/16 + 100 // entry is 16 bytes: above MinBytes
	s := Make[entry](n)
	if len(s) != n || cap(s) != n {
		t.Fatalf("len %d cap %d, want %d", len(s), cap(s), n)
	}
	if runtime.GOOS == "linux" {
		if got := Bytes() - before; got != int64(n*16) {
			t.Fatalf("mapped %d bytes, want %d", got, n*16)
		}
	}
	for i := range s {
		if s[i] != (entry{}) {
			t.Fatalf("entry %d not zeroed: %+v", i, s[i])
		}
		s[i] = entry{key: uint64(i), fp: uint32(i), kind: 1}
	}
	runtime.GC() // the mapping is not the heap's: nothing of it may be collected
	for i := range s {
		if s[i].key != uint64(i) {
			t.Fatalf("entry %d changed to %+v", i, s[i])
		}
	}
	Free(s)
	if got := Bytes(); got != before {
		t.Fatalf("after Free %d bytes mapped, want %d", got, before)
	}
}

func TestSmallArraysStayOnTheHeap(t *testing.T) {
	before := Bytes()
	s := Make[uint64](MinBytes/8 - 1)
	if Bytes() != before {
		t.Fatalf("a %d-byte array was mapped", len(s)*8)
	}
	s[0] = 1
	Free(s) // a heap array: left to the garbage collector, no accounting change
	if Bytes() != before {
		t.Fatalf("freeing a heap array changed the count to %d", Bytes())
	}
	if Make[uint64](0) != nil {
		t.Fatal("Make(0) is not nil")
	}
	Free[uint64](nil)
}

func TestFreeOfALargeHeapArrayIsANoOp(t *testing.T) {
	before := Bytes()
	Free(make([]uint64, MinBytes)) // as when mmap failed and Make fell back
	if Bytes() != before {
		t.Fatalf("count moved to %d", Bytes())
	}
}

func TestPointerTypesRefused(t *testing.T) {
	for name, mk := range map[string]func(){
		"string": func() { Make[string](MinBytes) },
		"struct with ptr": func() {
			Make[struct {
				a int
				p *int
			}](MinBytes)
		},
		"slice":         func() { Make[[]byte](MinBytes) },
		"array of ptrs": func() { Make[[2]*int](MinBytes) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("no panic")
				}
			}()
			mk()
		})
	}
}

func TestMemoryLimitFollowsMappedBytes(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("mapping is tested on linux")
	}
	old := debug.SetMemoryLimit(-1)
	defer debug.SetMemoryLimit(old)
	const total = 1 << 30
	SetMemoryLimit(total)
	defer SetMemoryLimit(0)
	base := Bytes()
	if _, heap := MemoryLimit(); heap != total-base {
		t.Fatalf("runtime limit %d, want %d", heap, total-base)
	}
	s := Make[uint64](16 << 20 / 8) // 16 MiB: more than the slack
	if _, heap := MemoryLimit(); heap != total-Bytes() {
		t.Fatalf("runtime limit %d with 16 MiB mapped, want %d", heap, total-Bytes())
	}
	small := Make[uint64](MinBytes / 8) // 64 KiB: within the slack, limit not reset
	_, heap := MemoryLimit()
	if heap != total-Bytes()+MinBytes {
		t.Fatalf("runtime limit %d, want it unchanged at %d", heap, total-Bytes()+MinBytes)
	}
	Free(small)
	Free(s)
	if _, heap := MemoryLimit(); heap != total-base {
		t.Fatalf("runtime limit %d after freeing, want %d", heap, total-base)
	}
	SetMemoryLimit(64 << 20)
	big := Make[uint64](48 << 20 / 8)
	if _, heap := MemoryLimit(); heap != minHeapLimit {
		t.Fatalf("runtime limit %d with 48 of 64 MiB mapped, want the floor %d", heap, minHeapLimit)
	}
	Free(big)
}
