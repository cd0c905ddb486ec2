package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	pa "github.com/holdfast/holdfast/producerapi"
	"github.com/holdfast/holdfast/registry"
)

// lockedBuffer is a bytes.Buffer a command and a test can share.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestRegistryMaxSchemasFlag runs `holdfast registry --max-schemas 3` on a
// real listener: a report past the bound is refused with 409 over HTTP and
// only 3 schemas are kept; a bound below 1 is a usage error.
func TestRegistryMaxSchemasFlag(t *testing.T) {
	if code, _, stderr := runCmd("registry", "--max-schemas", "0"); code != 2 || !strings.Contains(stderr, "--max-schemas") {
		t.Fatalf("--max-schemas 0: exit %d, %s", code, stderr)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr lockedBuffer
	done := make(chan int, 1)
	go func() {
		done <- serveRegistry(ctx, []string{"--listen", "127.0.0.1:0", "--data-dir", t.TempDir(), "--max-schemas", "3"}, &stdout, &stderr)
	}()
	addr := regexp.MustCompile(registryUp)
	var base string
	for deadline := time.Now().Add(30 * time.Second); base == ""; time.Sleep(20 * time.Millisecond) {
		if m := addr.FindStringSubmatch(stderr.String()); m != nil {
			base = "http://" + m[1]
		} else if time.Now().After(deadline) {
			t.Fatalf("registry did not start: %s %s", stdout.String(), stderr.String())
		}
	}
	c := &registry.Client{BaseURL: base}
	var schemas []pa.TimeseriesSchema
	for i := 0; i < 5; i++ {
		schemas = append(schemas, pa.TimeseriesSchema{Name: fmt.Sprintf("t:m%d", i), DatumType: pa.DatumF64, Version: 1, Fields: []pa.FieldSchema{}})
	}
	var ae *registry.APIError
	if err := c.ReportSchemas(ctx, schemas); !errors.As(err, &ae) || ae.Code != http.StatusConflict || !strings.Contains(ae.Msg, "maximum of 3 schemas") {
		t.Fatalf("report past --max-schemas 3: %v", err)
	}
	kept, err := c.Schemas(ctx)
	if err != nil || len(kept) != 3 {
		t.Fatalf("kept %d schemas (%v), want 3", len(kept), err)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("registry exit %d: %s", code, stderr.String())
	}
}
