package collector_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/holdfast/holdfast/registry"
)

func registryProducer(t *testing.T, addr, id string) (registry.Producer, error) {
	var p registry.Producer
	resp, err := http.Get("http://" + addr + "/v1/producers/" + id)
	if err != nil {
		return p, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return p, fmt.Errorf("status %d", resp.StatusCode)
	}
	return p, json.NewDecoder(resp.Body).Decode(&p)
}

// TestCollectorDeathReassigns: two collectors, producers registered through
// the registry; one collector is killed. Within two lease periods its
// producers are collected by the other, which receives what they held for
// the dead one; what the dead one had acknowledged is in its WAL and is
// delivered when its data directory is drained. Nothing is lost.
func TestCollectorDeathReassigns(t *testing.T) {
	ch := newClickHouse(t, "")
	db := ch.database("death")
	regAddr := freeAddr(t)
	const lease = 2 * time.Second
	startProc(t, "registry", "registry", "--listen", regAddr, "--data-dir", t.TempDir(), "--producer-lease", lease.String(), "--collector-lease", lease.String())
	regURL := "http://" + regAddr
	dirA, dirB := t.TempDir(), t.TempDir()
	adminA, adminB := freeAddr(t), freeAddr(t)
	a := startProc(t, "collector-a", collectorArgs(dirA, adminA, ch.addr, db, nil, "--id", "col-a", "--registry", regURL, "--refresh", "300ms")...)
	startProc(t, "collector-b", collectorArgs(dirB, adminB, ch.addr, db, nil, "--id", "col-b", "--registry", regURL, "--refresh", "300ms")...)
	waitUp(t, adminA)
	waitUp(t, adminB)
	// Both must hold a lease before the producers register: assignments are
	// sticky, so producers registered while only b was live all went to b
	// and a never got one (the flake: a started before the registry
	// listened, b registered first, the 20 s wait below ran out).
	waitFor(t, 30*time.Second, "both collectors registered", func() (bool, string) {
		var cs []registry.CollectorInfo
		if err := getJSON(regURL+"/v1/collectors", &cs); err != nil {
			return false, err.Error()
		}
		live := 0
		for _, c := range cs {
			if c.Live {
				live++
			}
		}
		return live == 2, fmt.Sprintf("%+v", cs)
	})
	const total = 40_000
	var paddrs []string
	for i := 0; i < 4; i++ {
		p := freeAddr(t)
		startProc(t, fmt.Sprintf("producer-%d", i), producerArgs(p, 100, "250ms", total, "--registry", regURL, "--id", fmt.Sprintf("prod-%d", i))...)
		paddrs = append(paddrs, p)
	}
	// Wait until a has producers and has collected something.
	var onA []string
	waitFor(t, 20*time.Second, "collector a collecting", func() (bool, string) {
		onA = nil
		for i := range paddrs {
			if p, err := registryProducer(t, regAddr, fmt.Sprintf("prod-%d", i)); err == nil && len(p.Collectors) == 1 && p.Collectors[0] == "col-a" {
				onA = append(onA, p.ID)
			}
		}
		st, err := collectorStatus(adminA)
		var n uint64
		for _, p := range st.Producers {
			n += p.Samples
		}
		return err == nil && len(onA) > 0 && n > 0, fmt.Sprint(onA, n, err)
	})
	a.kill()
	killed := time.Now()
	waitFor(t, 2*lease+3*time.Second, "a's producers to move to b", func() (bool, string) {
		for _, id := range onA {
			p, err := registryProducer(t, regAddr, id)
			if err != nil || len(p.Collectors) != 1 || p.Collectors[0] != "col-b" {
				return false, fmt.Sprintf("%s: %v %v", id, p.Collectors, err)
			}
		}
		return true, ""
	})
	moved := time.Since(killed)
	for _, p := range paddrs {
		waitReleased(t, p, total, 2*time.Minute)
	}
	flush(t, adminB)
	// What a acknowledged before it died is in its WAL: drain it.
	out, err := exec.Command(holdfastBin, "forward", "--data-dir", dirA, "--clickhouse", ch.addr, "--database", db, "--exit-when-drained").CombinedOutput()
	if err != nil {
		t.Fatalf("draining the dead collector's WAL: %v\n%s", err, out)
	}
	ch.expect(db, 4*total)
	// The collectors reported the schemas they saw.
	var listing struct{ Items []map[string]any }
	if resp, err := http.Get(regURL + "/v1/timeseries-schema"); err == nil {
		json.NewDecoder(resp.Body).Decode(&listing)
		resp.Body.Close()
	}
	schemas := listing.Items
	if len(schemas) != 8 || schemas[0]["timeseries_name"] != "virtual_machine:cpu_busy" {
		t.Fatalf("registry lists %d schemas: %v", len(schemas), schemas)
	}
	t.Logf("producers of the dead collector reassigned %v after the kill (lease %v); %d samples, each once", moved.Round(100*time.Millisecond), lease, 4*total)
}

