package registry

import (
	"encoding/base64"
	"strings"

	"github.com/cockroachdb/pebble"

	"github.com/holdfast/holdfast/internal/state"
)

// ProducersPage is one page of GET /v1/producers.
type ProducersPage struct {
	Items         []Producer `json:"items"`
	NextPageToken string     `json:"next_page_token,omitempty"` // "" on the last page
}

// ListProducers returns up to limit registered producers sorted by id,
// after the page token. The token names the last id listed, so a producer
// registered throughout a listing is listed exactly once.
func (r *Registry) ListProducers(token string, limit int) (ProducersPage, error) {
	if limit <= 0 || limit > 10_000 {
		return ProducersPage{}, invalid("limit %d must be between 1 and 10000", limit)
	}
	lower, upper := state.PrefixBounds([]byte(prefixProducer))
	if token != "" {
		b, err := base64.RawURLEncoding.DecodeString(token)
		after, ok := strings.CutPrefix(string(b), "producers\x00")
		if err != nil || !ok {
			return ProducersPage{}, invalid("malformed page token")
		}
		lower = append([]byte(prefixProducer+after), 0) // strictly after
	}
	it, err := r.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return ProducersPage{}, err
	}
	defer it.Close()
	page := ProducersPage{Items: []Producer{}}
	r.mu.Lock()
	defer r.mu.Unlock()
	for it.First(); it.Valid(); it.Next() {
		if len(page.Items) == limit {
			page.NextPageToken = base64.RawURLEncoding.EncodeToString([]byte("producers\x00" + page.Items[len(page.Items)-1].ID))
			break
		}
		id := strings.TrimPrefix(string(it.Key()), prefixProducer)
		p, ok := r.producers[id]
		if !ok {
			continue // deleted since the iterator opened
		}
		c := *p
		c.Collectors = append([]string{}, p.Collectors...)
		page.Items = append(page.Items, c)
	}
	return page, it.Error()
}
