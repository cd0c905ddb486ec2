package main

import (
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/holdfast/holdfast/collector"
	"github.com/holdfast/holdfast/forwarder"
	"github.com/holdfast/holdfast/internal/state"
	pa "github.com/holdfast/holdfast/producerapi"
	"github.com/holdfast/holdfast/quarantine"
)

func quarantineSample(ts int64) pa.Sample {
	return pa.Sample{Target: pa.Named{Name: "t"}, Metric: pa.Named{Name: "m"}, TimestampNs: ts, Datum: pa.Datum{Type: pa.DatumU64, Uint: 7}}
}

// fillQuarantine stores, in this order: a too_large entry without data, a
// schema-conflict sample, a too_large entry, an invalid sample (refused by
// the default limits).
func fillQuarantine(t *testing.T, q *quarantine.Store) {
	t.Helper()
	bad := quarantineSample(3)
	bad.Metric.Name = "Bad-Name"
	if _, err := q.Put([]quarantine.Entry{
		{Kind: quarantine.KindSample, Producer: "p", Code: quarantine.CodeTooLarge, Reason: "sample of 9 MiB"},
		{Kind: quarantine.KindSample, Producer: "p", Code: quarantine.CodeSchema, Reason: "conflicts with its schema", Payload: pa.AppendSamples(nil, []pa.Sample{quarantineSample(2)})},
		{Kind: quarantine.KindSample, Producer: "p", Code: quarantine.CodeTooLarge, Reason: "sample of 10 MiB"},
		{Kind: quarantine.KindSample, Producer: "p", Code: quarantine.CodeInvalid, Reason: "bad name", Payload: pa.AppendSamples(nil, []pa.Sample{bad})},
	}); err != nil {
		t.Fatal(err)
	}
}

// TestQuarantineDeleteAndOfflineReplayOnADataDir: entries that never replay
// (too_large without data, permanently invalid) leave only by delete, by
// code or by id; offline replay keeps a schema-conflict entry (no registry
// to check it against) unless --force.
func TestQuarantineDeleteAndOfflineReplayOnADataDir(t *testing.T) {
	dir := t.TempDir()
	db, err := state.Open(filepath.Join(dir, "state"), nil)
	if err != nil {
		t.Fatal(err)
	}
	q, err := quarantine.Open(db, quarantine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	fillQuarantine(t, q)
	q.Close()
	db.Close()

	code, out, errs := runCmd("quarantine", "replay", "--data-dir", dir)
	if code != 0 || !strings.Contains(out, "replayed 0 entries") || !strings.Contains(out, "1 schema conflicts kept") {
		t.Fatalf("offline replay: %d\n%s%s", code, out, errs)
	}
	code, out, errs = runCmd("quarantine", "delete", "--code", "too_large", "--data-dir", dir)
	if code != 0 || !strings.Contains(out, "deleted 2 entries") {
		t.Fatalf("delete --code: %d\n%s%s", code, out, errs)
	}
	code, out, errs = runCmd("quarantine", "delete", "4", "99", "--data-dir", dir)
	if code != 0 || !strings.Contains(out, "deleted 1 entries; not found: [99]") {
		t.Fatalf("delete ids: %d\n%s%s", code, out, errs)
	}
	code, out, _ = runCmd("quarantine", "list", "--data-dir", dir)
	if code != 0 || !strings.Contains(out, "# 1 entries") || !strings.Contains(out, "2\tsample\t") {
		t.Fatalf("list after delete: %d\n%s", code, out)
	}
	code, out, _ = runCmd("quarantine", "replay", "--force", "--data-dir", dir)
	if code != 0 || !strings.Contains(out, "replayed 1 entries (1 samples)") {
		t.Fatalf("replay --force: %d\n%s", code, out)
	}
	for _, args := range [][]string{{"quarantine", "delete", "--data-dir", dir}, {"quarantine", "delete", "1", "--code", "schema", "--data-dir", dir},
		{"quarantine", "delete", "x", "--data-dir", dir}} {
		if code, _, _ := runCmd(args...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
}

// TestQuarantineDeleteThroughTheAdminAPI: a running collector's entries are
// deleted over real HTTP (DELETE /v1/quarantine/:id), by id and by code, a
// full store gets room again, and a remote client is refused.
func TestQuarantineDeleteThroughTheAdminAPI(t *testing.T) {
	c, err := collector.Open(collector.Options{DataDir: t.TempDir(), QuarantineBudgetBytes: 312, Forwarder: forwarder.Options{Addr: "127.0.0.1:1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fillQuarantine(t, c.Quarantine())
	if !c.Quarantine().Stats().Full {
		t.Fatalf("quarantine %+v: the test wants it full", c.Quarantine().Stats())
	}
	h := c.AdminHandler(collector.AdminOptions{})
	srv := httptest.NewServer(h)
	defer srv.Close()

	code, out, errs := runCmd("quarantine", "delete", "--code", "too_large", "--admin", srv.URL)
	if code != 0 || !strings.Contains(out, "deleted 2 entries") {
		t.Fatalf("delete --code: %d\n%s%s", code, out, errs)
	}
	code, out, errs = runCmd("quarantine", "delete", "2", "99", "--admin", srv.URL)
	if code != 0 || !strings.Contains(out, "deleted 1 entries; not found: [99]") {
		t.Fatalf("delete ids: %d\n%s%s", code, out, errs)
	}
	if st := c.Quarantine().Stats(); st.Full || st.Entries != 1 {
		t.Fatalf("quarantine after delete: %+v", st)
	}
	req := httptest.NewRequest(http.MethodDelete, "/v1/quarantine/4", nil)
	req.RemoteAddr = "192.0.2.1:1234"
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusForbidden {
		t.Fatalf("remote delete: %d", rec.Code)
	}
	if _, err := c.Quarantine().Get(4); err != nil {
		t.Fatalf("entry 4 after a refused remote delete: %v", err)
	}
}
