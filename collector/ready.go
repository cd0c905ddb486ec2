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
}

// Ready reports readiness (GET /-/ready): the WAL takes appends, and the
// forwarder has reached ClickHouse at least once or the collector is
// inside Options.ReadyGrace since start. A ClickHouse address that failed
// the start-up handshake makes it not ready at once, grace or not: waiting
// does not fix a wrong port. Liveness is /-/healthy; /healthz stays the
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
	r.Ready = len(r.Reasons) == 0
	return r
}
