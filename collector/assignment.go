package collector

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/cockroachdb/pebble"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/holdfast/holdfast/internal/backoff"
	pa "github.com/holdfast/holdfast/producerapi"
	"github.com/holdfast/holdfast/registry"
)

// The assignment is the set of producers the registry (or PUT /v1/producers)
// gave this collector. It is cached durably so that a collector that starts
// while the registry is unreachable collects from what it had.
var assignmentKey = []byte("collector/assignment")

func loadAssignment(db *pebble.DB) ([]ProducerConfig, error) {
	v, closer, err := db.Get(assignmentKey)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("collector: reading the cached assignment: %w", err)
	}
	defer closer.Close()
	var ps []ProducerConfig
	if err := json.Unmarshal(v, &ps); err != nil {
		return nil, fmt.Errorf("collector: decoding the cached assignment: %w", err)
	}
	return ps, nil
}

func storeAssignment(db *pebble.DB, ps []ProducerConfig) error {
	v, err := json.Marshal(ps)
	if err != nil {
		return err
	}
	if err := db.Set(assignmentKey, v, pebble.Sync); err != nil {
		return fmt.Errorf("collector: caching the assignment: %w", err)
	}
	return nil
}

// SetAssigned replaces the assigned producers (static ones are kept): it
// stores the new set durably first, then starts loops for new producers,
// stops loops for removed ones and updates changed intervals in place, so an
// unchanged producer keeps its timer (oximeter's issue 7120).
//
// A set above MaxProducers (with the static producers) is refused whole
// with ErrTooManyProducers.
func (c *Collector) SetAssigned(ps []ProducerConfig) error { return c.setAssigned(ps, false) }

// setAssigned is SetAssigned; with capped, a set above MaxProducers is not
// refused but cut to the cap (the registry's assignment: the rest is
// logged, counted and shown, and not started).
func (c *Collector) setAssigned(ps []ProducerConfig, capped bool) error {
	// assignMu first: SetStatic changes c.opts.Producers under it.
	c.assignMu.Lock()
	defer c.assignMu.Unlock()
	norm, ids, err := c.normalizeSet(ps)
	if err != nil {
		return err
	}
	norm, refused := capAssignment(norm, c.opts.Producers, c.opts.MaxProducers)
	if len(refused) > 0 && !capped {
		return fmt.Errorf("%w: %d producers given with %d static ones", errTooMany(c.opts.MaxProducers), len(ps), len(c.opts.Producers))
	}
	for _, id := range refused {
		delete(ids, id)
	}
	if err := storeAssignment(c.state, norm); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, p := range c.mu.producers {
		if p.static || ids[id] {
			continue
		}
		c.stopLocked(p)
		delete(c.mu.producers, id)
		if capped { // the registry's assignment (refreshAssignment)
			c.departLocked(p, DepartedUnassigned)
		} else {
			c.departLocked(p, DepartedRemovedByAPI)
		}
		c.log.Info("producer unassigned", "producer", id)
	}
	for _, cfg := range norm {
		if p, ok := c.mu.producers[cfg.ID]; ok {
			if p.static {
				continue // a static producer wins over an assignment of the same id
			}
			if p.config().URL == cfg.URL {
				p.setInterval(cfg.Interval)
				continue
			}
			c.stopLocked(p) // a new address is a new producer
		}
		p := newProducer(cfg)
		c.mu.producers[cfg.ID] = p
		c.startLocked(p)
		c.log.Info("producer assigned", "producer", cfg.ID, "url", cfg.URL, "interval", cfg.Interval)
	}
	c.m.producers.Set(float64(len(c.mu.producers)))
	c.noteOverCapLocked(refused, "assignment")
	return nil
}

