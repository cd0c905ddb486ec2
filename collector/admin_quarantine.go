package collector

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/holdfast/holdfast/quarantine"
)

// QuarantinePage is one page of GET /v1/quarantine.
type QuarantinePage struct {
	Entries []quarantine.View `json:"entries"`
	// Next is the `after` of the next page; 0 when this is the last.
	Next  uint64           `json:"next,omitempty"`
	Stats quarantine.Stats `json:"stats"`
}

// addQuarantineRoutes serves the quarantine: a running collector holds the
// state store's lock, so `holdfast quarantine` reads it through here.
//
//	GET  /v1/quarantine?after=ID&limit=N[&samples=1]   entries with ids above after, oldest first (limit ≤ 1,000; default 100)
//	GET  /v1/quarantine/:id                            one entry with its samples
//	POST /v1/quarantine/replay?id=ID...                re-submit entries (all without id); loopback only
//	DELETE /v1/quarantine/:id                          remove an entry for good; loopback only
func (c *Collector) addQuarantineRoutes(r *httprouter.Router, opts AdminOptions) {
	r.GET("/v1/quarantine", func(w http.ResponseWriter, req *http.Request, _ httprouter.Params) {
		q := req.URL.Query()
		after, err1 := parseUint(q.Get("after"), 0)
		limit, err2 := parseUint(q.Get("limit"), 100)
		if err1 != nil || err2 != nil || limit == 0 || limit > 1000 {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "after must be an entry id and limit 1..1000"})
			return
		}
		withSamples := q.Get("samples") == "1" || q.Get("samples") == "true"
		// Bound the answer: with samples, entries can be large (up to a WAL
		// record each); a page ends early after maxPageAnswer payload bytes.
		// Without, payloads are not read at all.
		var entries []quarantine.Entry
		var more bool
		var err error
		if withSamples {
			entries, more, err = c.q.ListUpTo(after, int(limit), maxPageAnswer)
		} else {
			entries, more, err = c.q.ListHeaders(after, int(limit))
		}
		if err != nil {
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
			return
		}
		out := QuarantinePage{Entries: make([]quarantine.View, 0, len(entries)), Stats: c.q.Stats()}
		for i := range entries {
			out.Entries = append(out.Entries, quarantine.ViewOf(&entries[i], withSamples))
		}
		if more {
			out.Next = entries[len(entries)-1].ID
		}
		writeJSON(w, http.StatusOK, out)
	})
	r.GET("/v1/quarantine/:id", func(w http.ResponseWriter, _ *http.Request, ps httprouter.Params) {
		id, err := parseUint(ps.ByName("id"), 0)
		if err != nil || id == 0 {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "an entry id is a positive integer"})
			return
		}
		e, err := c.q.Get(id)
		if errors.Is(err, quarantine.ErrNotFound) {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": err.Error()})
			return
		}
		if err != nil {
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, quarantine.ViewOf(&e, true))
	})
	r.DELETE("/v1/quarantine/:id", c.local(opts, func(w http.ResponseWriter, _ *http.Request, ps httprouter.Params) {
		id, err := parseUint(ps.ByName("id"), 0)
		if err != nil || id == 0 {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "an entry id is a positive integer"})
			return
		}
		if _, err := c.q.Get(id); errors.Is(err, quarantine.ErrNotFound) {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": err.Error()})
			return
		} else if err != nil && !errors.Is(err, quarantine.ErrMalformed) {
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
			return
		}
		if err := c.q.Delete([]uint64{id}); err != nil {
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
			return
		}
		c.log.Warn("quarantine entry deleted by an operator", "id", id)
		writeJSON(w, http.StatusOK, map[string]any{"deleted": id, "stats": c.q.Stats()})
	}))
	r.POST("/v1/quarantine/replay", c.local(opts, func(w http.ResponseWriter, req *http.Request, _ httprouter.Params) {
		var ids []uint64
		for _, v := range req.URL.Query()["id"] {
			id, err := parseUint(v, 0)
			if err != nil || id == 0 {
				writeJSON(w, http.StatusBadRequest, map[string]string{"error": "id " + strconv.Quote(v) + " is not an entry id"})
				return
			}
			ids = append(ids, id)
		}
		ctx, cancel := context.WithTimeout(req.Context(), 5*time.Minute)
		defer cancel()
		rep, err := c.ReplayQuarantine(ctx, ids)
		if err != nil {
			writeJSON(w, http.StatusInternalServerError, map[string]any{"error": err.Error(), "report": rep})
			return
		}
		writeJSON(w, http.StatusOK, rep)
	}))
}

// maxPageAnswer bounds the payload bytes of one GET /v1/quarantine answer
// with samples.
const maxPageAnswer = 16 << 20

func parseUint(s string, def uint64) (uint64, error) {
	if s == "" {
		return def, nil
	}
	return strconv.ParseUint(s, 10, 64)
}
