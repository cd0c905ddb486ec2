package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/holdfast/holdfast/internal/httpserve"
	pa "github.com/holdfast/holdfast/producerapi"
)

const maxBody = 64 << 10

// Handler serves the registry's HTTP API:
//
//	GET    /                                  the status page (HTML, for people)
//	POST   /v1/producers                      register or renew (ProducerRegistration) → ProducerAssignment
//	GET    /v1/producers                      ?limit=N&page_token=T → ProducersPage (sorted by id);
//	                                          &state=expired → ExpiredProducersPage (expired.go)
//	GET    /v1/producers/{id}                 the registration and its collectors (?state=expired: its ExpiredProducer record)
//	PATCH  /v1/producers/{id}                 change address or interval (ProducerUpdate)
//	DELETE /v1/producers/{id}                 deregister
//	POST   /v1/collectors                     register or renew (CollectorRegistration) → CollectorLease
//	GET    /v1/collectors                     ?limit=N&page_token=T → CollectorsPage (sorted by id, with their load);
//	                                          without either parameter, every collector as a bare array (the form before pagination)
//	DELETE /v1/collectors/{id}                deregister (a clean shutdown): its producers move now (deregister.go)
//	GET    /v1/collectors/{id}/producers      ?limit=N&page_token=T → ProducerPage (sorted by id)
//	GET    /v1/timeseries-schema              ?limit=N&page_token=T → SchemaPage (every version, by name and version)
//	POST   /v1/timeseries-schema              report schemas ([]TimeseriesSchema, at most 10,000 and 64 KiB)
//	GET    /-/healthy                         liveness: 200 while the process serves
//	GET    /-/ready                           readiness (Ready): 200, or 503 with reasons
//
// With Options.AuthToken set, every write (POST, PATCH, DELETE) needs
// "Authorization: Bearer TOKEN"; reads stay open.
func (r *Registry) Handler(log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.Default()
	}
	h := &authRouter{Router: httprouter.New(), token: r.opts.AuthToken}
	h.GET("/", r.serveStatusPage) // the HTML status page (statuspage.go)
	h.GET("/v1/producers", func(w http.ResponseWriter, req *http.Request, _ httprouter.Params) {
		limit, token, ok := pageParams(w, req)
		if !ok {
			return
		}
		switch st := req.URL.Query().Get("state"); st {
		case "", "live":
			page, err := r.ListProducers(token, limit)
			reply(w, page, err)
		case "expired": // expired.go
			page, err := r.ListExpired(token, limit)
			reply(w, page, err)
		default:
			reply(w, nil, invalid("state %q must be live or expired", st))
		}
	})
	h.POST("/v1/producers", func(w http.ResponseWriter, req *http.Request, _ httprouter.Params) {
		var reg ProducerRegistration
		if !decode(w, req, &reg) {
			return
		}
		a, err := r.RegisterProducer(reg)
		reply(w, a, err)
	})
	h.GET("/v1/producers/:id", func(w http.ResponseWriter, req *http.Request, ps httprouter.Params) {
		if req.URL.Query().Get("state") == "expired" {
			e, err := r.ExpiredProducer(ps.ByName("id"))
			reply(w, e, err)
			return
		}
		p, err := r.Producer(ps.ByName("id"))
		reply(w, p, err)
	})
	h.PATCH("/v1/producers/:id", func(w http.ResponseWriter, req *http.Request, ps httprouter.Params) {
		var u ProducerUpdate
		if !decode(w, req, &u) {
			return
		}
		p, err := r.UpdateProducer(ps.ByName("id"), u)
		reply(w, p, err)
	})
	h.DELETE("/v1/producers/:id", func(w http.ResponseWriter, _ *http.Request, ps httprouter.Params) {
		reply(w, map[string]bool{"deleted": true}, r.DeleteProducer(ps.ByName("id")))
	})
	h.POST("/v1/collectors", func(w http.ResponseWriter, req *http.Request, _ httprouter.Params) {
		var reg CollectorRegistration
		if !decode(w, req, &reg) {
			return
		}
		l, err := r.RegisterCollector(reg)
		reply(w, l, err)
	})
	h.GET("/v1/collectors", func(w http.ResponseWriter, req *http.Request, _ httprouter.Params) {
		q := req.URL.Query()
		if !q.Has("limit") && !q.Has("page_token") {
			// The answer before pagination, a bare array of every
			// collector, for clients written against it.
			reply(w, r.Collectors(), nil)
			return
		}
		limit, token, ok := pageParams(w, req)
		if !ok {
			return
		}
		page, err := r.ListCollectors(token, limit)
		reply(w, page, err)
	})
	h.GET("/v1/collectors/:id/producers", func(w http.ResponseWriter, req *http.Request, ps httprouter.Params) {
		limit, token, ok := pageParams(w, req)
		if !ok {
			return
		}
		page, err := r.ListAssigned(ps.ByName("id"), token, limit)
		reply(w, page, err)
	})
	h.GET("/v1/timeseries-schema", func(w http.ResponseWriter, req *http.Request, _ httprouter.Params) {
		limit, token, ok := pageParams(w, req)
		if !ok {
			return
		}
		page, err := r.ListSchemas(token, limit)
		reply(w, page, err)
	})
	h.POST("/v1/timeseries-schema", func(w http.ResponseWriter, req *http.Request, _ httprouter.Params) {
		var schemas []pa.TimeseriesSchema
		if !decode(w, req, &schemas) {
			return
		}
		err := r.AddSchemas(schemas)
		var sc *SchemaConflictError
		if errors.As(err, &sc) {
			writeJSON(w, http.StatusConflict, map[string]any{"error": err.Error(), "conflicts": sc.Conflicts, "received": len(schemas)})
			return
		}
		reply(w, map[string]int{"received": len(schemas)}, err)
	})
	r.addHealthRoutes(h)
	r.addDeregisterRoutes(h)
	h.NotFound = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such endpoint"})
	})
	h.MethodNotAllowed = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "method " + req.Method + " not allowed here"})
	})
	h.PanicHandler = func(w http.ResponseWriter, _ *http.Request, v any) {
		log.Error("panic serving a request", "panic", v)
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "internal error"})
	}
	return h.Router
}

