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

// TestBenchVMs: rfd125's --vms takes VMs above 0 in any order, and refuses
// a list with anything else before a scenario starts (it used to drop the
// bad entries and run the rest).
func TestBenchVMs(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []int
	}{
		{in: "100", want: []int{100}},
		{in: "10, 20,50,100", want: []int{10, 20, 50, 100}},
		{in: "100,10", want: []int{100, 10}},
		{in: "10,2O"},
		{in: "0"},
		{in: "10,"},
		{in: "1e3"},
	} {
		got, err := parseVMList(tc.in)
		if tc.want == nil {
			if err == nil || !strings.Contains(err.Error(), "above 0") {
				t.Errorf("%q: %v, %v; want an error", tc.in, got, err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%q: %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	if code, _, errs := runCmd("bench", "rfd125", "--vms", "10,2O"); code != 2 || !strings.Contains(errs, "--vms") {
		t.Errorf("bench rfd125 --vms 10,2O: exit %d, %q; want 2 naming --vms", code, errs)
	}
}
