package registry

import (
	"sort"
	"strings"
)

// CollectorsPage is one page of GET /v1/collectors?limit=N&page_token=T.
type CollectorsPage struct {
	Items         []CollectorInfo `json:"items"`
	NextPageToken string          `json:"next_page_token,omitempty"` // "" on the last page
}

// collectorsListing names the collectors listing in page tokens: no
// collector id is empty, so a token of a collector's producer listing (or
// of the producers listing) is refused here and the other way round.
const collectorsListing = ""

// ListCollectors returns up to limit registered collectors with their load,
// sorted by id, after the page token. The token names the last id listed,
// so a collector registered throughout a listing is listed exactly once.
// Collectors live in memory (they are few next to producers), so a page
// costs a sort of their ids under the lock, not a Pebble scan.
func (r *Registry) ListCollectors(token string, limit int) (CollectorsPage, error) {
	if limit <= 0 || limit > 10_000 {
		return CollectorsPage{}, invalid("limit %d must be between 1 and 10000", limit)
	}
	after := ""
	if token != "" {
		var err error
		if after, err = decodeToken(collectorsListing, token); err != nil {
			return CollectorsPage{}, err
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	ids := make([]string, 0, len(r.collectors))
	for id := range r.collectors {
		if token == "" || strings.Compare(id, after) > 0 {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	page := CollectorsPage{Items: []CollectorInfo{}}
	now := r.opts.Now()
	for _, id := range ids {
		if len(page.Items) == limit {
			page.NextPageToken = encodeToken(collectorsListing, page.Items[len(page.Items)-1].ID)
			break
		}
		c := r.collectors[id]
		page.Items = append(page.Items, CollectorInfo{Collector: *c, Producers: r.load[id], Live: r.live(c, now)})
	}
	return page, nil
}