// TestRegistryOutage: the registry is killed; the collector keeps collecting
// from every producer it had, through a SIGKILL and restart of its own (from
// its cached assignment); the registry comes back and the set converges;
// nothing is lost.
func TestRegistryOutage(t *testing.T) {
	ch := newClickHouse(t, "")
	db := ch.database("outage")
	regAddr, regDir := freeAddr(t), t.TempDir()
	regArgs := []string{"registry", "--listen", regAddr, "--data-dir", regDir, "--producer-lease", "20s", "--collector-lease", "20s"}
	reg := startProc(t, "registry", regArgs...)
	regURL := "http://" + regAddr
	dataDir, admin := t.TempDir(), freeAddr(t)
	cargs := collectorArgs(dataDir, admin, ch.addr, db, nil, "--id", "col", "--registry", regURL, "--refresh", "300ms")
	c := startProc(t, "collector", cargs...)
	const total = 60_000
	var paddrs []string
	for i := 0; i < 2; i++ {
		p := freeAddr(t)
		startProc(t, fmt.Sprintf("producer-%d", i), producerArgs(p, 100, "200ms", total, "--registry", regURL, "--id", fmt.Sprintf("prod-%d", i))...)
		paddrs = append(paddrs, p)
	}
	waitFor(t, 20*time.Second, "both producers assigned", func() (bool, string) {
		st, err := collectorStatus(admin)
		return err == nil && len(st.Producers) == 2, fmt.Sprint(len(st.Producers), err)
	})
	reg.kill() // the registry refuses connections from now on
	time.Sleep(time.Second)
	c.kill()
	startProc(t, "collector-restarted", cargs...)
	waitFor(t, 20*time.Second, "the restarted collector collecting from its cache", func() (bool, string) {
		st, err := collectorStatus(admin)
		if err != nil || len(st.Producers) != 2 || st.Registry == nil || st.Registry.LastRefreshError == "" {
			return false, fmt.Sprintf("%+v %v", st.Registry, err)
		}
		for _, p := range st.Producers {
			if p.Pages == 0 {
				return false, "producer " + p.ID + " not collected yet"
			}
		}
		return true, ""
	})
	time.Sleep(2 * time.Second)
	startProc(t, "registry-restarted", regArgs...)
	for _, p := range paddrs {
		waitReleased(t, p, total, 2*time.Minute)
	}
	waitFor(t, 20*time.Second, "the assignment to converge", func() (bool, string) {
		st, err := collectorStatus(admin)
		return err == nil && st.Registry != nil && st.Registry.LastRefreshError == "" && st.Registry.Assigned == 2 &&
			strings.Contains(fmt.Sprint(st.Producers), "prod-0"), fmt.Sprintf("%+v", st.Registry)
	})
	flush(t, admin)
	ch.expect(db, 2*total)
}
