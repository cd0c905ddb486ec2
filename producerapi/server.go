package producerapi

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/holdfast/holdfast/internal/httpserve"
)

// A Producer returns the samples it has ready when asked. Produce appends
// them to dst; it is called before each page is served, so a producer that
// measures on demand (like oximeter's) needs no timer of its own.
type Producer interface {
	Produce(ctx context.Context, dst []Sample) ([]Sample, error)
}

// ProducerFunc adapts a function to Producer.
type ProducerFunc func(ctx context.Context, dst []Sample) ([]Sample, error)

// Produce calls f.
func (f ProducerFunc) Produce(ctx context.Context, dst []Sample) ([]Sample, error) {
	return f(ctx, dst)
}

// ServerOptions configure a Server. Zero values mean defaults.
type ServerOptions struct {
	// ID names this producer in every page (e.g. a UUID or "host/service").
	ID string
	// MaxSamples and MaxBytes bound the buffer; defaults 1,000,000 samples
	// and 256 MiB (approximate).
	MaxSamples int
	MaxBytes   int
	// MaxPageSamples caps a page; a collector's limit above it is lowered.
	// Default 10,000.
	MaxPageSamples int
	// Collectors are served from the start: samples wait for them even
	// before they first ask. Collectors that ask are added as they come.
	Collectors []string
	// AuthToken, if set, must be presented as "Authorization: Bearer TOKEN".
	AuthToken string
	// Limits validate samples entering the buffer.
	Limits Limits
	Logger *slog.Logger
}

// Server buffers samples from registered producers and serves them to
// collectors in acknowledged pages. It is safe for concurrent use.
type Server struct {
	opts        ServerOptions
	log         *slog.Logger
	incarnation [16]byte

	mu        sync.Mutex
	buf       *buffer
	producers []Producer
	rejected  uint64
	lastErr   string
	scratch   []Sample
}

// NewServer returns a server with a fresh incarnation id.
func NewServer(opts ServerOptions) (*Server, error) {
	if opts.ID == "" {
		return nil, errors.New("producerapi: ServerOptions.ID is required")
	}
	if opts.MaxPageSamples <= 0 {
		opts.MaxPageSamples = 10_000
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Server{opts: opts, log: opts.Logger.With("producer", opts.ID)}
	if _, err := rand.Read(s.incarnation[:]); err != nil {
		return nil, err
	}
	s.incarnation[6] = s.incarnation[6]&0x0f | 0x40 // a version 4 UUID
	s.incarnation[8] = s.incarnation[8]&0x3f | 0x80
	s.buf = newBuffer(bufferOptions{MaxSamples: opts.MaxSamples, MaxBytes: opts.MaxBytes}, s.incarnation)
	for _, c := range opts.Collectors {
		s.buf.addCollector(c)
	}
	return s, nil
}

// Incarnation returns this server's incarnation id.
func (s *Server) Incarnation() string { return formatUUID(s.incarnation) }

// Register adds a producer polled before each page is served.
func (s *Server) Register(p Producer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.producers = append(s.producers, p)
}

// Add validates samples and buffers the valid ones; it returns an error
// naming the first invalid sample (the others are still added).
func (s *Server) Add(samples []Sample) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addLocked(samples)
}

func (s *Server) addLocked(samples []Sample) error {
	var first error
	valid := samples[:0:0]
	for i := range samples {
		if err := Validate(&samples[i], s.opts.Limits); err != nil {
			s.rejected++
			if first == nil {
				first = err
			}
			continue
		}
		valid = append(valid, samples[i])
	}
	s.buf.add(valid)
	if first != nil {
		s.lastErr = first.Error()
	}
	return first
}

// AddCollector makes the server hold samples for a collector (e.g. one the
// registry assigned) before it first asks.
func (s *Server) AddCollector(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf.addCollector(id)
}

// RemoveCollector forgets a collector; samples held only for it are freed.
func (s *Server) RemoveCollector(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf.removeCollector(id)
}

// ServerStats describes the server's buffer and collectors.
type ServerStats struct {
	Producer    string                    `json:"producer"`
	Incarnation string                    `json:"incarnation"`
	Rejected    uint64                    `json:"rejected"` // invalid samples refused at Add
	LastError   string                    `json:"last_error,omitempty"`
	Collectors  map[string]CollectorStats `json:"collectors"`
	BufferStats
}

// CollectorStats is one collector's view.
type CollectorStats struct {
	Outstanding int       `json:"outstanding"` // samples in its unacknowledged page
	Unserved    uint64    `json:"unserved"`    // samples not yet served to it
	LastSeen    time.Time `json:"last_seen"`
}

// Stats returns a snapshot.
func (s *Server) Stats() ServerStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := ServerStats{Producer: s.opts.ID, Incarnation: s.Incarnation(), Rejected: s.rejected, LastError: s.lastErr,
		Collectors: map[string]CollectorStats{}, BufferStats: s.buf.stats()}
	for id, c := range s.buf.cursors {
		cs := CollectorStats{LastSeen: c.lastSeen, Unserved: s.buf.tail() - max(c.next, s.buf.head)}
		if c.page != nil {
			cs.Outstanding = len(c.page.page.Samples)
		}
		st.Collectors[id] = cs
	}
	return st
}

// collect polls the registered producers into the buffer.
func (s *Server) collect(ctx context.Context) {
	for _, p := range s.producers {
		var err error
		s.scratch, err = p.Produce(ctx, s.scratch[:0])
		if len(s.scratch) > 0 {
			if verr := s.addLocked(s.scratch); verr != nil {
				s.log.Warn("producer returned invalid samples", "err", verr)
			}
		}
		clear(s.scratch)
		if err != nil {
			s.lastErr = err.Error()
			s.log.Warn("producer failed", "err", err)
		}
	}
}

