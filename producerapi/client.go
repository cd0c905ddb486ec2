package producerapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Client is a collector's connection to one producer. It is safe for
// concurrent use, though a collector uses one per producer loop.
type Client struct {
	BaseURL     string       // e.g. http://127.0.0.1:12345
	CollectorID string       // names this collector's cursor at the producer
	AuthToken   string       // sent as a bearer token when set
	HTTP        *http.Client // default: http.DefaultClient (set timeouts per request with ctx)
	// MaxPageBytes bounds a response body; default 256 MiB.
	MaxPageBytes int64
	// JSON asks for JSON pages instead of binary ones.
	JSON bool
	// BinaryVersion 1 asks for binary pages of version 1 only (as
	// collectors did before version 2), 2 for version 2 first (as
	// collectors did before version 3); 0 asks for version 3 first.
	BinaryVersion int
	// Decoder, if set, decodes binary pages with less garbage (see
	// SampleDecoder); the Client must then not Fetch concurrently.
	Decoder *SampleDecoder
}

// StatusError is a non-2xx answer from a producer.
type StatusError struct {
	Code int
	Msg  string
}

func (e *StatusError) Error() string { return fmt.Sprintf("producer answered %d: %s", e.Code, e.Msg) }

func (c *Client) do(ctx context.Context, method, path string, q url.Values, accept string) (*http.Response, error) {
	u := strings.TrimSuffix(c.BaseURL, "/") + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return nil, err
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	if c.AuthToken != "" {
		req.Header.Set("Authorization", "Bearer "+c.AuthToken)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		var e struct{ Error string }
		msg := strings.TrimSpace(string(body))
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		return nil, &StatusError{Code: resp.StatusCode, Msg: msg}
	}
	return resp, nil
}

// FetchRequest is one page request.
type FetchRequest struct {
	// Token acknowledges the previous page ("" asks for the outstanding
	// page again, or a new one).
	Token string
	// Limit is the most samples the page may hold (0: the producer's
	// default).
	Limit int
	// MaxBytes is the most bytes of encoded page body this collector takes
	// (0: the client's MaxPageBytes). A producer cuts pages to fit, re-cutting
	// a held page that is larger; only a page of one sample may exceed it.
	MaxBytes int
	// Session and Known name the page v3 session the collector holds and
	// how many of its series ids it has (sent when Session is not 0; a
	// request without a session starts a new one).
	Session uint64
	Known   uint64
}

// ErrPageTooLarge is the sentinel every *PageTooLargeError wraps.
var ErrPageTooLarge = errors.New("producerapi: page larger than the body limit")

// PageTooLargeError is a page body over the client's MaxPageBytes. The body
// was not read past the limit; what its head said is kept so the collector
// can ask for smaller pages or, for a page of one sample that can never fit,
// acknowledge it (Token is "" when the head could not be read).
type PageTooLargeError struct {
	Limit       int64 // the body limit
	Producer    string
	Incarnation string
	Token       string
	Samples     int // samples the page says it holds, -1 if unknown
}

func (e *PageTooLargeError) Error() string {
	return fmt.Sprintf("producerapi: page from %q larger than the body limit of %d bytes", e.Producer, e.Limit)
}

func (e *PageTooLargeError) Unwrap() []error {
	return []error{ErrPageTooLarge, ErrPageLimit, ErrMalformed}
}

// PageByteLimit is the body limit Fetch enforces (MaxPageBytes or its default).
func (c *Client) PageByteLimit() int64 {
	if c.MaxPageBytes <= 0 {
		return 256 << 20
	}
	return c.MaxPageBytes
}

