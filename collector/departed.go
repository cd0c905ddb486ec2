package collector

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/holdfast/holdfast/registry"
)

// A producer that leaves the collector must not vanish without trace: its
// last status stays in /v1/status under "departed" for Options.DepartedRetention
// (default 1 h, at most maxDeparted entries), with why it left. Its metric
// series are deleted (so /metrics does not grow with every producer ever
// seen); holdfast_collector_producers_departed_total{reason} counts them.
//
// Reasons:
//
//	unassigned         the registry's assignment no longer lists it (refined below)
//	moved              the registry assigned it to other collectors (detail names them)
//	expired            its lease ran out at the registry (it stopped renewing: dead or cut off)
//	deregistered       the registry no longer has it and it did not expire (DELETE /v1/producers/{id})
//	removed_by_reload  a configuration reload (SIGHUP) dropped it from the static producers
//	removed_by_api     PUT or DELETE /v1/producers on this collector's admin API dropped it
//
// "unassigned" is what the collector sees; it then asks the registry once
// (GET /v1/producers/{id}?state=expired, then GET /v1/producers/{id}) and
// replaces it with expired, moved or deregistered. When the registry cannot
// be asked, it stays "unassigned" with the error in the detail.
const (
	DepartedUnassigned      = "unassigned"
	DepartedMoved           = "moved"
	DepartedExpired         = "expired"
	DepartedDeregistered    = "deregistered"
	DepartedRemovedByReload = "removed_by_reload"
	DepartedRemovedByAPI    = "removed_by_api"
)

var departReasons = []string{DepartedUnassigned, DepartedMoved, DepartedExpired, DepartedDeregistered, DepartedRemovedByReload, DepartedRemovedByAPI}

// maxDeparted bounds the departed producers kept, whatever the churn.
const maxDeparted = 1000

// DepartedProducer is the last status of a producer that left, and why.
type DepartedProducer struct {
	ProducerStatus
	Left   time.Time `json:"left"`
	Reason string    `json:"reason"`
	Detail string    `json:"detail,omitempty"`
}

// departLocked records p as departed (c.mu held). For a producer the
// registry unassigned it asks the registry why, in the background.
func (c *Collector) departLocked(p *producer, reason string) {
	d := DepartedProducer{ProducerStatus: p.status(), Left: time.Now(), Reason: reason}
	if c.mu.departed == nil {
		c.mu.departed = map[string]DepartedProducer{}
	}
	c.mu.departed[d.ID] = d
	c.pruneDepartedLocked(d.Left)
	if reason == DepartedUnassigned && c.opts.RegistryURL != "" && c.mu.runCtx != nil {
		// Run waits for it with the loops (it ends with runCtx); callers
		// hold assignMu, as loops are started, so no Add follows Run's Wait.
		ctx, id, left := c.mu.runCtx, d.ID, d.Left
		c.loops.Add(1)
		go func() {
			defer c.loops.Done()
			c.askWhyDeparted(ctx, id, left) // counts the reason it finds
		}()
		return
	}
	c.m.departed.WithLabelValues(reason).Inc()
}

func (c *Collector) pruneDepartedLocked(now time.Time) {
	for id, d := range c.mu.departed {
		if now.Sub(d.Left) > c.opts.DepartedRetention {
			delete(c.mu.departed, id)
		}
	}
	for len(c.mu.departed) > maxDeparted {
		oldest := ""
		for id, d := range c.mu.departed {
			if oldest == "" || d.Left.Before(c.mu.departed[oldest].Left) {
				oldest = id
			}
		}
		delete(c.mu.departed, oldest)
	}
}

// askWhyDeparted asks the registry what became of a producer it no longer
// assigns here, and refines the departed record (if it is still the one
// recorded at left).
func (c *Collector) askWhyDeparted(ctx context.Context, id string, left time.Time) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.RequestTimeout)
	defer cancel()
	client := c.registryClient()
	reason, detail := DepartedUnassigned, ""
	var ae *registry.APIError
	if e, err := client.ExpiredProducer(ctx, id); err == nil {
		reason, detail = DepartedExpired, fmt.Sprintf("the registry expired it at %s (%s); last assigned to %s",
			e.Expired.UTC().Format(time.RFC3339), e.Reason, strings.Join(e.Collectors, ", "))
	} else if !errors.As(err, &ae) || ae.Code != http.StatusNotFound {
		detail = "asking the registry why failed: " + err.Error()
	} else if p, err := client.Producer(ctx, id); err == nil {
		reason, detail = DepartedMoved, "assigned to "+strings.Join(p.Collectors, ", ")
	} else if errors.As(err, &ae) && ae.Code == http.StatusNotFound {
		reason, detail = DepartedDeregistered, "the registry no longer has it and did not expire it"
	} else {
		detail = "asking the registry why failed: " + err.Error()
	}
	c.m.departed.WithLabelValues(reason).Inc()
	c.mu.Lock()
	defer c.mu.Unlock()
	d, ok := c.mu.departed[id]
	if !ok || !d.Left.Equal(left) {
		return
	}
	d.Reason, d.Detail = reason, detail
	c.mu.departed[id] = d
	c.log.Info("producer left", "producer", id, "reason", reason, "detail", detail)
}

// departedLocked returns the departed producers, most recent first.
func (c *Collector) departedLocked() []DepartedProducer {
	c.pruneDepartedLocked(time.Now())
	out := make([]DepartedProducer, 0, len(c.mu.departed))
	for _, d := range c.mu.departed {
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Left.Equal(out[j].Left) {
			return out[i].Left.After(out[j].Left)
		}
		return out[i].ID < out[j].ID
	})
	return out
}
