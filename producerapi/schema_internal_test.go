package producerapi

import "testing"

// A hash of 0 is version 1: 0 is never a version (it reads as "unset").
func TestSchemaVersionZeroIsOne(t *testing.T) {
	if v := fnv32(0).version(); v != 1 {
		t.Fatalf("version of a 0 hash = %d, want 1", v)
	}
}
