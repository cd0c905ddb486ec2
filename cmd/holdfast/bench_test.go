package main

import (
	"strings"
	"testing"
)

// TestBenchUsage: `bench peer` is a known scenario (an unknown one exits 2
// naming the list), and the hidden `bench target` refuses bad flags.
func TestBenchUsage(t *testing.T) {
	code, _, errs := runCmd("bench", "nope")
	if code != 2 || !strings.Contains(errs, "peer") {
		t.Fatalf("bench nope: exit %d, %q: want 2 and the scenario list with peer", code, errs)
	}
	for _, args := range [][]string{
		{"bench", "target", "--vms", "0"},
		{"bench", "target", "--shard-vms", "-1"},
		{"bench", "target", "--period", "0s"},
		{"bench", "target", "extra"},
	} {
		if code, _, _ := runCmd(args...); code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
	}
}
