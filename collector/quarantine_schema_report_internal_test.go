package collector

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/holdfast/holdfast/internal/state"
	pa "github.com/holdfast/holdfast/producerapi"
	"github.com/holdfast/holdfast/registry"
)

// TestSchemaConflictIsNotReportedForever: the registry answers 409 when a
// reported schema contradicts one it holds, having stored the others. The
// collector marks the set reported (the conflict is logged) instead of
// sending it again at every refresh, where it would conflict again forever.
func TestSchemaConflictIsNotReportedForever(t *testing.T) {
	db, err := state.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	reg, err := registry.Open(db, registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sample := func(name string, v pa.FieldValue) pa.Sample {
		return pa.Sample{Target: pa.Named{Name: "t", Fields: []pa.Field{{Name: "f", Value: v}}}, Metric: pa.Named{Name: name},
			TimestampNs: 1, Datum: pa.Datum{Type: pa.DatumU64, Uint: 1}}
	}
	theirs := pa.NewSchemaRegistry()
	s1 := sample("m", pa.StringValue("x"))
	if _, err := theirs.Check(&s1); err != nil {
		t.Fatal(err)
	}
	if err := reg.AddSchemas(theirs.Schemas()); err != nil {
		t.Fatal(err)
	}
	var posts atomic.Int32
	h := reg.Handler(slog.New(slog.DiscardHandler))
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/v1/timeseries-schema" {
			posts.Add(1)
		}
		h.ServeHTTP(w, r)
	}))
	defer hs.Close()

	c := &Collector{schemas: pa.NewSchemaRegistry(), log: slog.New(slog.DiscardHandler)}
	c.opts.RequestTimeout = 10 * time.Second
	for _, s := range []pa.Sample{sample("m", pa.I64Value(1)), sample("other", pa.I64Value(1))} {
		if _, err := c.schemas.Check(&s); err != nil {
			t.Fatal(err)
		}
	}
	client := &registry.Client{BaseURL: hs.URL}
	reported := map[string]bool{}
	for i := 0; i < 3; i++ {
		reported = c.reportSchemas(context.Background(), client, reported)
	}
	if n := posts.Load(); n != 1 {
		t.Fatalf("%d reports sent, want 1: the conflicting set is sent again and again", n)
	}
	if len(reg.Schemas()) != 2 {
		t.Fatalf("registry holds %d schemas, want its own and the collector's non-conflicting one", len(reg.Schemas()))
	}
}
