package collector_test

import (
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/holdfast/holdfast/collector"
	"github.com/holdfast/holdfast/forwarder"
)

func staticIDs(c *collector.Collector) []string {
	var ids []string
	for _, p := range c.Status().Producers {
		if p.Static {
			ids = append(ids, p.ID+"@"+p.Interval)
		}
	}
	slices.Sort(ids)
	return ids
}

// TestSetStatic: a configuration reload replaces the static producers in
// place (new interval, one added, one removed); an invalid set (bad URL,
// duplicate, above the cap) is refused whole and the old set stays; an
// assigned producer a static one shadowed comes back when it goes.
func TestSetStatic(t *testing.T) {
	c, _ := runCollector(t, collector.Options{DataDir: t.TempDir(), MaxProducers: 3, DrainTimeout: time.Millisecond,
		Producers: []collector.ProducerConfig{{ID: "a", URL: "http://127.0.0.1:1/a", Interval: time.Hour}},
		Forwarder: forwarder.Options{Addr: "127.0.0.1:1"}, Registerer: prometheus.NewRegistry()})
	if err := c.SetAssigned([]collector.ProducerConfig{{ID: "x", URL: "http://127.0.0.1:1/x", Interval: time.Hour}}); err != nil {
		t.Fatal(err)
	}
	if err := c.SetStatic([]collector.ProducerConfig{
		{ID: "a", URL: "http://127.0.0.1:1/a", Interval: 2 * time.Hour},
		{ID: "x", URL: "http://127.0.0.1:1/x", Interval: 3 * time.Hour},
	}); err != nil {
		t.Fatal(err)
	}
	if got := staticIDs(c); !slices.Equal(got, []string{"a@2h0m0s", "x@3h0m0s"}) {
		t.Fatalf("static after reload: %v", got)
	}
	for _, bad := range [][]collector.ProducerConfig{
		{{ID: "a", URL: "not a url"}},
		{{ID: "a", URL: "http://127.0.0.1:1/a"}, {ID: "a", URL: "http://127.0.0.1:1/b"}},
		{{ID: "a", URL: "http://h/1"}, {ID: "b", URL: "http://h/2"}, {ID: "c", URL: "http://h/3"}, {ID: "d", URL: "http://h/4"}},
	} {
		if err := c.SetStatic(bad); err == nil {
			t.Fatalf("SetStatic(%v) accepted", bad)
		}
		if got := staticIDs(c); !slices.Equal(got, []string{"a@2h0m0s", "x@3h0m0s"}) {
			t.Fatalf("a refused reload changed the set: %v", got)
		}
	}
	if err := c.SetStatic([]collector.ProducerConfig{{ID: "b", URL: "http://127.0.0.1:1/b", Interval: time.Hour}}); err != nil {
		t.Fatal(err)
	}
	if got := staticIDs(c); !slices.Equal(got, []string{"b@1h0m0s"}) {
		t.Fatalf("static after the second reload: %v", got)
	}
	if got := assignedIDs(c); got != "x" {
		t.Fatalf("the shadowed assigned producer did not come back: %q", got)
	}
}
