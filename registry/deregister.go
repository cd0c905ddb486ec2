package registry

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	"github.com/julienschmidt/httprouter"
)

// A collector that shuts down cleanly deregisters: its producers move to
// live collectors at once instead of after its lease (30 s by default),
// which is the gap in collection a rolling restart would otherwise leave.
// It is the same move an expired lease makes, sooner. What the leaving
// collector wrote to its WAL is acknowledged and stays there for its
// next start; nothing a producer holds for it is lost (the producer keeps
// samples until every collector it serves acknowledged them).

// addDeregisterRoutes serves DELETE /v1/collectors/{id}, a write (bearer
// token checked when configured).
func (r *Registry) addDeregisterRoutes(h *authRouter) {
	h.DELETE("/v1/collectors/:id", func(w http.ResponseWriter, _ *http.Request, ps httprouter.Params) {
		moved, err := r.DeleteCollector(ps.ByName("id"))
		reply(w, map[string]any{"deleted": true, "producers_moved": moved}, err)
	})
}

// DeleteCollector removes a collector now and reassigns its producers. It
// returns how many producers it served.
func (r *Registry) DeleteCollector(id string) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.collectors[id]; !ok {
		return 0, fmt.Errorf("%w: collector %q", ErrNotFound, id)
	}
	moved := r.load[id]
	t := r.begin()
	t.b.Delete([]byte(prefixCollector+id), nil)
	delete(r.collectors, id)
	r.fillAll(t, r.opts.Now())
	return moved, t.commit()
}

// DeregisterCollector removes the collector id from the registry.
func (c *Client) DeregisterCollector(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/v1/collectors/"+url.PathEscape(id), nil, nil)
}