// Assigned returns the assigned (non-static) producers.
func (c *Collector) Assigned() []ProducerConfig {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []ProducerConfig
	for _, p := range c.mu.producers {
		if !p.static {
			out = append(out, p.config())
		}
	}
	slices.SortFunc(out, func(a, b ProducerConfig) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// startLocked starts a producer's loop if Run is running; Run starts the
// loops of producers added before it.
func (c *Collector) startLocked(p *producer) {
	c.m.initProducer(p.cfg.ID)
	c.mm.drainLimited.WithLabelValues(p.cfg.ID)
	if c.q != nil {
		c.q.TrackProducer(p.cfg.ID)
	}
	delete(c.mu.departed, p.cfg.ID) // back
	if c.mu.runCtx == nil || c.mu.runCtx.Err() != nil {
		return
	}
	ctx, cancel := context.WithCancel(c.mu.runCtx)
	p.cancel, p.done = cancel, make(chan struct{})
	c.loops.Add(1)
	go func() {
		defer c.loops.Done()
		defer close(p.done)
		c.runProducer(ctx, p)
	}()
}

func (c *Collector) stopLocked(p *producer) {
	if p.cancel != nil {
		p.cancel()
	}
	// Its series go once its loop has ended (a later increment would bring
	// them back), unless the id is collected again by then (a new address
	// or a re-assignment keeps its series).
	id, done := p.cfg.ID, p.done
	forget := func() {
		c.mu.Lock()
		_, again := c.mu.producers[id]
		if !again {
			c.m.deleteProducer(id)
			c.mm.drainLimited.DeletePartialMatch(prometheus.Labels{"producer": id})
			if c.q != nil {
				c.q.ForgetProducer(id)
			}
			if c.fwd != nil {
				// Its session ended with its loop: a return starts a new
				// one, so the forwarder may let this one's definitions go.
				c.fwd.ProducerLeft(id)
			}
		}
		c.mu.Unlock()
	}
	if done == nil {
		go forget() // never started; c.mu is held here
		return
	}
	go func() { <-done; forget() }()
}

// RegistryStatus is the collector's view of the registry.
type RegistryStatus struct {
	URL              string    `json:"url"`
	LastRegistered   time.Time `json:"last_registered"`
	LastRefresh      time.Time `json:"last_refresh"`
	LastRefreshError string    `json:"last_refresh_error,omitempty"`
	Assigned         int       `json:"assigned"`
}

// runRegistry keeps the collector's lease (renewLease) and refreshes the
// assignment every RefreshInterval. The set changes only when every page of a
// listing succeeded (omicron issue 7124); any error leaves the current set,
// and the cache, as they are.
func (c *Collector) runRegistry(ctx context.Context) {
	client := c.registryClient()
	renewing, tried := make(chan struct{}), make(chan struct{})
	go func() { defer close(renewing); c.renewLease(ctx, client, tried) }()
	defer func() { <-renewing }()
	// The first listing follows the first registration attempt, as a
	// registration may assign this collector producers at once.
	select {
	case <-ctx.Done():
		return
	case <-tried:
	}
	reported := map[string]bool{} // schemas the registry has
	refresh := time.NewTimer(0)
	defer refresh.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-refresh.C:
			c.refreshAssignment(ctx, client)
			reported = c.reportSchemas(ctx, client, reported)
			refresh.Reset(jitter(c.opts.RefreshInterval))
		}
	}
}

