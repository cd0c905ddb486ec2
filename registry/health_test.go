package registry

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func getHealth(t *testing.T, url string) (int, Readiness) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r Readiness
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, r
}

// TestHealthyAndReady over HTTP: /-/healthy is 200; /-/ready is 200 with
// the store open, 503 naming the store while its writes fail, and 200
// again after a write succeeds.
func TestHealthyAndReady(t *testing.T) {
	r, db := openTest(t, t.TempDir(), Options{})
	defer db.Close()
	hs := httptest.NewServer(r.Handler(nil))
	defer hs.Close()
	if code, _ := getHealth(t, hs.URL+"/-/healthy"); code != http.StatusOK {
		t.Fatalf("/-/healthy: %d", code)
	}
	if code, rd := getHealth(t, hs.URL+"/-/ready"); code != http.StatusOK || !rd.Ready {
		t.Fatalf("/-/ready of a fresh registry: %d %+v", code, rd)
	}
	broken := errors.New("no space left on device")
	r.failWrites.Store(&broken)
	if _, err := r.RegisterProducer(prod(1)); err == nil {
		t.Fatal("registration succeeded with failing writes")
	}
	if code, rd := getHealth(t, hs.URL+"/-/ready"); code != http.StatusServiceUnavailable || rd.Ready || len(rd.Reasons) != 1 || !strings.Contains(rd.Reasons[0], "no space left") {
		t.Fatalf("/-/ready with failing writes: %d %+v", code, rd)
	}
	if code, _ := getHealth(t, hs.URL+"/-/healthy"); code != http.StatusOK {
		t.Fatalf("/-/healthy with failing writes: %d", code)
	}
	r.failWrites.Store(nil)
	mustRegisterProducer(t, r, prod(1))
	if code, rd := getHealth(t, hs.URL+"/-/ready"); code != http.StatusOK || !rd.Ready {
		t.Fatalf("/-/ready after a good write: %d %+v", code, rd)
	}
}
