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
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/julienschmidt/httprouter"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/holdfast/holdfast/internal/httpserve"
	"github.com/holdfast/holdfast/internal/ids"
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
	// AuthToken, if set, must be presented as "Authorization: Bearer TOKEN";
	// a request without it changes nothing.
	AuthToken string
	// CursorTTL expires the cursor of a collector that has made no request
	// for this long (what only it held counts as dropped for it). Cursors of
	// configured (Collectors) and registry-assigned collectors never expire.
	// Default 15 minutes, long enough for a collector restart; negative
	// disables expiry.
	CursorTTL time.Duration
	// MaxCollectors caps the cursors a producer keeps; a new collector id
	// above it is refused (429), so made-up ids cannot pin memory. Default 16.
	MaxCollectors int
	// MaxSessionSeries caps the series ids of a page v3 session (a
	// collector's dictionary): at the cap the next page starts a new
	// session, so series churn cannot grow it forever. Default 1<<20.
	MaxSessionSeries int
	// Limits validate samples entering the buffer.
	Limits Limits
	Logger *slog.Logger
	// Registerer, when set, takes the server's metrics (metrics.go: buffer
	// counts, and pending/acknowledged samples per collector cursor), each
	// labelled with ID; Gatherer, when set, is served on GET /metrics.
	Registerer prometheus.Registerer
	Gatherer   prometheus.Gatherer
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
	now       func() time.Time
	// assigned is the registry's assignment once one arrived (nil before):
	// from then on only these collectors are served.
	assigned map[string]bool
	// configured are the collectors of ServerOptions.Collectors and
	// AddCollector: pinned whenever they have a cursor.
	configured map[string]bool
	expired    uint64 // cursors expired for idleness
	refused    uint64 // page requests refused a cursor
	// kick wakes RunRegistration when an unassigned collector asks: the
	// registry may have assigned it since the last renewal.
	kick chan struct{}
	// sizers (JSON, binary v1) measure pages, enc2 and enc3 cut and
	// encode binary v2 and v3 pages; reused from page to page under mu.
	sizers   [2]pageSizer
	enc2     page2Cutter
	enc3     page3Encoder
	sessions uint64 // page v3 sessions started
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
	if opts.CursorTTL == 0 {
		opts.CursorTTL = 15 * time.Minute
	}
	if opts.MaxCollectors <= 0 {
		opts.MaxCollectors = 16
	}
	if opts.MaxSessionSeries <= 0 {
		opts.MaxSessionSeries = 1 << 20
	}
	// A page's first id (up to the cap plus a page) must stay within what
	// readers accept.
	opts.MaxSessionSeries = max(1, min(opts.MaxSessionSeries, maxSessionID+1-opts.MaxPageSamples))
	s := &Server{opts: opts, log: opts.Logger.With("producer", opts.ID), now: time.Now, kick: make(chan struct{}, 1)}
	if _, err := rand.Read(s.incarnation[:]); err != nil {
		return nil, err
	}
	s.incarnation[6] = s.incarnation[6]&0x0f | 0x40 // a version 4 UUID
	s.incarnation[8] = s.incarnation[8]&0x3f | 0x80
	s.buf = newBuffer(bufferOptions{MaxSamples: opts.MaxSamples, MaxBytes: opts.MaxBytes}, s.incarnation)
	s.configured = make(map[string]bool, len(opts.Collectors))
	for _, c := range opts.Collectors {
		s.configured[c] = true
		s.buf.addCollector(c, s.now()).pinned = true
	}
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(newServerMetrics(s)); err != nil {
			return nil, fmt.Errorf("producerapi: registering metrics: %w", err)
		}
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
	// Valid samples are copied aside only once one is refused: the buffer
	// copies what it keeps, and a copy of every batch was the producer's
	// second largest source of fresh memory.
	valid, filtered := samples, false
	for i := range samples {
		if err := Validate(&samples[i], s.opts.Limits); err != nil {
			s.rejected++
			if first == nil {
				first = err
			}
			if !filtered {
				valid, filtered = append(samples[:0:0], samples[:i]...), true
			}
			continue
		}
		if filtered {
			valid = append(valid, samples[i])
		}
	}
	s.buf.add(valid)
	if first != nil {
		s.lastErr = first.Error()
	}
	return first
}

