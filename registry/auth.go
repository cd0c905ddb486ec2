package registry

import (
	"crypto/subtle"
	"net/http"
	"strings"

	"github.com/julienschmidt/httprouter"
)

// authRouter registers routes on a Router, wrapping every write (POST,
// PATCH, DELETE) in a bearer-token check when a token is configured. Reads
// (listings, schemas) stay open: they change nothing, and collectors and
// operators read them.
type authRouter struct {
	*httprouter.Router
	token string
}

func (a *authRouter) POST(path string, h httprouter.Handle)   { a.Router.POST(path, a.write(h)) }
func (a *authRouter) PATCH(path string, h httprouter.Handle)  { a.Router.PATCH(path, a.write(h)) }
func (a *authRouter) DELETE(path string, h httprouter.Handle) { a.Router.DELETE(path, a.write(h)) }

// write refuses a request without the token before its handler reads the
// body, so an unauthenticated request changes nothing.
func (a *authRouter) write(h httprouter.Handle) httprouter.Handle {
	if a.token == "" {
		return h
	}
	return func(w http.ResponseWriter, req *http.Request, ps httprouter.Params) {
		got, ok := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(a.token)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="holdfast registry"`)
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "writes to this registry need its bearer token (holdfast registry --auth-token; clients: --registry-token)"})
			return
		}
		h(w, req, ps)
	}
}