// Accept headers of a page request. A collector prefers binary version 3,
// takes version 2 or 1 from producers that predate it, and JSON from
// anything.
const (
	acceptPages   = ContentTypeBinaryV3 + ", " + ContentTypeBinaryV2 + ";q=0.95, " + ContentTypeBinary + ";q=0.9, " + ContentTypeJSON + ";q=0.5"
	acceptPagesV2 = ContentTypeBinaryV2 + ", " + ContentTypeBinary + ";q=0.9, " + ContentTypeJSON + ";q=0.5"
	acceptPagesV1 = ContentTypeBinary + ", " + ContentTypeJSON + ";q=0.5"
)

// Fetch asks for a page. The page is decoded into p (its Samples slice is
// reused); the raw body size is returned. A body over the limit is a
// *PageTooLargeError.
func (c *Client) Fetch(ctx context.Context, req FetchRequest, p *Page) (int, error) {
	n, _, err := c.fetch(ctx, req, p, false)
	return n, err
}

// FetchRaw is Fetch that leaves a binary version 2 or 3 page undecoded: it
// reads the page's head into p (p.Samples is emptied; p.Version and, for
// version 3, p.Session are set) and returns its block (aliasing the body)
// for the caller to check with a BlockScanner (Reset or Reset3, bounded by
// the Decoder's limits) and to check that a page with samples has a token.
// Pages of other encodings are decoded into p as Fetch does, and block is
// nil.
//
// Fetch decodes a version 3 page only when it is self-contained (its
// samples name only ids its own definitions give: a new session, or a
// session's first page); otherwise it fails with ErrMalformed, since the
// earlier definitions are the caller's (a collector uses FetchRaw).
func (c *Client) FetchRaw(ctx context.Context, req FetchRequest, p *Page) (n int, block []byte, err error) {
	return c.fetch(ctx, req, p, true)
}

func (c *Client) fetch(ctx context.Context, req FetchRequest, p *Page, raw bool) (int, []byte, error) {
	q := url.Values{}
	if req.Token != "" {
		q.Set("token", req.Token)
	}
	if req.Limit > 0 {
		q.Set("limit", strconv.Itoa(req.Limit))
	}
	max := c.PageByteLimit()
	if req.MaxBytes > 0 && int64(req.MaxBytes) < max {
		max = int64(req.MaxBytes)
	}
	q.Set("max_bytes", strconv.FormatInt(max, 10))
	if req.Session != 0 {
		q.Set("session", fmt.Sprintf("%016x", req.Session))
		q.Set("known", strconv.FormatUint(req.Known, 10))
	}
	accept := acceptPages
	switch {
	case c.JSON:
		accept = ContentTypeJSON
	case c.BinaryVersion == 1:
		accept = acceptPagesV1
	case c.BinaryVersion == 2:
		accept = acceptPagesV2
	}
	resp, err := c.do(ctx, http.MethodGet, "/v1/collectors/"+url.PathEscape(c.CollectorID)+"/page", q, accept)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	// The body limit is the client's, not the request's: a page over what
	// was asked but within the limit is still taken (a producer that does
	// not know max_bytes yet, or a page of one large sample). Past it,
	// readPageBody keeps at most the head, so the page can still be
	// acknowledged (one sample that can never fit) or asked for smaller.
	limit := c.PageByteLimit()
	body, err := readPageBody(resp, limit)
	if err != nil && !errors.Is(err, ErrPageLimit) {
		return len(body), nil, err
	}
	ct, _, _ := strings.Cut(resp.Header.Get("Content-Type"), ";")
	ct = strings.TrimSpace(ct)
	if err != nil { // over the limit: body holds at most its head
		e := &PageTooLargeError{Limit: limit, Samples: -1}
		if ct == ContentTypeBinary || ct == ContentTypeBinaryV2 || ct == ContentTypeBinaryV3 {
			var head Page
			if n, err := decodePageHead(body, &head); err == nil {
				e.Producer, e.Incarnation, e.Token, e.Samples = head.Producer, head.Incarnation, head.Token, n
			}
		}
		// The headers say the same for either encoding (a JSON body cannot
		// be read in part); they are preferred when present.
		if n, err := strconv.Atoi(resp.Header.Get(HeaderSamples)); err == nil && n >= 0 {
			e.Samples = n
			e.Token = resp.Header.Get(HeaderToken)
			if inc := resp.Header.Get(HeaderIncarnation); inc != "" {
				e.Incarnation = inc
			}
		}
		return int(min(limit+1, math.MaxInt32)), nil, e
	}
	switch ct {
	case ContentTypeBinaryV2, ContentTypeBinaryV3:
		if raw {
			var lim *PageLimits
			if c.Decoder != nil {
				lim = c.Decoder.Limits
			}
			block, _, err := ScanPageHead(body, p, lim)
			p.Samples = p.Samples[:0]
			return len(body), block, err
		}
		fallthrough
	case ContentTypeBinary:
		if c.Decoder != nil {
			err = c.Decoder.DecodePage(body, p)
		} else {
			err = DecodePage(body, p)
		}
	case ContentTypeJSON:
		if c.Decoder != nil {
			err = c.Decoder.UnmarshalPageJSON(body, p)
		} else {
			err = UnmarshalPageJSON(body, p)
		}
	default:
		err = fmt.Errorf("%w: page with content type %q", ErrMalformed, ct)
	}
	if err != nil && ct == ContentTypeBinaryV3 {
		err = fmt.Errorf("%w (Fetch decodes a version 3 page only when it defines every id it names; a continued session's page needs FetchRaw and the session's definitions)", err)
	}
	return len(body), nil, err
}

