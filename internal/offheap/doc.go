// Package offheap allocates large, long-lived, pointer-free arrays outside
// the Go heap, in anonymous memory mapped from the OS.
//
// Why: the collector's per-series state (the forwarder's session entries
// and its written-key table, ~38 bytes a timeseries, 80 MB at RFD 125's
// 2.2 M timeseries) lives as long as the process and holds no pointers. On
// the Go heap the garbage collector never scans it, but it still counts as
// live heap, and at GOGC=100 the heap grows to twice what is live before a
// collection: every byte of per-series state cost two bytes of RSS. Mapped
// outside the heap it costs one, and the heap's growth is set by what the
// hot path allocates, not by how many series the fleet has.
//
// Usage:
//
//	keys := offheap.Make[uint64](n) // zeroed, len and cap n
//	...
//	offheap.Free(keys)              // exactly the slice Make returned
//
// Rules (the price of memory the garbage collector does not manage):
//
//   - T must hold no pointers (Make panics otherwise: a programming error,
//     never input). The garbage collector does not see into the mapping, so
//     a pointer stored there would not keep its target alive.
//   - Free is called once, with the slice Make returned or a reslice with
//     the same start and capacity, after the last use of every slice or
//     pointer into it. A use after Free faults (SIGSEGV) while the range
//     is unmapped, but the kernel may hand the range to the next mapping
//     (another Make, or the Go runtime's own), and then a stale pointer
//     reads or corrupts that memory: ownership must be clear. Whoever owns the
//     array frees it; there is no finalizer, so an array never freed stays
//     mapped until the process exits (Bytes says how much is mapped: tests
//     check it returns to where it was).
//   - Small arrays are not worth a mapping (a page at least, a system call
//     each way): Make returns ordinary heap memory below MinBytes, and when
//     the mapping fails (the process' map count or address space), and Free
//     leaves those to the garbage collector.
//
// Bytes is the process' mapped total; the collector exports it as
// holdfast_offheap_bytes and subtracts it from its soft memory limit
// (SetMemoryLimit), so that --memory-limit keeps bounding the whole
// process. On systems without mmap every array is heap memory.
//
// Make, Free, Bytes and SetMemoryLimit are safe for concurrent use; the
// arrays themselves are not synchronized.
package offheap
