package main

import (
	"slices"
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

// TestBenchMaxSteps: --steps takes VMs above 0 going up, and refuses
// anything else before a scenario starts.
func TestBenchMaxSteps(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    []int
		wantErr string
	}{
		{in: "200000", want: []int{200000}},
		{in: "200000, 230000,260000", want: []int{200000, 230000, 260000}},
		{in: "200000,200000", wantErr: "steps go up"},
		{in: "230000,200000", wantErr: "steps go up"},
		{in: "2OO000", wantErr: "not a number"},
		{in: "0", wantErr: "above 0"},
		{in: "-5", wantErr: "above 0"},
		{in: "100000,", wantErr: "not a number"},
	} {
		got, err := parseStepList(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%q: %v, %v; want an error saying %q", tc.in, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%q: %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	if code, _, errs := runCmd("bench", "max", "--steps", "230000,200000"); code != 2 || !strings.Contains(errs, "--steps") {
		t.Errorf("bench max --steps 230000,200000: exit %d, %q; want 2 naming --steps", code, errs)
	}
}
