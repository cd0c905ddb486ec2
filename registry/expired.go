package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"time"
)

// A producer whose lease runs out leaves the assignment at once (its
// collectors stop asking it), but it must not vanish without trace: an
// operator asking "where did vm-17's metrics go?" an hour later needs to
// see that it expired, when, and which collectors had it. So the registry
// keeps the last registration of every expired producer for
// Options.ExpiredRetention (default 24 h), durably under
//
//	registry/expired/<id>   JSON ExpiredProducer
//
// listed by GET /v1/producers?state=expired and answered by
// GET /v1/producers/{id}?state=expired. A producer that registers again
// leaves the list. At most Options.MaxExpired are kept (the oldest go
// first), so a fleet that churns cannot grow the registry without bound.
const prefixExpired = "registry/expired/"

// ExpiredProducer is a producer removed because its lease ran out: its
// last registration (with the collectors it was assigned to then) and
// when it expired.
type ExpiredProducer struct {
	Producer
	Expired time.Time `json:"expired"`
	Reason  string    `json:"reason"`
}

// ExpiredProducersPage is one page of GET /v1/producers?state=expired.
type ExpiredProducersPage struct {
	Items         []ExpiredProducer `json:"items"`
	NextPageToken string            `json:"next_page_token,omitempty"` // "" on the last page
}

// Defaults of the expired-producer record.
const (
	DefaultExpiredRetention = 24 * time.Hour
	DefaultMaxExpired       = 10_000
)

func (r *Registry) loadExpired() error {
	return scan(r.db, prefixExpired, func(_, v []byte) error {
		var e ExpiredProducer
		if err := json.Unmarshal(v, &e); err != nil {
			return err
		}
		r.expired[e.ID] = &e
		return nil
	})
}

// noteExpiredLocked records p as expired in t (written with the
// producer's removal, so both or neither survive a crash).
func (r *Registry) noteExpiredLocked(t *txn, p *Producer, now time.Time) *ExpiredProducer {
	if r.opts.ExpiredRetention < 0 {
		return nil
	}
	e := &ExpiredProducer{Producer: *p, Expired: now, Reason: "lease expired: no renewal for " + r.opts.ProducerLease.String()}
	e.Collectors = slices.Clone(p.Collectors)
	v, _ := json.Marshal(e)
	t.b.Set([]byte(prefixExpired+p.ID), v, nil)
	return e
}

// unexpireLocked removes in t the record of a producer that registers
// again, and says whether there was one (to drop after the commit).
func (r *Registry) unexpireLocked(t *txn, id string) bool {
	if _, ok := r.expired[id]; !ok {
		return false
	}
	t.b.Delete([]byte(prefixExpired+id), nil)
	return true
}

// forgetExpiredLocked removes in t the records older than the retention
// and those beyond MaxExpired (oldest first); it returns their ids, to drop
// from memory after the commit. Expire calls it once a second.
func (r *Registry) forgetExpiredLocked(t *txn, now time.Time) []string {
	var gone []string
	keep := make([]*ExpiredProducer, 0, len(r.expired))
	for _, e := range r.expired {
		if r.opts.ExpiredRetention < 0 || !now.Before(e.Expired.Add(r.opts.ExpiredRetention)) {
			gone = append(gone, e.ID)
			continue
		}
		keep = append(keep, e)
	}
	if extra := len(keep) - r.opts.MaxExpired; extra > 0 {
		sort.Slice(keep, func(i, j int) bool { return keep[i].Expired.Before(keep[j].Expired) })
		for _, e := range keep[:extra] {
			gone = append(gone, e.ID)
		}
	}
	for _, id := range gone {
		t.b.Delete([]byte(prefixExpired+id), nil)
	}
	return gone
}

// ExpiredProducer returns the record of an expired producer.
func (r *Registry) ExpiredProducer(id string) (ExpiredProducer, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.expired[id]
	if !ok {
		return ExpiredProducer{}, fmt.Errorf("%w: no expired producer %q (retention %s)", ErrNotFound, id, r.opts.ExpiredRetention)
	}
	c := *e
	c.Collectors = slices.Clone(e.Collectors)
	return c, nil
}

// ListExpired returns up to limit expired producers sorted by id, after
// the page token (which names the last id listed, as ListProducers').
func (r *Registry) ListExpired(token string, limit int) (ExpiredProducersPage, error) {
	if limit <= 0 || limit > 10_000 {
		return ExpiredProducersPage{}, invalid("limit %d must be between 1 and 10000", limit)
	}
	after, hasAfter := "", false
	if token != "" {
		a, err := decodeToken("expired", token)
		if err != nil {
			return ExpiredProducersPage{}, err
		}
		after, hasAfter = a, true
	}
	r.mu.Lock()
	ids := make([]string, 0, len(r.expired))
	for id := range r.expired {
		if !hasAfter || id > after {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	page := ExpiredProducersPage{Items: []ExpiredProducer{}}
	for _, id := range ids {
		if len(page.Items) == limit {
			page.NextPageToken = encodeToken("expired", page.Items[len(page.Items)-1].ID)
			break
		}
		e := *r.expired[id]
		e.Collectors = slices.Clone(e.Collectors)
		page.Items = append(page.Items, e)
	}
	r.mu.Unlock()
	return page, nil
}

// ExpiredProducer asks the registry about an expired producer
// (GET /v1/producers/{id}?state=expired); a producer not expired (or
// expired longer ago than the retention) is an *APIError with Code 404.
func (c *Client) ExpiredProducer(ctx context.Context, id string) (ExpiredProducer, error) {
	var e ExpiredProducer
	return e, c.do(ctx, http.MethodGet, "/v1/producers/"+url.PathEscape(id)+"?state=expired", nil, &e)
}

// Producer fetches a live producer's registration (GET /v1/producers/{id}).
func (c *Client) Producer(ctx context.Context, id string) (Producer, error) {
	var p Producer
	return p, c.do(ctx, http.MethodGet, "/v1/producers/"+url.PathEscape(id), nil, &p)
}

// ListExpiredPage fetches one page of expired producers.
func (c *Client) ListExpiredPage(ctx context.Context, token string, limit int) (ExpiredProducersPage, error) {
	q := url.Values{"limit": {strconv.Itoa(limit)}, "state": {"expired"}}
	if token != "" {
		q.Set("page_token", token)
	}
	var p ExpiredProducersPage
	return p, c.do(ctx, http.MethodGet, "/v1/producers?"+q.Encode(), nil, &p)
}