// renewLease registers with the registry and renews the lease at a third of
// it until ctx ends. It runs on its own: a listing or a schema report that
// is slow or hangs until its timeout (2×RequestTimeout, then RequestTimeout)
// must not hold a renewal back, or a slow registry, as one just restarted
// with the whole fleet renewing at once, would expire a live collector and
// move its producers. A failed attempt is retried after 100 ms, doubling,
// at most every renewal period, so a collector started before the registry
// listens registers soon after it does. tried is closed after the first
// attempt.
func (c *Collector) renewLease(ctx context.Context, client *registry.Client, tried chan<- struct{}) {
	renewEvery := 5 * time.Second // until the registry tells the lease
	const retryMin = 100 * time.Millisecond
	failures := 0 // consecutive, since the last success
	for first := true; ; first = false {
		rctx, cancel := context.WithTimeout(ctx, c.opts.RequestTimeout)
		lease, err := client.RegisterCollector(rctx, registry.CollectorRegistration{ID: c.id, Address: c.opts.AdvertiseAddr})
		cancel()
		if first {
			close(tried)
		}
		wait := renewEvery
		if err == nil {
			now := time.Now()
			renewEvery = max(100*time.Millisecond, time.Duration(lease.LeaseSeconds*float64(time.Second))/3)
			wait, failures = renewEvery, 0
			c.setRegistry(func(s *RegistryStatus) { s.LastRegistered = now })
		} else {
			if ctx.Err() == nil {
				c.log.Warn("registering with the registry failed; collecting from the current assignment", "err", err)
			}
			wait = backoff.Exp(retryMin, renewEvery, failures)
			failures++
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

func (c *Collector) refreshAssignment(ctx context.Context, client *registry.Client) {
	rctx, cancel := context.WithTimeout(ctx, 2*c.opts.RequestTimeout)
	items, err := client.ListAllAssigned(rctx, c.id, c.opts.RegistryPageSize)
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			c.log.Warn("refreshing the assignment failed; keeping the current set", "err", err)
			c.setRegistry(func(s *RegistryStatus) { s.LastRefreshError = err.Error() })
		}
		return
	}
	ps := make([]ProducerConfig, 0, len(items))
	for _, it := range items {
		d, err := time.ParseDuration(it.Interval)
		if err != nil {
			c.setRegistry(func(s *RegistryStatus) {
				s.LastRefreshError = fmt.Sprintf("producer %s: bad interval %q", it.ID, it.Interval)
			})
			return
		}
		ps = append(ps, ProducerConfig{ID: it.ID, URL: it.Address, Interval: d, AuthToken: c.opts.ProducerToken})
	}
	if err := c.setAssigned(ps, true); err != nil {
		c.log.Error("applying the assignment failed; keeping the current set", "err", err)
		c.setRegistry(func(s *RegistryStatus) { s.LastRefreshError = err.Error() })
		return
	}
	c.setRegistry(func(s *RegistryStatus) { s.LastRefresh, s.LastRefreshError, s.Assigned = time.Now(), "", len(ps) })
}

// reportSchemas sends the registry the timeseries schemas this collector has
// seen and not yet reported (RFD 162: schemas can be listed there).
func (c *Collector) reportSchemas(ctx context.Context, client *registry.Client, reported map[string]bool) map[string]bool {
	var fresh []pa.TimeseriesSchema
	for _, s := range c.schemas.Schemas() {
		if !reported[schemaID(&s)] {
			fresh = append(fresh, s)
		}
	}
	if len(fresh) == 0 {
		return reported
	}
	rctx, cancel := context.WithTimeout(ctx, c.opts.RequestTimeout)
	err := client.ReportSchemas(rctx, fresh)
	cancel()
	var ae *registry.APIError
	switch {
	case errors.As(err, &ae) && ae.Code == http.StatusConflict:
		// Every batch was answered: the registry stored all but the
		// conflicting schemas, and those conflict again whenever sent.
		// Sending the set again would fail the same way forever.
		c.log.Error("the registry refused timeseries schemas that contradict ones it holds; the others were stored, these are not sent again", "err", err)
	case err != nil:
		if ctx.Err() == nil {
			c.log.Warn("reporting timeseries schemas to the registry failed", "err", err)
		}
		return reported
	}
	for _, s := range fresh {
		reported[schemaID(&s)] = true
	}
	return reported
}

// schemaID names a schema version: the registry keeps every version.
func schemaID(s *pa.TimeseriesSchema) string { return fmt.Sprintf("%s\x00%d", s.Name, s.Version) }

func (c *Collector) setRegistry(f func(*RegistryStatus)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f(&c.mu.registry)
}
