package registry

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/holdfast/holdfast/internal/state"
	pa "github.com/holdfast/holdfast/producerapi"
)

// Keys in Pebble:
//
//	registry/producer/<id>                  JSON Producer
//	registry/collector/<id>                 JSON Collector
//	registry/assign/<collector>\x00<producer>  "" (index: a collector's producers, sorted)
//	registry/schema/<timeseries name>\x00<version, 10 digits>  JSON TimeseriesSchema (schemas.go)
const (
	prefixProducer  = "registry/producer/"
	prefixCollector = "registry/collector/"
	prefixAssign    = "registry/assign/"
	prefixSchema    = "registry/schema/"
)

func assignKey(collector, producer string) []byte {
	return []byte(prefixAssign + collector + "\x00" + producer)
}

// Options configure a Registry.
type Options struct {
	Replicas       int           // collectors per producer; default 1
	ProducerLease  time.Duration // default 30 s
	CollectorLease time.Duration // default 30 s
	// AuthToken, if set, must be presented as a bearer token on every write
	// (POST, PATCH, DELETE); reads stay open.
	AuthToken string
	Now       func() time.Time
	// MaxSchemas bounds the timeseries schemas kept; default DefaultMaxSchemas.
	MaxSchemas int
	// RebalancePerMinute bounds the producers the rebalancer moves toward
	// an even load (rebalance.go) in any minute; 0 turns it off.
	RebalancePerMinute int
	// ExpiredRetention keeps an expired producer's last registration
	// listed (GET /v1/producers?state=expired) this long; default
	// DefaultExpiredRetention, negative: not kept. MaxExpired bounds how
	// many are kept (oldest dropped first); default DefaultMaxExpired.
	ExpiredRetention time.Duration
	MaxExpired       int
	// Registerer takes the registry's metrics (nil: none); Gatherer, when
	// set, is served on GET /metrics.
	Registerer prometheus.Registerer
	Gatherer   prometheus.Gatherer
}

