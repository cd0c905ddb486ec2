package wal

import (
	"reflect"
	"testing"

	twal "github.com/tidwall/wal"
)

// TestCommitBatchDropsABurstsBuffer: the writer's batch keeps its buffer
// while groups stay small, or large and alike (steady pages of over 1 MiB);
// after a group over keptBatchBytes, the first group under a quarter of the
// largest since the batch was made drops it (a zero Batch again, its buffer
// garbage), and the count starts over.
func TestCommitBatchDropsABurstsBuffer(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		name   string
		groups []int
		drops  []bool // after each group
	}{
		{"small groups", []int{100, 64 << 10, keptBatchBytes, 10}, []bool{false, false, false, false}},
		{"steady large groups", []int{1100 << 10, 2 * mib, 4 * mib, 1100 << 10, 3 * mib}, []bool{false, false, false, false, false}},
		{"a burst, then steady", []int{8 * mib, 6 * mib, 300 << 10, 300 << 10, 2 * mib}, []bool{false, false, true, false, false}},
		{"a burst just over a quarter", []int{8 * mib, 2 * mib, 2*mib - 1}, []bool{false, false, true}},
		{"a second burst after the drop", []int{8 * mib, 100, 16 * mib, 3 * mib, 100}, []bool{false, true, false, true, false}},
	} {
		var b commitBatch
		for i, size := range tc.groups {
			b.Write(uint64(i+1), make([]byte, size))
			b.clear(int64(size))
			if dropped := reflect.DeepEqual(b.Batch, twal.Batch{}); dropped != tc.drops[i] {
				t.Errorf("%s: after group %d (%d bytes): dropped %v, want %v", tc.name, i, size, dropped, tc.drops[i])
			}
		}
	}
}