// decodePageHead reads a binary page's fields before its samples and the
// sample count at the head of its block.
// For versions 2 and 3 the sample count follows the series definitions,
// which the head may not hold: it is -1 then unless they are all there.
func decodePageHead(b []byte, p *Page) (int, error) {
	if len(b) >= 5 && [4]byte(b[:4]) == pageMagic && (b[4] == PageVersion2 || b[4] == PageVersion3) {
		off, err := scanPageHead(b, p, nil)
		if err != nil {
			return 0, err
		}
		var sc BlockScanner
		if b[4] == PageVersion3 {
			err = sc.Reset3(b[off:], nil)
		} else {
			err = sc.Reset(b[off:], nil)
		}
		if err != nil {
			return -1, nil
		}
		return sc.NumSamples(), nil
	}
	if len(b) < 5 || [4]byte(b[:4]) != pageMagic || b[4] != PageVersion {
		return 0, fmt.Errorf("%w: not a binary page of version %d", ErrMalformed, PageVersion)
	}
	d := &decoder{b: b, off: 5, sample: -1}
	p.Producer, p.Incarnation, p.Token = d.str(), d.str(), d.str()
	p.Dropped = d.uvarint()
	p.More = d.u8()&1 != 0
	if v := d.u8(); d.err == nil && v != BlockVersion {
		return 0, fmt.Errorf("%w: unsupported block version %d", ErrMalformed, v)
	}
	n := d.uvarint()
	if d.err != nil || n > uint64(len(b)) {
		return 0, fmt.Errorf("%w: unreadable page head", ErrMalformed)
	}
	return int(n), nil
}

// Ack releases the outstanding page without fetching the next one. It
// reports false (and no error) when the producer did not recognise the token.
func (c *Client) Ack(ctx context.Context, token string) (bool, error) {
	resp, err := c.do(ctx, http.MethodPost, "/v1/collectors/"+url.PathEscape(c.CollectorID)+"/ack", url.Values{"token": {token}}, ContentTypeJSON)
	if se, ok := err.(*StatusError); ok && se.Code == http.StatusConflict {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	resp.Body.Close()
	return true, nil
}

// Stats fetches the producer's statistics.
func (c *Client) Stats(ctx context.Context) (ServerStats, error) {
	var st ServerStats
	resp, err := c.do(ctx, http.MethodGet, "/v1/stats", nil, ContentTypeJSON)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	err = json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&st)
	return st, err
}
