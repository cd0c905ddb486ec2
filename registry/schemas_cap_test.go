package registry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	pa "github.com/holdfast/holdfast/producerapi"
)

// TestSchemasAreBounded: past MaxSchemas, new (name, version) pairs are
// refused with a clear 409 naming the bound (a collector does not send them
// again), known ones are still accepted, and the count stays at the bound,
// also after a restart.
func TestSchemasAreBounded(t *testing.T) {
	dir := t.TempDir()
	r, db := openTest(t, dir, Options{MaxSchemas: 10})
	hs := httptest.NewServer(r.Handler(nil))
	defer hs.Close()
	c := &Client{BaseURL: hs.URL}
	var schemas []pa.TimeseriesSchema
	for i := 0; i < 15; i++ {
		schemas = append(schemas, pa.TimeseriesSchema{Name: fmt.Sprintf("t:m%02d", i), DatumType: pa.DatumF64, Version: 1, Fields: []pa.FieldSchema{}})
	}
	var ae *APIError
	err := c.ReportSchemas(context.Background(), schemas)
	if !errors.As(err, &ae) || ae.Code != http.StatusConflict || !strings.Contains(ae.Msg, "maximum of 10 schemas") {
		t.Fatalf("report over the bound: %v", err)
	}
	if n := len(r.Schemas()); n != 10 {
		t.Fatalf("%d schemas kept, want the bound, 10", n)
	}
	if err := c.ReportSchemas(context.Background(), schemas[:10]); err != nil {
		t.Fatalf("known schemas again: %v", err)
	}
	db.Close()
	r, db = openTest(t, dir, Options{MaxSchemas: 10})
	defer db.Close()
	if err := r.AddSchemas(schemas[10:11]); err == nil || len(r.Schemas()) != 10 {
		t.Fatalf("after a restart: %v, %d schemas", err, len(r.Schemas()))
	}
}
