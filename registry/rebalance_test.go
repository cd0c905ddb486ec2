package registry

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// loads is each collector's producer count, from the listings.
func loads(t *testing.T, r *Registry, cs ...string) []int {
	t.Helper()
	var out []int
	for _, c := range cs {
		out = append(out, len(listAll(t, r, c, 100)))
	}
	return out
}

// TestRebalanceBoundedAndEven: two collectors hold 15 producers each; a
// third joins. Called every (simulated) second, the rebalancer moves one
// producer per call and at most RebalancePerMinute (3) in any minute, only
// from the loaded collectors to the new one, until the load is 10/10/10:
// exactly the 10 moves needed, none after. A renewal answers a moved
// producer with its new collector. Without a rebalancer (0) nothing moves:
// the sticky assignment left the new collector empty for good.
func TestRebalanceBoundedAndEven(t *testing.T) {
	clk := &clock{now: time.Unix(1_700_000_000, 0)}
	reg := prometheus.NewRegistry()
	r, db := openTest(t, t.TempDir(), Options{Now: clk.Now, CollectorLease: 10 * time.Second, ProducerLease: time.Hour,
		RebalancePerMinute: 3, Registerer: reg})
	defer db.Close()
	renew := func(cs ...string) {
		for _, c := range cs {
			if _, err := r.RegisterCollector(CollectorRegistration{ID: c}); err != nil {
				t.Fatal(err)
			}
		}
	}
	renew("c1", "c2")
	for i := 0; i < 30; i++ {
		mustRegisterProducer(t, r, prod(i))
	}
	if got := loads(t, r, "c1", "c2"); got[0] != 15 || got[1] != 15 {
		t.Fatalf("before: %v", got)
	}
	if moves, err := r.Rebalance(); err != nil || len(moves) != 0 {
		t.Fatalf("an even fleet moved %v (%v)", moves, err)
	}
	renew("c3")
	var times []time.Time
	var all []Move
	for step := 0; step < 600 && len(all) < 11; step++ {
		clk.advance(time.Second)
		if step%3 == 0 {
			renew("c1", "c2", "c3")
		}
		moves, err := r.Rebalance()
		if err != nil {
			t.Fatal(err)
		}
		if len(moves) > 1 {
			t.Fatalf("one call moved %d (budget per call ceil(3/60) = 1)", len(moves))
		}
		for _, m := range moves {
			if m.To != "c3" || m.From == "c3" {
				t.Fatalf("move %+v: not toward the empty collector", m)
			}
			times = append(times, clk.Now())
		}
		all = append(all, moves...)
		if step > 300 {
			break
		}
	}
	for i := range times {
		n := 0
		for _, u := range times[i:] {
			if u.Sub(times[i]) < time.Minute {
				n++
			}
		}
		if n > 3 {
			t.Fatalf("%d moves within a minute from %v (bound 3): %v", n, times[i], times)
		}
	}
	if got := loads(t, r, "c1", "c2", "c3"); len(all) != 10 || got[0] != 10 || got[1] != 10 || got[2] != 10 {
		t.Fatalf("after %d moves the load is %v, want 10 moves and 10/10/10", len(all), got)
	}
	var m dto.Metric
	r.rb.moves.Write(&m)
	if n := m.GetCounter().GetValue(); n != 10 {
		t.Fatalf("holdfast_registry_rebalance_moves_total %v", n)
	}
	a := mustRegisterProducer(t, r, ProducerRegistration{ID: all[0].Producer, Address: fmt.Sprintf("http://127.0.0.1:%d", 20000+atoi(all[0].Producer[1:])), Interval: "10s", Kind: "demo"})
	if len(a.Collectors) != 1 || a.Collectors[0].ID != "c3" {
		t.Fatalf("moved producer %s renews to %+v", all[0].Producer, a.Collectors)
	}

	// Off: a new collector stays empty.
	r2, db2 := openTest(t, t.TempDir(), Options{Now: clk.Now, CollectorLease: 10 * time.Second, ProducerLease: time.Hour})
	defer db2.Close()
	r2.RegisterCollector(CollectorRegistration{ID: "c1"})
	for i := 0; i < 10; i++ {
		mustRegisterProducer(t, r2, prod(i))
	}
	r2.RegisterCollector(CollectorRegistration{ID: "c2"})
	if moves, _ := r2.Rebalance(); len(moves) != 0 || loads(t, r2, "c2")[0] != 0 {
		t.Fatalf("rebalancing off moved %v", moves)
	}
}

