package registry

import (
	"net/http"

	"github.com/julienschmidt/httprouter"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Readiness is the answer of /-/ready.
type Readiness struct {
	Ready   bool     `json:"ready"`
	Reasons []string `json:"reasons,omitempty"`
}

// Ready reports whether the registry can take registrations: its store was
// opened (Open succeeded) and its last synced write did not fail. A failed
// write (disk full, I/O error) makes it not ready until a write succeeds.
func (r *Registry) Ready() Readiness {
	if msg := r.writeErr.Load(); msg != nil {
		return Readiness{Reasons: []string{"state store refuses writes: " + *msg}}
	}
	return Readiness{Ready: true}
}

// addHealthRoutes serves /-/healthy (liveness: 200 while the process
// serves) and /-/ready (Ready: 200 or 503 with reasons).
func (r *Registry) addHealthRoutes(h *authRouter) {
	h.GET("/-/healthy", func(w http.ResponseWriter, _ *http.Request, _ httprouter.Params) {
		writeJSON(w, http.StatusOK, map[string]bool{"healthy": true})
	})
	h.GET("/-/ready", func(w http.ResponseWriter, _ *http.Request, _ httprouter.Params) {
		rd := r.Ready()
		code := http.StatusOK
		if !rd.Ready {
			code = http.StatusServiceUnavailable
		}
		writeJSON(w, code, rd)
	})
	if r.opts.Gatherer != nil {
		h.Handler(http.MethodGet, "/metrics", promhttp.HandlerFor(r.opts.Gatherer, promhttp.HandlerOpts{}))
	}
}