func (o Options) withDefaults() Options {
	if o.Replicas <= 0 {
		o.Replicas = 1
	}
	if o.ProducerLease <= 0 {
		o.ProducerLease = 30 * time.Second
	}
	if o.CollectorLease <= 0 {
		o.CollectorLease = 30 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.ExpiredRetention == 0 {
		o.ExpiredRetention = DefaultExpiredRetention
	}
	if o.MaxExpired <= 0 {
		o.MaxExpired = DefaultMaxExpired
	}
	return o
}

// Registry is the registry's state: registrations, leases and assignments,
// kept in memory and written through to Pebble with synced batches before a
// change is acknowledged. It is safe for concurrent use.
type Registry struct {
	opts Options
	db   *pebble.DB
	m    *metrics
	rb   *rebalancer // guarded by mu

	mu         sync.Mutex
	producers  map[string]*Producer
	collectors map[string]*Collector
	load       map[string]int // producers per collector
	schemas    map[schemaKey]pa.TimeseriesSchema
	expired    map[string]*ExpiredProducer // expired.go

	// writeErr is the last failed synced write ("" after a good one):
	// /-/ready says not ready while the store refuses writes.
	writeErr atomic.Pointer[string]
	// failWrites, when set (tests, through FailWrites), fails every
	// commit with its error, as a full or broken disk would.
	failWrites atomic.Pointer[error]
}

// Open loads the registry's state from db.
func Open(db *pebble.DB, opts Options) (*Registry, error) {
	r := &Registry{opts: opts.withDefaults(), db: db, producers: map[string]*Producer{}, collectors: map[string]*Collector{},
		load: map[string]int{}, schemas: map[schemaKey]pa.TimeseriesSchema{}, expired: map[string]*ExpiredProducer{}}
	if err := scan(db, prefixProducer, func(_, v []byte) error {
		var p Producer
		if err := json.Unmarshal(v, &p); err != nil {
			return err
		}
		r.producers[p.ID] = &p
		return nil
	}); err != nil {
		return nil, fmt.Errorf("registry: loading producers: %w", err)
	}
	if err := scan(db, prefixCollector, func(_, v []byte) error {
		var c Collector
		if err := json.Unmarshal(v, &c); err != nil {
			return err
		}
		r.collectors[c.ID] = &c
		return nil
	}); err != nil {
		return nil, fmt.Errorf("registry: loading collectors: %w", err)
	}
	if err := r.loadSchemas(); err != nil {
		return nil, err
	}
	if err := r.loadExpired(); err != nil {
		return nil, fmt.Errorf("registry: loading expired producers: %w", err)
	}
	m, err := newMetrics(opts.Registerer, r)
	if err != nil {
		return nil, fmt.Errorf("registry: metrics: %w", err)
	}
	r.m = m
	if r.rb, err = newRebalancer(r.opts.RebalancePerMinute, opts.Registerer); err != nil {
		return nil, fmt.Errorf("registry: metrics: %w", err)
	}
	for _, p := range r.producers {
		for _, c := range p.Collectors {
			r.load[c]++
		}
	}
	// Leases are measured from this start, not from the stored times: a
	// registry that was down longer than a lease must not expire everyone
	// at its first tick and reshuffle the fleet. Everyone gets one lease
	// from now to renew; whoever is really gone expires after it.
	now := r.opts.Now()
	for _, p := range r.producers {
		p.LeaseExpires = later(p.LeaseExpires, now.Add(r.opts.ProducerLease))
	}
	for _, c := range r.collectors {
		c.LeaseExpires = later(c.LeaseExpires, now.Add(r.opts.CollectorLease))
	}
	return r, nil
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func scan(db *pebble.DB, prefix string, fn func(k, v []byte) error) error {
	lower, upper := state.PrefixBounds([]byte(prefix))
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return err
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		if err := fn(it.Key(), it.Value()); err != nil {
			return err
		}
	}
	return it.Error()
}

// txn collects the changes of one operation; commit writes them with Sync.
type txn struct {
	r *Registry
	b *pebble.Batch
}

func (r *Registry) begin() *txn { return &txn{r: r, b: r.db.NewBatch()} }

func (t *txn) putProducer(p *Producer) {
	v, _ := json.Marshal(p)
	t.b.Set([]byte(prefixProducer+p.ID), v, nil)
}

func (t *txn) putCollector(c *Collector) {
	v, _ := json.Marshal(c)
	t.b.Set([]byte(prefixCollector+c.ID), v, nil)
}

func (t *txn) commit() error {
	defer t.b.Close()
	if t.b.Empty() {
		return nil
	}
	var err error
	if fail := t.r.failWrites.Load(); fail != nil && *fail != nil {
		err = *fail // nothing written, as on a disk that refused it
	} else {
		err = t.b.Commit(pebble.Sync)
	}
	if err != nil {
		err = fmt.Errorf("registry: writing state: %w", err)
		msg := err.Error()
		t.r.writeErr.Store(&msg)
		return err
	}
	t.r.writeErr.Store(nil)
	return nil
}

func (r *Registry) live(c *Collector, now time.Time) bool { return now.Before(c.LeaseExpires) }

// setCollectors changes a producer's assignment in memory and in t.
func (r *Registry) setCollectors(t *txn, p *Producer, cs []string) {
	for _, c := range p.Collectors {
		if !slices.Contains(cs, c) {
			r.load[c]--
			t.b.Delete(assignKey(c, p.ID), nil)
		}
	}
	for _, c := range cs {
		if !slices.Contains(p.Collectors, c) {
			r.load[c]++
			t.b.Set(assignKey(c, p.ID), nil, nil)
		}
	}
	p.Collectors = cs
	t.putProducer(p)
}

// fill keeps a producer's live collectors (sticky) and adds the least-loaded
// live collectors until it has Replicas of them.
func (r *Registry) fill(t *txn, p *Producer, now time.Time) {
	var keep []string
	for _, c := range p.Collectors {
		if col, ok := r.collectors[c]; ok && r.live(col, now) {
			keep = append(keep, c)
		}
	}
	if len(keep) < r.opts.Replicas {
		var candidates []string
		for id, c := range r.collectors {
			if r.live(c, now) && !slices.Contains(keep, id) {
				candidates = append(candidates, id)
			}
		}
		sort.Slice(candidates, func(i, j int) bool {
			a, b := candidates[i], candidates[j]
			if r.load[a] != r.load[b] {
				return r.load[a] < r.load[b]
			}
			return a < b
		})
		for _, c := range candidates {
			if len(keep) >= r.opts.Replicas {
				break
			}
			keep = append(keep, c)
		}
	}
	slices.Sort(keep)
	if !slices.Equal(keep, p.Collectors) || p.Collectors == nil {
		if keep == nil {
			keep = []string{}
		}
		r.setCollectors(t, p, keep)
	}
}

// RegisterProducer registers or renews a producer and returns its
// assignment. A renewal keeps the assignment unless a collector died.
func (r *Registry) RegisterProducer(reg ProducerRegistration) (ProducerAssignment, error) {
	if err := validateID("producer", reg.ID); err != nil {
		return ProducerAssignment{}, err
	}
	if err := validateAddress(reg.Address); err != nil {
		return ProducerAssignment{}, err
	}
	interval, err := parseInterval(reg.Interval)
	if err != nil {
		return ProducerAssignment{}, err
	}
	if len(reg.Kind) > 128 {
		return ProducerAssignment{}, invalid("kind longer than 128 characters")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.opts.Now()
	t := r.begin()
	p, ok := r.producers[reg.ID]
	if !ok {
		p = &Producer{ID: reg.ID, Registered: now, Collectors: []string{}}
	}
	old := *p
	p.Address, p.IntervalNs, p.Kind, p.LeaseExpires = reg.Address, int64(interval), reg.Kind, now.Add(r.opts.ProducerLease)
	r.fill(t, p, now) // writes p if its collectors change
	if !ok || p.Address != old.Address || p.IntervalNs != old.IntervalNs || p.Kind != old.Kind {
		t.putProducer(p)
	}
	// Registered again: no longer listed as expired.
	again := r.unexpireLocked(t, reg.ID)
	// A renewal that changes nothing else is not written: lease times are
	// not trusted across a restart (Open gives everyone a lease from the
	// start), and a synced write per renewal, under r.mu, queued renewals
	// behind each other's fsyncs until leases ran out on a loaded disk.
	if err := t.commit(); err != nil {
		if ok {
			*p = old
		}
		return ProducerAssignment{}, err
	}
	r.producers[p.ID] = p
	if again {
		delete(r.expired, reg.ID)
	}
	if !ok {
		r.m.registrations.WithLabelValues("producer").Inc()
	}
	return r.assignmentOf(p), nil
}

func (r *Registry) assignmentOf(p *Producer) ProducerAssignment {
	a := ProducerAssignment{ID: p.ID, LeaseSeconds: r.opts.ProducerLease.Seconds(), Collectors: []CollectorRef{}}
	for _, c := range p.Collectors {
		ref := CollectorRef{ID: c}
		if col, ok := r.collectors[c]; ok {
			ref.Address = col.Address
		}
		a.Collectors = append(a.Collectors, ref)
	}
	return a
}

// Producer returns a producer's registration.
func (r *Registry) Producer(id string) (Producer, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p, ok := r.producers[id]
	if !ok {
		return Producer{}, fmt.Errorf("%w: producer %q", ErrNotFound, id)
	}
	c := *p
	c.Collectors = slices.Clone(p.Collectors)
	return c, nil
}

// ProducerUpdate is the body of PATCH /v1/producers/{id}.
type ProducerUpdate struct {
	Address  *string `json:"address,omitempty"`
	Interval *string `json:"interval,omitempty"`
}

// UpdateProducer changes a producer's address or interval.
func (r *Registry) UpdateProducer(id string, u ProducerUpdate) (Producer, error) {
	var interval time.Duration
	if u.Address != nil {
		if err := validateAddress(*u.Address); err != nil {
			return Producer{}, err
		}
	}
	if u.Interval != nil {
		var err error
		if interval, err = parseInterval(*u.Interval); err != nil {
			return Producer{}, err
		}
	}
	r.mu.Lock()
	p, ok := r.producers[id]
	if !ok {
		r.mu.Unlock()
		return Producer{}, fmt.Errorf("%w: producer %q", ErrNotFound, id)
	}
	old := *p
	if u.Address != nil {
		p.Address = *u.Address
	}
	if u.Interval != nil {
		p.IntervalNs = int64(interval)
	}
	t := r.begin()
	t.putProducer(p)
	if err := t.commit(); err != nil {
		*p = old
		r.mu.Unlock()
		return Producer{}, err
	}
	r.mu.Unlock()
	return r.Producer(id)
}

// DeleteProducer removes a producer (a normal deregistration).
func (r *Registry) DeleteProducer(id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.deleteProducerLocked(id, time.Time{})
}

// deleteProducerLocked removes a producer; with a non-zero expired time it
// is recorded as expired then, in the same synced write (expired.go).
func (r *Registry) deleteProducerLocked(id string, expired time.Time) error {
	p, ok := r.producers[id]
	if !ok {
		return fmt.Errorf("%w: producer %q", ErrNotFound, id)
	}
	t := r.begin()
	var rec *ExpiredProducer
	if !expired.IsZero() {
		rec = r.noteExpiredLocked(t, p, expired)
	}
	for _, c := range p.Collectors {
		t.b.Delete(assignKey(c, id), nil)
	}
	t.b.Delete([]byte(prefixProducer+id), nil)
	if err := t.commit(); err != nil {
		return err
	}
	for _, c := range p.Collectors {
		r.load[c]--
	}
	delete(r.producers, id)
	if rec != nil {
		r.expired[id] = rec
	}
	return nil
}

// RegisterCollector registers or renews a collector; producers without
// enough collectors are assigned to it.
func (r *Registry) RegisterCollector(reg CollectorRegistration) (CollectorLease, error) {
	if err := validateID("collector", reg.ID); err != nil {
		return CollectorLease{}, err
	}
	if reg.Address != "" {
		if err := validateAddress(reg.Address); err != nil {
			return CollectorLease{}, err
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.opts.Now()
	c, ok := r.collectors[reg.ID]
	if !ok {
		c = &Collector{ID: reg.ID, Registered: now}
	}
	wasLive := ok && r.live(c, now)
	changed := !wasLive || c.Address != reg.Address
	c.Address, c.LeaseExpires = reg.Address, now.Add(r.opts.CollectorLease)
	r.collectors[c.ID] = c
	r.heardFrom(c.ID, now) // a rebalancing target (rebalance.go)
	t := r.begin()
	if changed { // a plain renewal is not written (see RegisterProducer)
		t.putCollector(c)
	}
	if !wasLive {
		r.fillAll(t, now)
	}
	if err := t.commit(); err != nil {
		return CollectorLease{}, err
	}
	if !ok {
		r.m.registrations.WithLabelValues("collector").Inc()
	}
	return CollectorLease{ID: c.ID, LeaseSeconds: r.opts.CollectorLease.Seconds()}, nil
}

// fillAll gives every live producer short of collectors its share.
func (r *Registry) fillAll(t *txn, now time.Time) {
	ids := make([]string, 0, len(r.producers))
	for id := range r.producers {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		p := r.producers[id]
		live := 0
		for _, c := range p.Collectors {
			if col, ok := r.collectors[c]; ok && r.live(col, now) {
				live++
			}
		}
		if live < r.opts.Replicas || live != len(p.Collectors) {
			r.fill(t, p, now)
		}
	}
}

// Expire removes producers and collectors whose leases ran out, and moves the
// producers of dead collectors to live ones. It returns what it removed.
func (r *Registry) Expire() (producers, collectors []string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.opts.Now()
	for id, p := range r.producers {
		if !now.Before(p.LeaseExpires) {
			if err := r.deleteProducerLocked(id, now); err != nil {
				return producers, collectors, err
			}
			producers = append(producers, id)
			r.m.expired.WithLabelValues("producer").Inc()
			r.m.producersExpired.Inc()
		}
	}
	t := r.begin()
	forgotten := r.forgetExpiredLocked(t, now)
	for id, c := range r.collectors {
		if !r.live(c, now) {
			t.b.Delete([]byte(prefixCollector+id), nil)
			delete(r.collectors, id)
			collectors = append(collectors, id)
			r.m.expired.WithLabelValues("collector").Inc()
		}
	}
	if len(collectors) > 0 {
		r.fillAll(t, now)
	}
	if err := t.commit(); err != nil {
		return producers, collectors, err
	}
	for _, id := range forgotten {
		delete(r.expired, id)
	}
	return producers, collectors, nil
}

// pageToken is opaque to clients: base64 of the collector id and the last
// producer id listed. The next page starts strictly after that id, so a
// producer that exists throughout a listing is listed exactly once, whatever
// registers or leaves meanwhile.
func encodeToken(collector, last string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(collector + "\x00" + last))
}

func decodeToken(collector, token string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return "", invalid("malformed page token")
	}
	c, last, ok := strings.Cut(string(b), "\x00")
	if !ok || c != collector {
		return "", invalid("page token belongs to another listing")
	}
	return last, nil
}

// ListAssigned returns up to limit producers assigned to a collector, sorted
// by id, after the page token.
func (r *Registry) ListAssigned(collector, token string, limit int) (ProducerPage, error) {
	if err := validateID("collector", collector); err != nil {
		return ProducerPage{}, err
	}
	if limit <= 0 || limit > 10_000 {
		return ProducerPage{}, invalid("limit %d must be between 1 and 10000", limit)
	}
	after := ""
	if token != "" {
		var err error
		if after, err = decodeToken(collector, token); err != nil {
			return ProducerPage{}, err
		}
	}
	prefix := prefixAssign + collector + "\x00"
	lower := []byte(prefix + after)
	if token != "" {
		lower = append(lower, 0) // strictly after
	}
	_, upper := state.PrefixBounds([]byte(prefix))
	it, err := r.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return ProducerPage{}, err
	}
	defer it.Close()
	page := ProducerPage{Items: []AssignedProducer{}}
	r.mu.Lock()
	defer r.mu.Unlock()
	for it.First(); it.Valid(); it.Next() {
		id := string(bytes.TrimPrefix(it.Key(), []byte(prefix)))
		if len(page.Items) == limit {
			page.NextPageToken = encodeToken(collector, page.Items[len(page.Items)-1].ID)
			break
		}
		p, ok := r.producers[id]
		if !ok {
			continue // deleted since the iterator opened
		}
		page.Items = append(page.Items, AssignedProducer{ID: id, Address: p.Address, Interval: time.Duration(p.IntervalNs).String(), Kind: p.Kind})
	}
	return page, it.Error()
}

// Collectors lists the registered collectors with their load.
func (r *Registry) Collectors() []CollectorInfo {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.opts.Now()
	out := make([]CollectorInfo, 0, len(r.collectors))
	for _, c := range r.collectors {
		out = append(out, CollectorInfo{Collector: *c, Producers: r.load[c.ID], Live: r.live(c, now)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// CollectorInfo is a collector with its load.
type CollectorInfo struct {
	Collector
	Producers int  `json:"producers"`
	Live      bool `json:"live"`
}