// ServerStats describes the server's buffer and collectors.
type ServerStats struct {
	Producer      string                    `json:"producer"`
	Incarnation   string                    `json:"incarnation"`
	Rejected      uint64                    `json:"rejected"` // invalid samples refused at Add
	LastError     string                    `json:"last_error,omitempty"`
	CursorTTL     string                    `json:"cursor_ttl"`         // idle cursors of unpinned collectors expire after it ("off" when disabled)
	MaxCollectors int                       `json:"max_collectors"`     // cap on cursors
	Assigned      []string                  `json:"assigned,omitempty"` // the registry's assignment, once one arrived
	Collectors    map[string]CollectorStats `json:"collectors"`         // one per cursor
	Expired       uint64                    `json:"expired_cursors"`    // cursors removed for idleness
	Refused       uint64                    `json:"refused_collectors"` // page requests refused: not assigned, or above the cap
	Sessions      uint64                    `json:"sessions_started"`   // page v3 sessions started (a collector start, or a session it did not continue)
	BufferStats
}

// CollectorStats is one collector's cursor.
type CollectorStats struct {
	Outstanding int       `json:"outstanding"`  // samples in its unacknowledged page
	Unserved    uint64    `json:"unserved"`     // samples not yet served to it
	Acked       uint64    `json:"acked"`        // samples it acknowledged since its cursor was made
	LastRequest time.Time `json:"last_request"` // its last page request or acknowledgement
	Pinned      bool      `json:"pinned"`       // configured or assigned: never expires
	Expires     time.Time `json:"expires,omitzero"`
	// Session and SessionSeries: its page v3 session (16 hex digits) and
	// the series ids defined in it; empty and 0 without one.
	Session       string `json:"session,omitempty"`
	SessionSeries uint64 `json:"session_series"`
}

