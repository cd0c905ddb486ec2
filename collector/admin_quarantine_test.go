package collector_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/holdfast/holdfast/collector"
	"github.com/holdfast/holdfast/forwarder"
	pa "github.com/holdfast/holdfast/producerapi"
	"github.com/holdfast/holdfast/quarantine"
)

// TestQuarantineAdminAPI: pagination with after/next, one entry with its
// samples, 404 for an unknown id, and replay refused to remote clients.
func TestQuarantineAdminAPI(t *testing.T) {
	c, err := collector.Open(collector.Options{DataDir: t.TempDir(), Forwarder: forwarder.Options{Addr: "127.0.0.1:1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := testSample(1, 1)
	var es []quarantine.Entry
	for i := 0; i < 5; i++ {
		es = append(es, quarantine.Entry{Kind: quarantine.KindSample, Producer: "p", Code: quarantine.CodeInvalid, Reason: "r", Payload: pa.AppendSamples(nil, []pa.Sample{s})})
	}
	if _, err := c.Quarantine().Put(es); err != nil {
		t.Fatal(err)
	}
	h := c.AdminHandler(collector.AdminOptions{})
	get := func(path string, v any) int {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if v != nil {
			json.Unmarshal(rec.Body.Bytes(), v)
		}
		return rec.Code
	}
	var ids []uint64
	after := "0"
	for pages := 0; ; pages++ {
		var page collector.QuarantinePage
		if code := get("/v1/quarantine?limit=2&after="+after, &page); code != 200 || pages > 3 {
			t.Fatalf("page %d: %d", pages, code)
		}
		for _, e := range page.Entries {
			ids = append(ids, e.ID)
			if len(e.Samples) != 0 {
				t.Fatal("samples without samples=1")
			}
		}
		if page.Next == 0 {
			break
		}
		after = strconv.FormatUint(page.Next, 10)
	}
	if len(ids) != 5 || ids[0] != 1 || ids[4] != 5 {
		t.Fatalf("ids %v", ids)
	}
	var v quarantine.View
	if code := get("/v1/quarantine/3", &v); code != 200 || v.ID != 3 || len(v.Samples) != 1 {
		t.Fatalf("%d %+v", code, v)
	}
	if code := get("/v1/quarantine/99", nil); code != 404 {
		t.Fatalf("unknown id: %d", code)
	}
	if code := get("/v1/quarantine?limit=0", nil); code != 400 {
		t.Fatalf("limit 0: %d", code)
	}
	req := httptest.NewRequest(http.MethodPost, "/v1/quarantine/replay", nil)
	req.RemoteAddr = "192.0.2.1:1234"
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusForbidden || c.Quarantine().Stats().Entries != 5 {
		t.Fatalf("remote replay: %d, %d entries left", rec.Code, c.Quarantine().Stats().Entries)
	}
}
