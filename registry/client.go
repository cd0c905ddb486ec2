package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	pa "github.com/holdfast/holdfast/producerapi"
)

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

// Client talks to the registry. It is safe for concurrent use.
type Client struct {
	BaseURL string
	HTTP    *http.Client // default http.DefaultClient; deadlines come from ctx
	// Token, if set, is sent as a bearer token (the registry's --auth-token).
	Token string
}

// APIError is a non-2xx answer.
type APIError struct {
	Code int
	Msg  string
}

func (e *APIError) Error() string { return fmt.Sprintf("registry answered %d: %s", e.Code, e.Msg) }

func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(c.BaseURL, "/")+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var e struct{ Error string }
		msg := strings.TrimSpace(string(data))
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		return &APIError{Code: resp.StatusCode, Msg: msg}
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("registry: decoding %s %s: %w", method, path, err)
		}
	}
	return nil
}

// RegisterProducer registers or renews a producer.
func (c *Client) RegisterProducer(ctx context.Context, reg ProducerRegistration) (ProducerAssignment, error) {
	var a ProducerAssignment
	return a, c.do(ctx, http.MethodPost, "/v1/producers", reg, &a)
}

// DeleteProducer deregisters a producer.
func (c *Client) DeleteProducer(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/v1/producers/"+url.PathEscape(id), nil, nil)
}

// RegisterCollector registers or renews a collector.
func (c *Client) RegisterCollector(ctx context.Context, reg CollectorRegistration) (CollectorLease, error) {
	var l CollectorLease
	return l, c.do(ctx, http.MethodPost, "/v1/collectors", reg, &l)
}

// ListAssignedPage fetches one page of a collector's producers.
func (c *Client) ListAssignedPage(ctx context.Context, collector, token string, limit int) (ProducerPage, error) {
	q := url.Values{"limit": {strconv.Itoa(limit)}}
	if token != "" {
		q.Set("page_token", token)
	}
	var p ProducerPage
	return p, c.do(ctx, http.MethodGet, "/v1/collectors/"+url.PathEscape(collector)+"/producers?"+q.Encode(), nil, &p)
}

// ListAllAssigned fetches every page of a collector's producers. Any error,
// at any page, returns the error and no producers: a partial listing must
// never be mistaken for the assignment.
func (c *Client) ListAllAssigned(ctx context.Context, collector string, pageSize int) ([]AssignedProducer, error) {
	var all []AssignedProducer
	token := ""
	for pages := 0; ; pages++ {
		if pages > 100_000 {
			return nil, fmt.Errorf("registry: listing did not end after %d pages", pages)
		}
		p, err := c.ListAssignedPage(ctx, collector, token, pageSize)
		if err != nil {
			return nil, fmt.Errorf("registry: listing page %d: %w", pages+1, err)
		}
		all = append(all, p.Items...)
		if p.NextPageToken == "" {
			return all, nil
		}
		token = p.NextPageToken
	}
}

// ListCollectorsPage fetches one page of the registered collectors with
// their load.
func (c *Client) ListCollectorsPage(ctx context.Context, token string, limit int) (CollectorsPage, error) {
	q := url.Values{"limit": {strconv.Itoa(limit)}}
	if token != "" {
		q.Set("page_token", token)
	}
	var p CollectorsPage
	return p, c.do(ctx, http.MethodGet, "/v1/collectors?"+q.Encode(), nil, &p)
}

// ListProducersPage fetches one page of every registered producer.
func (c *Client) ListProducersPage(ctx context.Context, token string, limit int) (ProducersPage, error) {
	q := url.Values{"limit": {strconv.Itoa(limit)}}
	if token != "" {
		q.Set("page_token", token)
	}
	var p ProducersPage
	return p, c.do(ctx, http.MethodGet, "/v1/producers?"+q.Encode(), nil, &p)
}

// reportBatchBytes keeps each schema report well under the registry's body
// limit (maxBody), whatever the schemas look like.
const reportBatchBytes = maxBody - 8<<10

// ReportSchemas records timeseries schemas at the registry, in as many
// requests as it takes to keep each under the body limit, so a producer or
// collector with thousands of schemas never gets 413. It stops at the first
// failed batch; the batches before it were stored (reporting is idempotent,
// so the caller simply reports everything again later). A batch refused for
// conflicts (409) had the rest of its schemas stored: the following batches
// are still sent, and the first conflict is returned at the end.
func (c *Client) ReportSchemas(ctx context.Context, schemas []pa.TimeseriesSchema) error {
	batch := make([]json.RawMessage, 0, 64)
	size := 2
	var conflict error
	send := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := c.do(ctx, http.MethodPost, "/v1/timeseries-schema", batch, nil)
		batch, size = batch[:0], 2
		var ae *APIError
		if errors.As(err, &ae) && ae.Code == http.StatusConflict {
			if conflict == nil {
				conflict = err
			}
			return nil
		}
		return err
	}
	for i := range schemas {
		b, err := json.Marshal(&schemas[i])
		if err != nil {
			return err
		}
		if len(b)+2 > reportBatchBytes {
			return fmt.Errorf("registry: schema of %q is %d bytes encoded, more than a report may hold (%d)", schemas[i].Name, len(b), reportBatchBytes)
		}
		if size+len(b)+1 > reportBatchBytes || len(batch) == maxSchemasPerReport {
			if err := send(); err != nil {
				return err
			}
		}
		batch = append(batch, b)
		size += len(b) + 1
	}
	if err := send(); err != nil {
		return err
	}
	return conflict
}

// SchemasPage fetches one page of the registry's schemas.
func (c *Client) SchemasPage(ctx context.Context, token string, limit int) (SchemaPage, error) {
	q := url.Values{"limit": {strconv.Itoa(limit)}}
	if token != "" {
		q.Set("page_token", token)
	}
	var p SchemaPage
	return p, c.do(ctx, http.MethodGet, "/v1/timeseries-schema?"+q.Encode(), nil, &p)
}

// Schemas lists every schema version the registry knows, page by page.
func (c *Client) Schemas(ctx context.Context) ([]pa.TimeseriesSchema, error) {
	var all []pa.TimeseriesSchema
	token := ""
	for pages := 0; ; pages++ {
		if pages > 100_000 {
			return nil, fmt.Errorf("registry: schema listing did not end after %d pages", pages)
		}
		p, err := c.SchemasPage(ctx, token, 1000)
		if err != nil {
			return nil, err
		}
		all = append(all, p.Items...)
		if p.NextPageToken == "" {
			return all, nil
		}
		token = p.NextPageToken
	}
}
