package collector_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/holdfast/holdfast/collector"
	"github.com/holdfast/holdfast/forwarder"
)

// TestCloseStopsAndWaitsForRun: Close with Run still going (a caller that
// never cancels it) stops Run and returns only after Run did, so nothing
// Run started (producer loops, a delivery in flight) touches the WAL or
// the state store after they are closed: a delivery writing to a closed
// Pebble panics, which a test that closed without waiting once did.
func TestCloseStopsAndWaitsForRun(t *testing.T) {
	_, hs := fleetProducer(t, 500)
	c, err := collector.Open(collector.Options{
		DataDir: t.TempDir(), CollectorID: "close-test", DefaultInterval: 50 * time.Millisecond,
		Registerer: prometheus.NewRegistry(), DrainTimeout: 100 * time.Millisecond,
		Producers: []collector.ProducerConfig{{ID: "p", URL: hs.URL}},
		// Unreachable: deliveries keep failing and retrying while Close runs.
		Forwarder: forwarder.Options{Addr: "127.0.0.1:1", BackoffMin: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Run(context.Background()) }()
	waitFor(t, 10*time.Second, "samples collected", func() (bool, string) {
		return c.Checkpoint().WALLastIndex > 0, ""
	})
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	default:
		t.Fatal("Close returned while Run was still running")
	}
}
