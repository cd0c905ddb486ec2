package bench

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/holdfast/holdfast/forwarder"
	"github.com/holdfast/holdfast/internal/sampletest"
)

// TestPerSeriesCheckSeesOverlapAndCollapse: rfd125's exact check counts
// samples per timeseries. Two producers with their own VMs pass it; two
// producers emitting the same VMs (as every rfd125 producer did before
// --vm-offset) fail it although the total is right, and so does a series
// missing a sample.
func TestPerSeriesCheckSeesOverlapAndCollapse(t *testing.T) {
	_, conn := dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const vms, periods = 20, 3
	load := func(offsets []int) string {
		db, drop, err := freshDB(ctx, conn, "perseries")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(drop)
		ins := forwarder.NewInserter(conn, db)
		for p, off := range offsets {
			f := sampletest.NewFleet(vms)
			f.FirstVM = off
			if err := ins.Insert(ctx, f.Append(nil, vms*22*periods, int64(1_000_000*(p+1)))); err != nil {
				t.Fatal(err)
			}
		}
		return db
	}
	if err := checkPerSeries(ctx, conn, load([]int{0, vms}), 2*vms*22, periods); err != nil {
		t.Fatalf("distinct VMs: %v", err)
	}
	err := checkPerSeries(ctx, conn, load([]int{0, 0}), 2*vms*22, periods)
	if err == nil || !strings.Contains(err.Error(), "per-series check failed") {
		t.Fatalf("two producers with the same VMs passed the per-series check: %v", err)
	}
	db := load([]int{0, vms})
	if err := conn.Exec(ctx, "ALTER TABLE "+db+".measurements_f64 DELETE WHERE timestamp_ns = 1000000"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		err = checkPerSeries(ctx, conn, db, 2*vms*22, periods)
		if err != nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond) // the mutation runs in the background
	}
	if err == nil {
		t.Fatal("a series short of a sample passed the per-series check")
	}
}

// TestLatencySubset: the latency poll keeps every timeseries of small
// fleets, and of large ones a key range of about 2,000 VMs' worth (at most
// 1/64), weighting its entries so that one stands for about the same share
// of the fleet's samples.
func TestLatencySubset(t *testing.T) {
	for _, c := range []struct {
		vms      int
		maxKey   uint64
		perEntry uint64
	}{
		{1, math.MaxUint64, 1000},
		{3999, math.MaxUint64, 1000},
		{4000, math.MaxUint64 >> 1, 500},
		{10_000, math.MaxUint64 >> 2, 250},
		{100_000, math.MaxUint64 >> 5, 31},
		{1_000_000, math.MaxUint64 >> 6, 15},
	} {
		got := latencySubset(c.vms)
		if got.maxKey != c.maxKey || got.perEntry != c.perEntry {
			t.Errorf("%d VMs: %+v, want maxKey %#x perEntry %d", c.vms, got, c.maxKey, c.perEntry)
		}
	}
}