// pageParams reads limit (default 1000) and page_token.
func pageParams(w http.ResponseWriter, req *http.Request) (int, string, bool) {
	limit := 1000
	if v := req.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			reply(w, nil, invalid("limit %q is not a number", v))
			return 0, "", false
		}
		limit = n
	}
	return limit, req.URL.Query().Get("page_token"), true
}

func decode(w http.ResponseWriter, req *http.Request, v any) bool {
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, maxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"error": fmt.Sprintf("body larger than %d bytes", maxBody)})
			return false
		}
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "reading body: " + err.Error()})
		return false
	}
	dec := json.NewDecoder(bytesReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "malformed JSON body: " + err.Error()})
		return false
	}
	return true
}

func reply(w http.ResponseWriter, v any, err error) {
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, v)
	case errors.Is(err, ErrInvalid):
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
	case errors.Is(err, ErrSchemaConflict):
		writeJSON(w, http.StatusConflict, map[string]string{"error": err.Error()})
	case errors.Is(err, ErrNotFound):
		writeJSON(w, http.StatusNotFound, map[string]string{"error": err.Error()})
	default:
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// Serve serves the API on ln and expires leases every second until ctx ends.
func (r *Registry) Serve(ctx context.Context, ln net.Listener, log *slog.Logger) error {
	if log == nil {
		log = slog.Default()
	}
	go func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				ps, cs, err := r.Expire()
				if err != nil {
					log.Error("expiring leases", "err", err)
				}
				if len(ps) > 0 || len(cs) > 0 {
					log.Info("leases expired", "producers", ps, "collectors", cs)
				}
				r.logRebalance(log)
			}
		}
	}()
	return httpserve.Serve(ctx, ln, r.Handler(log), 60*time.Second)
}
