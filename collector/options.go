package collector

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/holdfast/holdfast/forwarder"
	pa "github.com/holdfast/holdfast/producerapi"
)

// ProducerConfig names one producer to collect from.
type ProducerConfig struct {
	ID        string        `json:"id,omitempty"` // default: the URL
	URL       string        `json:"url"`          // base URL of the producer's HTTP server
	Interval  time.Duration `json:"interval,omitempty"`
	AuthToken string        `json:"auth_token,omitempty"`
}

// Options configure a Collector. Zero values mean defaults.
type Options struct {
	DataDir     string // holds wal/ and state/
	CollectorID string // default: the id stored in state, or a new one
	Producers   []ProducerConfig

	WALBudgetBytes int64 // default 4 GiB; appends stop (and acks with them) above it
	// WALReserveBytes is free space the WAL leaves on the data directory's
	// file system for the state store (Pebble panics when a write fails);
	// appends stop below it as above the budget. Default 16 MiB; negative:
	// none.
	WALReserveBytes int64
	DefaultInterval time.Duration // default 10 s
	PageLimit       int           // samples per page asked; default 10,000
	RequestTimeout  time.Duration // one page request; default 10 s
	BackoffMax      time.Duration // cap of the retry delay for a failing producer; default 1 min
	StallAfter      time.Duration // unhealthy when the forwarder made no progress this long with a backlog; default 2 min
	ReadyGrace      time.Duration // /-/ready waits this long after start for the forwarder to reach ClickHouse; default 30 s
	InsertHungAfter time.Duration // /-/ready and /healthz fail while one ClickHouse insert runs longer; default 30 s
	// DepartedRetention keeps a departed producer's last status, and why
	// it left, in /v1/status (departed.go); default 1 h.
	DepartedRetention time.Duration
	DrainTimeout      time.Duration // on shutdown, how long to try delivering the backlog; default 10 s

	// Memory bounds (see DESIGN.md, "Collector memory"). A producer's page is
	// bounded by PageLimit samples and MaxPageBytes bytes (asked for as
	// limit and max_bytes, and enforced by the decoder before it allocates);
	// after a larger page the collector asks for smaller ones, and a single
	// sample larger than MaxPageBytes is quarantined as too_large. All
	// producer loops together hold at most MaxInflightBytes of pages; a drain
	// takes at most MaxDrainPages pages and MaxDrainTime per interval; at
	// most MaxProducers producers run.
	MaxPageBytes     int64         // encoded bytes of one page; default 8 MiB
	MaxInflightBytes int64         // pages being fetched, decoded and written, all producers together; default 64 MiB (at least MaxPageBytes)
	MaxDrainPages    int           // pages per producer per interval; default 100
	MaxDrainTime     time.Duration // time per producer per interval; default: the producer's interval
	MaxProducers     int           // static and assigned together; default 10,000
	// QuarantineBudgetBytes bounds the quarantine of refused samples and
	// records; default 256 MiB, negative: no bound (see package quarantine).
	QuarantineBudgetBytes int64

	// RegistryURL, when set, makes the collector register there and take
	// its producers from the registry's assignment (static Producers stay).
	RegistryURL      string
	AdvertiseAddr    string        // this collector's admin URL, told to the registry
	RefreshInterval  time.Duration // assignment refresh; default 15 s
	RegistryPageSize int           // producers per listing page; default 1,000
	RegistryToken    string        // bearer token sent to the registry (its --auth-token)
	ProducerToken    string        // bearer token sent to registry-assigned producers

	Forwarder  forwarder.Options // Addr, Database, batching; its Registerer and Logger are the collector's
	Limits     pa.Limits
	Registerer prometheus.Registerer
	Logger     *slog.Logger
}

func (o Options) withDefaults() (Options, error) {
	if o.DataDir == "" {
		return o, errors.New("collector: DataDir is required")
	}
	if o.WALBudgetBytes == 0 {
		o.WALBudgetBytes = 4 << 30
	}
	if o.WALReserveBytes == 0 {
		o.WALReserveBytes = 16 << 20
	}
	if o.DefaultInterval == 0 {
		o.DefaultInterval = 10 * time.Second
	}
	if o.PageLimit == 0 {
		o.PageLimit = 10_000
	}
	if o.RequestTimeout == 0 {
		o.RequestTimeout = 10 * time.Second
	}
	if o.BackoffMax == 0 {
		o.BackoffMax = time.Minute
	}
	if o.StallAfter == 0 {
		o.StallAfter = 2 * time.Minute
	}
	if o.DepartedRetention <= 0 {
		o.DepartedRetention = time.Hour
	}
	if o.InsertHungAfter == 0 {
		o.InsertHungAfter = 30 * time.Second
	}
	if o.ReadyGrace == 0 {
		o.ReadyGrace = 30 * time.Second
	}
	if o.DrainTimeout == 0 {
		o.DrainTimeout = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.MaxPageBytes == 0 {
		o.MaxPageBytes = 8 << 20
	}
	if o.MaxInflightBytes == 0 {
		o.MaxInflightBytes = 64 << 20
	}
	if o.MaxInflightBytes < o.MaxPageBytes {
		return o, fmt.Errorf("collector: the in-flight bound (%d bytes) is below one page (%d bytes)", o.MaxInflightBytes, o.MaxPageBytes)
	}
	if o.MaxDrainPages == 0 {
		o.MaxDrainPages = 100
	}
	if o.MaxProducers == 0 {
		o.MaxProducers = 10_000
	}
	if o.MaxPageBytes < 0 || o.MaxDrainPages < 0 || o.MaxDrainTime < 0 || o.MaxProducers < 0 || o.PageLimit < 0 {
		return o, errors.New("collector: negative page, drain or producer bound")
	}
	if o.RefreshInterval == 0 {
		o.RefreshInterval = 15 * time.Second
	}
	if o.RegistryPageSize == 0 {
		o.RegistryPageSize = 1000
	}
	seen := map[string]bool{}
	ps := make([]ProducerConfig, len(o.Producers))
	for i, p := range o.Producers {
		p, err := o.normalize(p)
		if err != nil {
			return o, err
		}
		if seen[p.ID] {
			return o, fmt.Errorf("collector: producer %s is listed twice", p.ID)
		}
		seen[p.ID] = true
		ps[i] = p
	}
	o.Producers = ps
	if len(ps) > o.MaxProducers {
		return o, fmt.Errorf("%w: %d static producers configured", errTooMany(o.MaxProducers), len(ps))
	}
	return o, nil
}

// normalize checks and defaults one producer's configuration.
func (o Options) normalize(p ProducerConfig) (ProducerConfig, error) {
	u, err := url.Parse(p.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return p, fmt.Errorf("collector: producer URL %q must be http(s)://host:port", p.URL)
	}
	if p.ID == "" {
		p.ID = p.URL
	}
	if p.Interval == 0 {
		p.Interval = o.DefaultInterval
	}
	if p.Interval < 10*time.Millisecond {
		return p, fmt.Errorf("collector: producer %s: interval %v is below 10ms", p.ID, p.Interval)
	}
	return p, nil
}