// Page serves a collector as the HTTP endpoint does (for embedding and tests).
func (s *Server) Page(ctx context.Context, collector, token string, limit int) Page {
	s.mu.Lock()
	defer s.mu.Unlock()
	if limit <= 0 || limit > s.opts.MaxPageSamples {
		limit = s.opts.MaxPageSamples
	}
	if c, ok := s.buf.cursors[collector]; !ok || c.page == nil || token == c.page.token {
		s.collect(ctx) // only when a new page will be made
	}
	return s.buf.serve(collector, token, limit, time.Now(), s.opts.ID)
}

// Ack releases a collector's outstanding page if token names it.
func (s *Server) Ack(collector, token string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.ack(collector, token)
}

// HTTP API (see DESIGN.md for an example exchange):
//
//	GET  /v1/collectors/:collector/page?token=T&limit=N   serve a page (Accept: JSON or binary)
//	POST /v1/collectors/:collector/ack?token=T            release the outstanding page
//	GET  /v1/stats                                        ServerStats as JSON
var collectorID = regexp.MustCompile(`^[A-Za-z0-9._:@-]{1,128}$`)

// Handler returns the HTTP handler serving collectors.
func (s *Server) Handler() http.Handler {
	r := httprouter.New()
	r.GET("/v1/collectors/:collector/page", s.auth(s.handlePage))
	r.POST("/v1/collectors/:collector/ack", s.auth(s.handleAck))
	r.GET("/v1/stats", s.auth(s.handleStats))
	r.NotFound = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		httpError(w, http.StatusNotFound, "no such endpoint; see /v1/collectors/{collector}/page, /v1/collectors/{collector}/ack, /v1/stats")
	})
	r.MethodNotAllowed = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		httpError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed here", req.Method))
	})
	r.PanicHandler = func(w http.ResponseWriter, _ *http.Request, v any) {
		s.log.Error("panic serving a request", "panic", v)
		httpError(w, http.StatusInternalServerError, "internal error")
	}
	return r
}

// httpError writes {"error": msg} with the status.
func httpError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", ContentTypeJSON)
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

func (s *Server) auth(h httprouter.Handle) httprouter.Handle {
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
		r.Body = http.MaxBytesReader(w, r.Body, 4096) // no endpoint takes a body
		if s.opts.AuthToken != "" {
			got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(s.opts.AuthToken)) != 1 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="holdfast producer"`)
				httpError(w, http.StatusUnauthorized, "missing or wrong bearer token")
				return
			}
		}
		h(w, r, ps)
	}
}

func (s *Server) collectorParams(w http.ResponseWriter, r *http.Request, ps httprouter.Params) (string, string, bool) {
	id := ps.ByName("collector")
	if !collectorID.MatchString(id) {
		httpError(w, http.StatusBadRequest, fmt.Sprintf("collector id %q must be 1-128 characters of [A-Za-z0-9._:@-]", id))
		return "", "", false
	}
	token := r.URL.Query().Get("token")
	if len(token) > 256 {
		httpError(w, http.StatusBadRequest, "token longer than 256 characters")
		return "", "", false
	}
	return id, token, true
}

func (s *Server) handlePage(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
	id, token, ok := s.collectorParams(w, r, ps)
	if !ok {
		return
	}
	limit := 0
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			httpError(w, http.StatusBadRequest, fmt.Sprintf("limit %q must be a positive integer", v))
			return
		}
		limit = n
	}
	p := s.Page(r.Context(), id, token, limit)
	if wantsBinary(r.Header.Get("Accept")) {
		w.Header().Set("Content-Type", ContentTypeBinary)
		w.Write(AppendPage(nil, &p))
		return
	}
	b, err := MarshalPageJSON(&p)
	if err != nil {
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.Header().Set("Content-Type", ContentTypeJSON)
	w.Write(b)
}

func wantsBinary(accept string) bool {
	for _, part := range strings.Split(accept, ",") {
		mt, _, _ := strings.Cut(strings.TrimSpace(part), ";")
		if mt == ContentTypeBinary {
			return true
		}
	}
	return false
}

func (s *Server) handleAck(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
	id, token, ok := s.collectorParams(w, r, ps)
	if !ok {
		return
	}
	if token == "" {
		httpError(w, http.StatusBadRequest, "ack needs the token of the outstanding page")
		return
	}
	released := s.Ack(id, token)
	w.Header().Set("Content-Type", ContentTypeJSON)
	if !released {
		w.WriteHeader(http.StatusConflict)
		json.NewEncoder(w).Encode(map[string]any{"released": false, "error": "token does not name this collector's outstanding page (stale, foreign or from another incarnation); nothing released"})
		return
	}
	json.NewEncoder(w).Encode(map[string]any{"released": true})
}

func (s *Server) handleStats(w http.ResponseWriter, _ *http.Request, _ httprouter.Params) {
	w.Header().Set("Content-Type", ContentTypeJSON)
	json.NewEncoder(w).Encode(s.Stats())
}

// ListenAndServe serves the handler on addr until ctx ends, with timeouts.
func (s *Server) ListenAndServe(ctx context.Context, addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return s.Serve(ctx, ln)
}

// Serve serves on ln until ctx ends.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	return httpserve.Serve(ctx, ln, s.Handler(), 60*time.Second)
}
