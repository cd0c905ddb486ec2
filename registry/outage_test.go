package registry_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/holdfast/holdfast/collector"
	"github.com/holdfast/holdfast/forwarder"
	"github.com/holdfast/holdfast/internal/sampletest"
	"github.com/holdfast/holdfast/internal/state"
	pa "github.com/holdfast/holdfast/producerapi"
	"github.com/holdfast/holdfast/registry"
)

var quiet = slog.New(slog.DiscardHandler)

// regProc is a real registry: Pebble state in a directory, HTTP on an
// address, the lease ticker running; stop and start it on the same
// directory and address as an operator would restart it.
type regProc struct {
	t      *testing.T
	dir    string
	addr   string
	opts   registry.Options
	r      *registry.Registry
	cancel context.CancelFunc
	done   chan struct{}
	close  func()
}

func (p *regProc) start() {
	p.t.Helper()
	db, err := state.Open(filepath.Join(p.dir, "state"), quiet)
	if err != nil {
		p.t.Fatal(err)
	}
	if p.r, err = registry.Open(db, p.opts); err != nil {
		p.t.Fatal(err)
	}
	var ln net.Listener
	for i := 0; ; i++ { // the port of the previous run may take a moment to free
		if ln, err = net.Listen("tcp", p.addr); err == nil || i > 100 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		p.t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel, p.done = cancel, make(chan struct{})
	go func() { defer close(p.done); p.r.Serve(ctx, ln, quiet) }()
	p.close = func() { db.Close() }
}

func (p *regProc) stop() {
	p.cancel()
	<-p.done
	p.close()
}

// TestRegistryDownLongerThanALease reproduces issue 8's fleet outage: 50
// producers on 3 collectors, all through the registry; the registry is down
// for several leases and comes back on the same Pebble directory. Then:
//   - nothing is reassigned (today's registry expired everyone at its first
//     tick and reshuffled the fleet);
//   - no producer keeps a cursor for a collector it is not assigned to
//     (today a late request from the old collector recreated the cursor the
//     producer had just removed, and 10-13 of 50 producers held samples for
//     it forever);
//   - once generation stops, every producer's pending drains to 0 (today it
//     stuck at ~20,000-25,000).
func TestRegistryDownLongerThanALease(t *testing.T) {
	if testing.Short() {
		t.Skip("runs 50 producers and 3 collectors for ~30 s")
	}
	const lease = 4 * time.Second // renewals every 1.3 s: margin for a loaded machine
	f := startFleet(t, lease, 200*time.Millisecond)
	before := f.assignment()

	f.reg.stop()
	time.Sleep(2 * lease) // the outage: longer than a lease
	f.reg.start()

	// Give everyone a few leases after the restart to renew and settle.
	waitUntil(t, 30*time.Second, "producers and collectors renewed", func() (bool, string) {
		for _, s := range f.producers {
			p, err := f.reg.r.Producer(s.Stats().Producer)
			if err != nil {
				return false, err.Error()
			}
			if !p.LeaseExpires.After(time.Now().Add(lease / 2)) {
				return false, p.ID + " not renewed yet"
			}
		}
		return true, ""
	})
	time.Sleep(lease)
	after := f.assignment()
	moved := 0
	for id, cs := range before {
		if !slices.Equal(cs, after[id]) {
			moved++
			t.Errorf("%s moved from %v to %v", id, cs, after[id])
		}
	}
	if moved > 0 {
		t.Fatalf("%d of 50 producers were reassigned by a registry outage of %v (lease %v)", moved, 2*lease, lease)
	}
	f.stopGen()
	f.waitDrained()
}

// TestReshuffleLeavesNoStrandedCursor: every lease in the registry runs out
// at once while all collectors are alive and collecting (what a registry
// without the restart grace did after an outage), so producers are
// reassigned while their old collectors still poll them from their cached
// assignment. A late request from an old collector must not recreate the
// cursor its producer just removed: no producer may keep a cursor for a
// collector it is not assigned to, and every producer's pending drains to 0
// (issue 8: 10-13 of 50 producers held samples for their old collector
// forever; pending stuck at ~20,000-25,000).
func TestReshuffleLeavesNoStrandedCursor(t *testing.T) {
	if testing.Short() {
		t.Skip("runs 50 producers and 3 collectors for ~20 s")
	}
	const lease = 3 * time.Second
	// Collectors refresh their assignment more slowly than producers renew
	// theirs (as with the defaults, 15 s and 10 s): old collectors keep
	// polling producers that have already moved.
	f := startFleet(t, lease, 2*lease)
	before := f.assignment()
	registry.ExpireEveryLease(f.reg.r)
	waitUntil(t, 30*time.Second, "the fleet to be reassigned", func() (bool, string) {
		after := f.assignment()
		for _, s := range f.producers {
			st := s.Stats()
			if len(st.Assigned) != 1 {
				return false, fmt.Sprintf("%s: assigned %v", st.Producer, st.Assigned)
			}
		}
		moved := 0
		for id, cs := range before {
			if !slices.Equal(cs, after[id]) {
				moved++
			}
		}
		return moved > 0, "no producer moved yet"
	})
	time.Sleep(3 * lease) // late requests from old collectors arrive; then they refresh
	f.stopGen()
	f.waitDrained()
}

// fleet is 50 in-process producers and 3 collectors (no ClickHouse:
// collecting needs only the WAL) around a real registry.
type fleet struct {
	t         *testing.T
	reg       *regProc
	producers []*pa.Server
	stopGen   context.CancelFunc
}

func startFleet(t *testing.T, lease, refresh time.Duration) *fleet {
	reg := &regProc{t: t, dir: t.TempDir(), addr: "127.0.0.1:0",
		opts: registry.Options{ProducerLease: lease, CollectorLease: lease}}
	reg.start()
	regURL := "http://" + reg.addr
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		reg.stop()
	})
	go1 := func(f func()) { wg.Add(1); go func() { defer wg.Done(); f() }() }
	for _, id := range []string{"col-0", "col-1", "col-2"} {
		c, err := collector.Open(collector.Options{DataDir: t.TempDir(), CollectorID: id, RegistryURL: regURL,
			RefreshInterval: refresh, RequestTimeout: 2 * time.Second, BackoffMax: 500 * time.Millisecond,
			Forwarder:  forwarder.Options{Addr: "127.0.0.1:1", Database: "none"},
			Registerer: prometheus.NewRegistry(), Logger: quiet, DrainTimeout: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		go1(func() { c.Run(ctx); c.Close() })
	}
	genCtx, stopGen := context.WithCancel(ctx)
	f := &fleet{t: t, reg: reg, stopGen: stopGen}
	for i := 0; i < 50; i++ {
		s, err := pa.NewServer(pa.ServerOptions{ID: fmt.Sprintf("prod-%02d", i), MaxSamples: 50_000, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		f.producers = append(f.producers, s)
		go1(func() { s.Serve(ctx, ln) })
		go1(func() {
			s.RunRegistration(ctx, pa.RegistrationOptions{RegistryURL: regURL, Address: "http://" + ln.Addr().String(), Interval: 200 * time.Millisecond})
		})
		go1(func() {
			fl := sampletest.NewFleet(10)
			for ts := int64(0); genCtx.Err() == nil; ts += 20 {
				s.Add(fl.Append(nil, 20, ts))
				select {
				case <-genCtx.Done():
				case <-time.After(100 * time.Millisecond):
				}
			}
		})
	}
	waitUntil(t, 30*time.Second, "every producer assigned and collected", func() (bool, string) {
		for _, s := range f.producers {
			st := s.Stats()
			if len(st.Assigned) != 1 || st.Released == 0 {
				return false, fmt.Sprintf("%s: assigned %v, released %d", st.Producer, st.Assigned, st.Released)
			}
		}
		return true, ""
	})
	return f
}

// assignment is each producer's collectors as the producer knows them.
func (f *fleet) assignment() map[string][]string {
	out := map[string][]string{}
	for _, s := range f.producers {
		st := s.Stats()
		out[st.Producer] = st.Assigned
	}
	return out
}

// waitDrained waits until no producer keeps a cursor for a collector it is
// not assigned to and every producer has released everything it produced.
func (f *fleet) waitDrained() {
	f.t.Helper()
	waitUntil(f.t, 60*time.Second, "every producer's pending to drain", func() (bool, string) {
		for _, s := range f.producers {
			st := s.Stats()
			for id := range st.Collectors {
				if !slices.Contains(st.Assigned, id) {
					return false, fmt.Sprintf("%s keeps a cursor for %s, assigned %v", st.Producer, id, st.Assigned)
				}
			}
			if st.Pending != 0 {
				return false, fmt.Sprintf("%s: pending %d (cursors %v)", st.Producer, st.Pending, st.Collectors)
			}
			if st.Produced != st.Released+st.Dropped || st.Dropped != 0 {
				return false, fmt.Sprintf("%s: %+v", st.Producer, st.BufferStats)
			}
		}
		return true, ""
	})
}

func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		ok, msg := cond()
		if ok {
			return
		}
		last = msg
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out after %v waiting for %s: %s", timeout, what, last)
}

// TestTokensReachRegistryAndAssignedProducers: a registry with a write
// token, a producer that requires a bearer token, and a collector given both
// (--registry-token, --producer-token). The producer is assigned through the
// registry and collected: the producer token reaches registry-assigned
// producers too (before issue 8 only static ones got it, and an assigned
// producer with a token answered the collector 401 forever).
func TestTokensReachRegistryAndAssignedProducers(t *testing.T) {
	reg := &regProc{t: t, dir: t.TempDir(), addr: "127.0.0.1:0",
		opts: registry.Options{ProducerLease: 2 * time.Second, CollectorLease: 2 * time.Second, AuthToken: "reg-token"}}
	reg.start()
	regURL := "http://" + reg.addr
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
		reg.stop()
	}()
	go1 := func(f func()) { wg.Add(1); go func() { defer wg.Done(); f() }() }
	c, err := collector.Open(collector.Options{DataDir: t.TempDir(), CollectorID: "col", RegistryURL: regURL,
		RegistryToken: "reg-token", ProducerToken: "prod-token",
		RefreshInterval: 200 * time.Millisecond, RequestTimeout: 2 * time.Second, BackoffMax: 500 * time.Millisecond,
		Forwarder: forwarder.Options{Addr: "127.0.0.1:1", Database: "none"}, Registerer: prometheus.NewRegistry(), Logger: quiet, DrainTimeout: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	go1(func() { c.Run(ctx); c.Close() })
	s, err := pa.NewServer(pa.ServerOptions{ID: "secured", AuthToken: "prod-token", Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go1(func() { s.Serve(ctx, ln) })
	go1(func() {
		s.RunRegistration(ctx, pa.RegistrationOptions{RegistryURL: regURL, Address: "http://" + ln.Addr().String(),
			Interval: 100 * time.Millisecond, Token: "reg-token"})
	})
	s.Add(sampletest.NewFleet(5).Append(nil, 500, 0))
	waitUntil(t, 20*time.Second, "the assigned producer with a token to be collected", func() (bool, string) {
		st := s.Stats()
		return st.Released == 500 && slices.Equal(st.Assigned, []string{"col"}), fmt.Sprintf("%+v assigned %v", st.BufferStats, st.Assigned)
	})
}
