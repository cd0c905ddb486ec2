package producerapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
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

// Fetch asks for a page. token acknowledges the previous page ("" asks
// for the outstanding page again, or a new one). The page is decoded into p
// (its Samples slice is reused); the raw body size is returned.
func (c *Client) Fetch(ctx context.Context, token string, limit int, p *Page) (int, error) {
	q := url.Values{}
	if token != "" {
		q.Set("token", token)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	accept := ContentTypeBinary + ", " + ContentTypeJSON + ";q=0.5"
	if c.JSON {
		accept = ContentTypeJSON
	}
	resp, err := c.do(ctx, http.MethodGet, "/v1/collectors/"+url.PathEscape(c.CollectorID)+"/page", q, accept)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	max := c.MaxPageBytes
	if max <= 0 {
		max = 256 << 20
	}
	body, err := readPageBody(resp, max)
	if err != nil {
		return len(body), err
	}
	ct, _, _ := strings.Cut(resp.Header.Get("Content-Type"), ";")
	switch strings.TrimSpace(ct) {
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
	return len(body), err
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
