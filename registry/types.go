package registry

import (
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/holdfast/holdfast/internal/ids"
)

// Producer is a registered producer and its assignment.
type Producer struct {
	ID           string    `json:"id"`
	Address      string    `json:"address"`  // base URL collectors fetch pages from
	IntervalNs   int64     `json:"interval"` // collection interval in nanoseconds
	Kind         string    `json:"kind,omitempty"`
	Collectors   []string  `json:"collectors"` // assigned collector ids
	LeaseExpires time.Time `json:"lease_expires"`
	Registered   time.Time `json:"registered"`
}

// Collector is a registered collector.
type Collector struct {
	ID           string    `json:"id"`
	Address      string    `json:"address"` // its admin API, informational
	LeaseExpires time.Time `json:"lease_expires"`
	Registered   time.Time `json:"registered"`
}

// CollectorRef names a collector in a producer's registration answer.
type CollectorRef struct {
	ID      string `json:"id"`
	Address string `json:"address"`
}

// ProducerRegistration is the body of POST /v1/producers.
type ProducerRegistration struct {
	ID       string `json:"id"`
	Address  string `json:"address"`
	Interval string `json:"interval"` // a Go duration, e.g. "10s"
	Kind     string `json:"kind,omitempty"`
}

// ProducerAssignment answers a producer's registration or renewal.
type ProducerAssignment struct {
	ID           string         `json:"id"`
	Collectors   []CollectorRef `json:"collectors"`
	LeaseSeconds float64        `json:"lease_seconds"` // renew well before it runs out
}

// CollectorRegistration is the body of POST /v1/collectors.
type CollectorRegistration struct {
	ID      string `json:"id"`
	Address string `json:"address"`
}

// CollectorLease answers a collector's registration or renewal.
type CollectorLease struct {
	ID           string  `json:"id"`
	LeaseSeconds float64 `json:"lease_seconds"`
}

// AssignedProducer is one item of a collector's producer listing.
type AssignedProducer struct {
	ID       string `json:"id"`
	Address  string `json:"address"`
	Interval string `json:"interval"`
	Kind     string `json:"kind,omitempty"`
}

// ProducerPage is one page of GET /v1/collectors/{id}/producers.
type ProducerPage struct {
	Items         []AssignedProducer `json:"items"`
	NextPageToken string             `json:"next_page_token,omitempty"` // "" on the last page
}

// ErrInvalid is wrapped by every validation error (HTTP 400).
var ErrInvalid = errors.New("registry: invalid request")

// ErrNotFound is returned for an unknown producer or collector (HTTP 404).
var ErrNotFound = errors.New("registry: not found")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

func validateID(what, id string) error {
	if !ids.Valid(id) {
		return invalid("%s id %q must be %s", what, id, ids.Rule)
	}
	return nil
}

func validateAddress(addr string) error {
	u, err := url.Parse(addr)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || len(addr) > 512 {
		return invalid("address %q must be an http(s)://host:port URL of at most 512 characters", addr)
	}
	return nil
}

func parseInterval(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil || d < 10*time.Millisecond || d > 24*time.Hour {
		return 0, invalid("interval %q must be a duration between 10ms and 24h", s)
	}
	return d, nil
}
