package offheap

import (
	"fmt"
	"reflect"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"unsafe"
)

// MinBytes is the smallest array Make maps outside the heap.
const MinBytes = 64 << 10

// mapped is the bytes currently mapped by Make.
var mapped atomic.Int64

// Bytes returns the bytes Make has mapped outside the Go heap and Free has
// not unmapped yet.
func Bytes() int64 { return mapped.Load() }

// pointerFree caches, per element type, whether it holds no pointers.
var pointerFree sync.Map // reflect.Type -> bool

// Make returns a zeroed slice of n Ts (len and cap n). Arrays of at least
// MinBytes are mapped outside the Go heap when the system allows it. T must
// hold no pointers.
func Make[T any](n int) []T {
	if n <= 0 {
		return nil
	}
	t := reflect.TypeFor[T]()
	ok, seen := pointerFree.Load(t)
	if !seen {
		ok, _ = pointerFree.LoadOrStore(t, !hasPointers(t))
	}
	if !ok.(bool) {
		panic(fmt.Sprintf("offheap: %v holds pointers", t))
	}
	size := int(t.Size())
	if size == 0 || n > maxBytes/size || n*size < MinBytes {
		return make([]T, n)
	}
	bytes := n * size
	b, err := mmap(bytes)
	if err != nil {
		return make([]T, n)
	}
	mapped.Add(int64(bytes))
	limitChanged()
	return unsafe.Slice((*T)(unsafe.Pointer(unsafe.SliceData(b))), n)
}

// Free unmaps s, a slice Make returned or a reslice of it with the same
// start and capacity (s[:i] is fine, s[i:] is not), when Make mapped it;
// heap arrays are left to the garbage collector. Nothing may use s or
// point into it afterwards. A mapping the system refuses to unmap (it
// should not happen: ENOMEM splitting mappings near vm.max_map_count) is
// left mapped and counted in Bytes.
func Free[T any](s []T) {
	if cap(s) == 0 {
		return
	}
	s = s[:cap(s)]
	bytes := len(s) * int(unsafe.Sizeof(s[0]))
	if bytes < MinBytes {
		return
	}
	isMapping, err := munmap(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(s))), bytes))
	if isMapping && err == nil {
		mapped.Add(-int64(bytes))
		limitChanged()
	}
}

// maxBytes bounds one array (Make falls back to the heap, which fails as
// make does).
const maxBytes = 1 << 40

// hasPointers reports whether values of t hold pointers.
func hasPointers(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128:
		return false
	case reflect.Array:
		return t.Len() > 0 && hasPointers(t.Elem())
	case reflect.Struct:
		for i := range t.NumField() {
			if hasPointers(t.Field(i).Type) {
				return true
			}
		}
		return false
	default:
		return true
	}
}

// The process' soft memory limit, whole (SetMemoryLimit): the Go runtime's
// limit is it less the bytes mapped here.
var limit struct {
	sync.Mutex
	total   int64 // 0: none set
	applied int64 // the mapped bytes the runtime's limit was last set for
}

// limitSlack is how far the mapped bytes may move before the runtime's
// limit is set again.
const limitSlack = 4 << 20

// minHeapLimit is the least the runtime's limit is set to, however much is
// mapped: below it the garbage collector would run without pause.
const minHeapLimit = 32 << 20

// SetMemoryLimit sets a soft memory limit for the whole process: the Go
// runtime's (debug.SetMemoryLimit) is total less Bytes (never below 32
// MiB), and follows Bytes as arrays are mapped and freed. total <= 0
// removes the limit.
func SetMemoryLimit(total int64) {
	limit.Lock()
	defer limit.Unlock()
	limit.total = total
	applyLimit()
}

// MemoryLimit returns the limit SetMemoryLimit set (0: none) and the Go
// runtime's limit derived from it.
func MemoryLimit() (total, heap int64) {
	limit.Lock()
	defer limit.Unlock()
	return limit.total, debug.SetMemoryLimit(-1)
}

func limitChanged() {
	limit.Lock()
	defer limit.Unlock()
	if limit.total <= 0 {
		return
	}
	if d := mapped.Load() - limit.applied; d < limitSlack && d > -limitSlack {
		return
	}
	applyLimit()
}

// applyLimit sets the runtime's limit; limit is locked.
func applyLimit() {
	if limit.total <= 0 {
		debug.SetMemoryLimit(1<<63 - 1)
		return
	}
	m := mapped.Load()
	limit.applied = m
	debug.SetMemoryLimit(max(limit.total-m, minHeapLimit))
}
