package wal

import (
	"reflect"
	"testing"

	twal "github.com/tidwall/wal"
)

// TestClearBatchDropsALargeGroupsBuffer: after a group of up to
// keptBatchBytes the writer's batch keeps its buffer (cleared, capacity
// kept); after a larger one it is a zero Batch again, its buffer garbage.
func TestClearBatchDropsALargeGroupsBuffer(t *testing.T) {
	for _, size := range []int{100, keptBatchBytes, keptBatchBytes + 1, 8 << 20} {
		var b twal.Batch
		b.Write(1, make([]byte, size))
		clearBatch(&b, int64(size))
		if dropped, want := reflect.DeepEqual(b, twal.Batch{}), size > keptBatchBytes; dropped != want {
			t.Errorf("group of %d bytes: batch dropped %v, want %v", size, dropped, want)
		}
	}
}
