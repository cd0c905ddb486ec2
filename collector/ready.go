package collector

import (
	"fmt"
	"time"
)

// Readiness is the answer of /-/ready: whether this collector can do its
// job now, why not, and the states that are not ill health.
type Readiness struct {
	Ready   bool     `json:"ready"`
	Reasons []string `json:"reasons,omitempty"`
	// Backpressure: the WAL is at its budget and pages are not
	// acknowledged until the forwarder frees space. Producers keep their
	// samples meanwhile, so nothing is lost and the collector stays ready;
	// a load balancer taking it out would not make ClickHouse faster.
	Backpressure bool `json:"backpressure"`
	// ClickHouseReached: the forwarder has had an answer from ClickHouse
	// at least once since start.
	ClickHouseReached bool `json:"clickhouse_reached"`
	// InsertInProgress: seconds the current ClickHouse insert has run (0:
	// none); above Options.InsertHungAfter the collector is not ready.
	InsertInProgress float64 `json:"insert_in_progress_seconds"`
}

// Ready reports readiness (GET /-/ready): the WAL takes appends, and the
// forwarder has reached ClickHouse at least once or the collector is
// inside Options.ReadyGrace since start. A ClickHouse address that failed
// the start-up handshake makes it not ready at once, grace or not: waiting
// does not fix a wrong port. An insert running longer than
// Options.InsertHungAfter (a hung server) makes it not ready too. Liveness is /-/healthy; /healthz stays the
// aggregate (it also fails on a stalled forwarder and a full quarantine).
func (c *Collector) Ready() Readiness {
	ws, fs := c.wal.Stats(), c.fwd.Status()
	c.mu.Lock()
	full := c.mu.walFull
	c.mu.Unlock()
	r := Readiness{Backpressure: full, ClickHouseReached: fs.Reached}
	if ws.Failed != nil {
		r.Reasons = append(r.Reasons, "WAL refuses appends: "+ws.Failed.Error())
	}
	if fs.StartupError != "" {
		r.Reasons = append(r.Reasons, "ClickHouse address failed the start-up check: "+fs.StartupError)
	} else if !fs.Reached {
		if since := time.Since(c.started); since >= c.opts.ReadyGrace {
			msg := fmt.Sprintf("forwarder has not reached ClickHouse in %s since start (grace %s)", since.Round(time.Second), c.opts.ReadyGrace)
			if fs.LastInsertError != "" {
				msg += ": " + fs.LastInsertError
			}
			r.Reasons = append(r.Reasons, msg)
		}
	}
	if why := c.insertHung(); why != "" {
		r.Reasons = append(r.Reasons, why)
	}
	r.InsertInProgress = c.fwd.InsertInProgress().Seconds()
	r.Ready = len(r.Reasons) == 0
	return r
}

// insertHung says why, when the ClickHouse insert in progress has run
// longer than Options.InsertHungAfter: a server that accepts connections
// and never answers (stopped, swapping, wedged) holds an INSERT until the
// connection's read timeout, minutes later; this says so after seconds.
// Collection into the WAL goes on meanwhile.
func (c *Collector) insertHung() string {
	d := c.fwd.InsertInProgress()
	if d <= c.opts.InsertHungAfter {
		return ""
	}
	return fmt.Sprintf("ClickHouse insert in progress for %s (threshold %s): the server accepted the connection and has not answered (collecting into the WAL meanwhile)", d.Round(time.Second), c.opts.InsertHungAfter)
}

// readyGauge is holdfast_collector_ready: Ready as 1 or 0, so an alert
// can say what a load balancer's probe sees.
func (c *Collector) readyGauge() float64 {
	if c.Ready().Ready {
		return 1
	}
	return 0
}
