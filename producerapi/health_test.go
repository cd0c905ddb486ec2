package producerapi_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	pa "github.com/holdfast/holdfast/producerapi"
)

// TestHealthEndpoints over HTTP: /-/healthy and /-/ready answer 200 without
// the bearer token (probes carry none) while /v1 routes still demand it.
func TestHealthEndpoints(t *testing.T) {
	srv, err := pa.NewServer(pa.ServerOptions{ID: "p", AuthToken: "secret"})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	for path, want := range map[string]string{"/-/healthy": `"healthy":true`, "/-/ready": `"ready":true`} {
		resp, err := http.Get(hs.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
			t.Errorf("%s: %d %s", path, resp.StatusCode, body)
		}
	}
	resp, err := http.Get(hs.URL + "/v1/stats")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("/v1/stats without the token: %d", resp.StatusCode)
	}
}
