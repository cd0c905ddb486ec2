package collector_test

import (
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// downClickHouse starts a private ClickHouse and stops it again, so that a
// collector pointed at its address finds ClickHouse down until the test
// calls the returned restart. The server is stopped at the end of the test.
func downClickHouse(t *testing.T) (chAddr string, restart func()) {
	t.Helper()
	script, _ := filepath.Abs("../scripts/clickhouse.sh")
	chdir := t.TempDir()
	out, err := exec.Command(script, "start", chdir).CombinedOutput()
	if err != nil {
		t.Fatalf("starting a private ClickHouse: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command(script, "stop", chdir).Run() })
	chAddr = strings.TrimSpace(strings.TrimPrefix(string(out), "HOLDFAST_CLICKHOUSE="))
	if out, err := exec.Command(script, "stop", chdir).CombinedOutput(); err != nil {
		t.Fatalf("stopping it: %v\n%s", err, out)
	}
	return chAddr, func() {
		t.Helper()
		if out, err := exec.Command(script, "start", chdir).CombinedOutput(); err != nil {
			t.Fatalf("restarting ClickHouse: %v\n%s", err, out)
		}
	}
}

// expectHeldThenDelivered checks a collector that has stopped acknowledging
// (why: "under backpressure", "on a full disk") while ClickHouse is down:
// /healthz says 503 and the producer at addr, once it has generated all
// total samples, still holds some and has dropped none. Then it restarts
// ClickHouse and checks that every sample is released and arrives in db.
func expectHeldThenDelivered(t *testing.T, why, admin, addr string, total uint64, restart func(), chAddr, db string) {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/healthz")
	if err != nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("healthz %s: %v %v", why, resp, err)
	}
	resp.Body.Close()
	waitFor(t, time.Minute, "the producer to finish generating", func() (bool, string) {
		st, err := producerStats(addr)
		return err == nil && st.Produced == total, fmt.Sprintf("%+v", st.BufferStats)
	})
	st, err := producerStats(addr)
	if err != nil || st.Pending == 0 || st.Dropped != 0 || st.Released == total {
		t.Fatalf("producer %s: %+v %v (it must keep its data)", why, st.BufferStats, err)
	}
	restart()
	waitReleased(t, addr, total, 3*time.Minute)
	flush(t, admin)
	ch := newClickHouse(t, chAddr)
	ch.expect(db, total)
}