// Stats returns a snapshot.
func (s *Server) Stats() ServerStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expireLocked()
	st := ServerStats{Producer: s.opts.ID, Incarnation: s.Incarnation(), Rejected: s.rejected, LastError: s.lastErr,
		MaxCollectors: s.opts.MaxCollectors, Expired: s.expired, Refused: s.refused, Sessions: s.sessions,
		Collectors: map[string]CollectorStats{}, BufferStats: s.buf.stats()}
	st.CursorTTL = "off"
	if s.opts.CursorTTL > 0 {
		st.CursorTTL = s.opts.CursorTTL.String()
	}
	for id := range s.assigned {
		st.Assigned = append(st.Assigned, id)
	}
	slices.Sort(st.Assigned)
	for id, c := range s.buf.cursors {
		cs := CollectorStats{LastRequest: c.lastSeen, Pinned: c.pinned, Unserved: s.buf.tail() - max(c.next, s.buf.head), Acked: c.acked}
		if !c.pinned && s.opts.CursorTTL > 0 {
			cs.Expires = c.lastSeen.Add(s.opts.CursorTTL)
		}
		if c.page != nil {
			cs.Outstanding = len(c.page.page.Samples)
		}
		if c.sess != nil {
			cs.Session, cs.SessionSeries = fmt.Sprintf("%016x", c.sess.id), c.sess.next
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

// PageRequest is one collector's request for a page.
type PageRequest struct {
	Collector string
	Token     string // acknowledges the outstanding page when it names it
	Limit     int    // samples; 0 or above MaxPageSamples means MaxPageSamples
	// MaxBytes, when positive, bounds the encoded page body (in the encoding
	// Binary selects); a single sample larger than it is served alone.
	MaxBytes int
	Binary   bool
	// Version is the binary page version served (with Binary): 3 for a
	// session dictionary, 2 for a per-page series dictionary, else 1.
	Version int
	// Session and Known (page version 3) name the session the collector
	// holds and how many of its series ids it has; a zero Session starts a
	// new session (session.go).
	Session uint64
	Known   uint64
}

// ServePage serves a collector as the HTTP endpoint does (for embedding and
// tests). It fails with ErrCollectorNotAssigned or ErrTooManyCollectors when
// the collector may not have a cursor; then nothing changed.
//
// A version 3 request (Binary, Version 3) is served in the cursor's
// session as the HTTP endpoint serves it (ids are assigned); the Page
// returned holds the samples, not their encoding.
func (s *Server) ServePage(ctx context.Context, req PageRequest) (Page, error) {
	p, _, err := s.servePage(ctx, req, nil)
	return p, err
}

// servePage serves req; for a binary version 2 or 3 request it also
// appends the page's encoding to body, made under the lock as the page is
// cut (once), and for version 3 because it assigns the session's ids.
func (s *Server) servePage(ctx context.Context, req PageRequest, body []byte) (Page, []byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expireLocked()
	c, err := s.admitLocked(req.Collector)
	if err != nil {
		return Page{}, body, err
	}
	limit := req.Limit
	if limit <= 0 || limit > s.opts.MaxPageSamples {
		limit = s.opts.MaxPageSamples
	}
	acked := c.page != nil && req.Token != "" && req.Token == c.page.token
	if c.page == nil || acked {
		s.collect(ctx) // only when a new page will be made
	}
	lim := serveLimits{samples: limit, bytes: req.MaxBytes}
	v3 := req.Binary && req.Version == PageVersion3
	if !v3 {
		// A cursor asking for another encoding has no use for its
		// dictionary; a later v3 request starts a new session anyway.
		c.sess = nil
		if req.Binary && req.Version == PageVersion2 {
			lim.cut = &s.enc2
			p := s.buf.serve(c, req.Token, lim, s.now(), s.opts.ID)
			p.Version = PageVersion2
			body = s.enc2.appendPage(body, &p)
			s.enc2.release()
			return p, body, nil
		}
		lim.sizer = s.sizerLocked(req)
		return s.buf.serve(c, req.Token, lim, s.now(), s.opts.ID), body, nil
	}
	if acked {
		s.buf.releasePage(c) // before the session check: an ack makes acked = next
	}
	if reason := pickSession(c, req.Session, req.Known, s.opts.MaxSessionSeries); reason != "" {
		s.sessions++
		if reason != sessionNone {
			s.log.Debug("new page session", "collector", req.Collector, "reason", reason)
		}
	}
	s.enc3.ss = c.sess
	lim.cut = &s.enc3
	p := s.buf.serve(c, req.Token, lim, s.now(), s.opts.ID)
	p.Version = PageVersion3
	body = s.enc3.appendPage(body, &p) // sets p.Session
	s.enc3.release()
	return p, body, nil
}

// sizerLocked returns the server's page sizer for req's encoding (JSON or
// binary version 1), reused from page to page.
func (s *Server) sizerLocked(req PageRequest) *pageSizer {
	if req.Binary {
		s.sizers[1].binary = true
		return &s.sizers[1]
	}
	return &s.sizers[0]
}

// Ack releases a collector's outstanding page if token names it. It never
// creates a cursor.
func (s *Server) Ack(collector, token string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.ack(collector, token, s.now())
}

// HTTP API (see DESIGN.md for an example exchange):
//
//	GET    /v1/collectors/:collector/page?token=T&limit=N&max_bytes=B&session=S&known=K   serve a page (Accept: JSON, binary v1, v2 or v3; session and known for v3)
//	POST   /v1/collectors/:collector/ack?token=T                        release the outstanding page
//	DELETE /v1/collectors/:collector                                    remove a collector's cursor
//	GET    /v1/stats                                                    ServerStats as JSON
//	GET    /-/healthy                                                   liveness: 200 while it serves
//	GET    /-/ready                                                     readiness: 200 while it serves (it holds no outside dependency)
//	GET    /metrics                                                     Prometheus metrics, when ServerOptions.Gatherer is set
//
// Every /v1 route sits behind the bearer token when one is configured; the
// health routes do not (probes carry no token, and they reveal nothing).

// Handler returns the HTTP handler serving collectors.
func (s *Server) Handler() http.Handler {
	r := httprouter.New()
	r.GET("/v1/collectors/:collector/page", s.auth(s.handlePage))
	r.POST("/v1/collectors/:collector/ack", s.auth(s.handleAck))
	r.DELETE("/v1/collectors/:collector", s.auth(s.handleDelete))
	r.GET("/v1/stats", s.auth(s.handleStats))
	health := func(key string) httprouter.Handle {
		return func(w http.ResponseWriter, _ *http.Request, _ httprouter.Params) {
			w.Header().Set("Content-Type", ContentTypeJSON)
			json.NewEncoder(w).Encode(map[string]bool{key: true})
		}
	}
	r.GET("/-/healthy", health("healthy"))
	r.GET("/-/ready", health("ready"))
	if s.opts.Gatherer != nil {
		r.Handler(http.MethodGet, "/metrics", promhttp.HandlerFor(s.opts.Gatherer, promhttp.HandlerOpts{}))
	}
	r.NotFound = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		httpError(w, http.StatusNotFound, "no such endpoint; see /v1/collectors/{collector}/page, /v1/collectors/{collector}/ack, DELETE /v1/collectors/{collector}, /v1/stats, /-/healthy, /-/ready")
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

// auth refuses a request without the bearer token before its handler runs,
// so an unauthenticated request never reaches the buffer.
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
	if !ids.Valid(id) {
		httpError(w, http.StatusBadRequest, fmt.Sprintf("collector id %q must be %s", id, ids.Rule))
		return "", "", false
	}
	token := r.URL.Query().Get("token")
	if len(token) > 256 {
		httpError(w, http.StatusBadRequest, "token longer than 256 characters")
		return "", "", false
	}
	return id, token, true
}

func positiveParam(w http.ResponseWriter, r *http.Request, name string) (int, bool) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return 0, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		httpError(w, http.StatusBadRequest, fmt.Sprintf("%s %q must be a positive integer", name, v))
		return 0, false
	}
	return n, true
}