func atoi(s string) int {
	n := 0
	fmt.Sscan(s, &n)
	return n
}

// TestRebalanceTargetsAndFailedWrite: after a restart, a stored collector
// that has not renewed with this process is given no producers (it has a
// lease of grace but may be gone); a failed write moves nothing, in memory
// either.
func TestRebalanceTargetsAndFailedWrite(t *testing.T) {
	clk := &clock{now: time.Unix(1_700_000_000, 0)}
	dir := t.TempDir()
	opts := Options{Now: clk.Now, CollectorLease: 10 * time.Second, ProducerLease: time.Hour, RebalancePerMinute: 600}
	r, db := openTest(t, dir, opts)
	r.RegisterCollector(CollectorRegistration{ID: "c1"})
	for i := 0; i < 10; i++ {
		mustRegisterProducer(t, r, prod(i))
	}
	r.RegisterCollector(CollectorRegistration{ID: "c2"}) // empty, then the registry restarts
	db.Close()
	r, db = openTest(t, dir, opts)
	defer db.Close()
	clk.advance(time.Second)
	r.RegisterCollector(CollectorRegistration{ID: "c1"})
	if moves, err := r.Rebalance(); err != nil || len(moves) != 0 {
		t.Fatalf("moved %v to a collector not heard from since the restart (%v)", moves, err)
	}
	r.RegisterCollector(CollectorRegistration{ID: "c2"})
	broken := errors.New("disk full")
	r.failWrites.Store(&broken)
	if moves, err := r.Rebalance(); err == nil || len(moves) != 0 {
		t.Fatalf("with writes failing: %v, %v", moves, err)
	}
	if got := loads(t, r, "c1", "c2"); got[0] != 10 || got[1] != 0 || r.load["c1"] != 10 || r.load["c2"] != 0 {
		t.Fatalf("a failed rebalance changed the assignment: listings %v, load %v", got, r.load)
	}
	for i := 0; i < 10; i++ {
		if p, _ := r.Producer(prod(i).ID); len(p.Collectors) != 1 || p.Collectors[0] != "c1" {
			t.Fatalf("%s in memory: %v", p.ID, p.Collectors)
		}
	}
	r.failWrites.Store(nil)
	moves, err := r.Rebalance()
	if err != nil || len(moves) != 5 {
		t.Fatalf("after the disk recovered: %v %v", moves, err)
	}
	if got := loads(t, r, "c1", "c2"); got[0] != 5 || got[1] != 5 {
		t.Fatalf("load %v", got)
	}
}

// TestRebalanceReplicas: with two collectors per producer, a third
// collector joining takes over one of the two collectors of some
// producers: loads end within one of each other and every producer keeps
// two distinct live collectors throughout.
func TestRebalanceReplicas(t *testing.T) {
	clk := &clock{now: time.Unix(1_700_000_000, 0)}
	r, db := openTest(t, t.TempDir(), Options{Now: clk.Now, Replicas: 2, CollectorLease: time.Hour, ProducerLease: time.Hour, RebalancePerMinute: 600})
	defer db.Close()
	r.RegisterCollector(CollectorRegistration{ID: "c1"})
	r.RegisterCollector(CollectorRegistration{ID: "c2"})
	for i := 0; i < 10; i++ {
		mustRegisterProducer(t, r, prod(i))
	}
	r.RegisterCollector(CollectorRegistration{ID: "c3"})
	moved := 0
	for step := 0; step < 10; step++ {
		clk.advance(time.Second)
		moves, err := r.Rebalance()
		if err != nil {
			t.Fatal(err)
		}
		moved += len(moves)
		for i := 0; i < 10; i++ {
			p, _ := r.Producer(prod(i).ID)
			if len(p.Collectors) != 2 || p.Collectors[0] == p.Collectors[1] {
				t.Fatalf("%s has collectors %v", p.ID, p.Collectors)
			}
		}
	}
	if got := loads(t, r, "c1", "c2", "c3"); moved != 6 || got[0]+got[1]+got[2] != 20 || max(got[0], got[1], got[2])-min(got[0], got[1], got[2]) > 1 {
		t.Fatalf("after %d moves: %v", moved, got)
	}
}
