package collector

import (
	"reflect"
	"testing"
	"time"

	"github.com/holdfast/holdfast/internal/statetest"
)

// TestCachedAssignmentSurvivesPowerLoss: the assignment is cached with
// pebble.Sync before it is applied, so the set a collector last collected
// from is there after a power loss (the store on Pebble's strict in-memory
// file system, every unsynced write dropped), and a collector that starts
// with the registry unreachable collects from it. Replaced sets are
// replaced there too.
func TestCachedAssignmentSurvivesPowerLoss(t *testing.T) {
	pl := statetest.NewPowerLoss(t)
	db := pl.Open()
	first := []ProducerConfig{{ID: "p1", URL: "http://127.0.0.1:1", Interval: time.Second}}
	second := []ProducerConfig{{ID: "p2", URL: "http://127.0.0.1:2", Interval: 10 * time.Second, AuthToken: "t"}, {ID: "p3", URL: "http://127.0.0.1:3"}}
	for _, ps := range [][]ProducerConfig{first, second} {
		if err := storeAssignment(db, ps); err != nil {
			t.Fatal(err)
		}
	}
	pl.Cut(func() { db.Close() })
	db = pl.Open()
	defer db.Close()
	got, err := loadAssignment(db)
	if err != nil || !reflect.DeepEqual(got, second) {
		t.Fatalf("cached assignment after the power loss: %+v (%v), want %+v", got, err, second)
	}
}