// refusal maps a cursor admission error to its status.
func refusal(w http.ResponseWriter, err error) {
	status := http.StatusForbidden
	if errors.Is(err, ErrTooManyCollectors) {
		status = http.StatusTooManyRequests
	}
	httpError(w, status, err.Error())
}

func (s *Server) handlePage(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
	id, token, ok := s.collectorParams(w, r, ps)
	if !ok {
		return
	}
	limit, ok := positiveParam(w, r, "limit")
	if !ok {
		return
	}
	maxBytes, ok := positiveParam(w, r, "max_bytes")
	if !ok {
		return
	}
	ct := negotiatePage(r.Header.Get("Accept"))
	req := PageRequest{Collector: id, Token: token, Limit: limit, MaxBytes: maxBytes, Binary: ct != ContentTypeJSON, Version: PageVersion}
	switch ct {
	case ContentTypeBinaryV2:
		req.Version = PageVersion2
	case ContentTypeBinaryV3:
		req.Version = PageVersion3
		if req.Session, req.Known, ok = sessionParams(w, r); !ok {
			return
		}
	}
	if ct == ContentTypeBinaryV3 || ct == ContentTypeBinaryV2 {
		bp := pageBodies.Get().(*[]byte)
		p, body, err := s.servePage(r.Context(), req, (*bp)[:0])
		if err != nil {
			pageBodies.Put(bp)
			refusal(w, err)
			return
		}
		setPageHeaders(w.Header(), &p)
		w.Header().Set("Content-Type", ct)
		// Announced, so the collector reads the body into one buffer of
		// its size instead of growing one (net/http would send a body
		// larger than its chunking buffer without a length).
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body)
		if cap(body) <= 16<<20 { // one huge page must not stay pinned
			*bp = body
			pageBodies.Put(bp)
		}
		return
	}
	p, err := s.ServePage(r.Context(), req)
	if err != nil {
		refusal(w, err)
		return
	}
	setPageHeaders(w.Header(), &p)
	switch ct {
	case ContentTypeBinary:
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

// Response headers of a page: its token, sample count and incarnation, in
// both encodings. A collector whose body limit the page exceeds reads them
// instead of the body, so it can acknowledge a page of one sample that can
// never fit, or ask for fewer samples, whatever the encoding (a JSON body
// cannot be read in part).
const (
	HeaderToken       = "X-Holdfast-Token"
	HeaderSamples     = "X-Holdfast-Samples"
	HeaderIncarnation = "X-Holdfast-Incarnation"
)

func setPageHeaders(h http.Header, p *Page) {
	if p.Token != "" {
		h.Set(HeaderToken, p.Token)
	}
	h.Set(HeaderSamples, strconv.Itoa(len(p.Samples)))
	h.Set(HeaderIncarnation, p.Incarnation)
}

// pageBodies keep the buffers v2 and v3 pages are encoded into.
var pageBodies = sync.Pool{New: func() any { return new([]byte) }}

// sessionParams reads a v3 request's session (16 lowercase hex digits)
// and known (decimal) parameters; both absent means no session.
func sessionParams(w http.ResponseWriter, r *http.Request) (session, known uint64, ok bool) {
	q := r.URL.Query()
	if v := q.Get("session"); v != "" {
		var err error
		if session, err = strconv.ParseUint(v, 16, 64); err != nil || len(v) != 16 || strings.ToLower(v) != v {
			httpError(w, http.StatusBadRequest, fmt.Sprintf("session %q must be 16 lowercase hexadecimal digits", v))
			return 0, 0, false
		}
	}
	if v := q.Get("known"); v != "" {
		var err error
		if known, err = strconv.ParseUint(v, 10, 64); err != nil {
			httpError(w, http.StatusBadRequest, fmt.Sprintf("known %q must be a decimal count of series ids", v))
			return 0, 0, false
		}
	}
	return session, known, true
}

// negotiatePage picks the page encoding for an Accept header: the
// acceptable one (q > 0) with the highest q-value, ties going to binary
// version 3, then 2, then 1, then JSON. JSON is the default (no Accept, or
// nothing known in it), so a person with curl gets something readable.
func negotiatePage(accept string) string {
	best, bestQ, bestRank := ContentTypeJSON, -1.0, 0
	for _, part := range strings.Split(accept, ",") {
		mt, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		mt = strings.ToLower(strings.TrimSpace(mt))
		rank := 0
		switch mt {
		case ContentTypeBinaryV3:
			rank = 4
		case ContentTypeBinaryV2:
			rank = 3
		case ContentTypeBinary:
			rank = 2
		case ContentTypeJSON:
			rank = 1
		default:
			continue
		}
		q := 1.0
		for _, p := range strings.Split(params, ";") {
			k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
			if strings.EqualFold(strings.TrimSpace(k), "q") {
				if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil && f >= 0 && f <= 1 {
					q = f
				}
			}
		}
		if q == 0 {
			continue
		}
		if q > bestQ || (q == bestQ && rank > bestRank) {
			best, bestQ, bestRank = mt, q, rank
		}
	}
	return best
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
	if err := s.mayServe(id); err != nil {
		refusal(w, err)
		return
	}
	released := s.Ack(id, token)
	w.Header().Set("Content-Type", ContentTypeJSON)
	if !released {
		w.WriteHeader(http.StatusConflict)
		json.NewEncoder(w).Encode(map[string]any{"released": false, "error": "token does not name this collector's outstanding page (stale, foreign, from another incarnation, or its cursor expired); nothing released"})
		return
	}
	json.NewEncoder(w).Encode(map[string]any{"released": true})
}

func (s *Server) handleDelete(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
	id, _, ok := s.collectorParams(w, r, ps)
	if !ok {
		return
	}
	if !s.DeleteCollector(id) {
		httpError(w, http.StatusNotFound, fmt.Sprintf("no cursor for collector %q", id))
		return
	}
	w.Header().Set("Content-Type", ContentTypeJSON)
	json.NewEncoder(w).Encode(map[string]any{"deleted": true})
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

// Serve serves on ln until ctx ends, expiring idle cursors meanwhile.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	go s.runExpiry(ctx)
	return httpserve.Serve(ctx, ln, s.Handler(), 60*time.Second)
}
