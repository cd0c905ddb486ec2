package collector

import (
	"fmt"
)

// SetStatic replaces the static (configured) producers, for a configuration
// reload (SIGHUP). Like SetAssigned it never restarts what did not change:
// a producer whose id and URL stay keeps its loop, timer, cursor token and
// held page, and only takes a new interval at its next tick; a removed one
// stops after acknowledging what it already wrote (runProducer's exit); a
// new one starts. So a reload neither loses nor re-fetches a sample.
//
// The new set is checked whole before anything changes: an invalid URL, a
// duplicate id or a set above MaxProducers is refused and the old set keeps
// running.
func (c *Collector) SetStatic(ps []ProducerConfig) error {
	norm, ids, err := c.normalizeSet(ps)
	if err != nil {
		return err
	}
	if len(norm) > c.opts.MaxProducers {
		return fmt.Errorf("%w: %d static producers configured", errTooMany(c.opts.MaxProducers), len(norm))
	}
	c.assignMu.Lock()
	defer c.assignMu.Unlock()
	// The cached assignment: an assigned producer a static one shadowed
	// comes back as assigned when the static one goes.
	assigned, err := loadAssignment(c.state)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.opts.Producers = norm
	for id, p := range c.mu.producers {
		if p.static && !ids[id] {
			c.stopLocked(p)
			delete(c.mu.producers, id)
			c.departLocked(p, DepartedRemovedByReload)
			c.log.Info("static producer removed by the configuration", "producer", id)
		}
	}
	for _, cfg := range norm {
		if p, ok := c.mu.producers[cfg.ID]; ok {
			if p.config().URL == cfg.URL {
				p.setInterval(cfg.Interval)
				p.mu.Lock()
				p.static = true
				p.mu.Unlock()
				continue
			}
			c.stopLocked(p) // a new address is a new producer
		}
		p := newProducer(cfg)
		p.static = true
		c.mu.producers[cfg.ID] = p
		c.startLocked(p)
		c.log.Info("static producer added by the configuration", "producer", cfg.ID, "url", cfg.URL, "interval", cfg.Interval)
	}
	for _, cfg := range assigned {
		if _, ok := c.mu.producers[cfg.ID]; !ok && len(c.mu.producers) < c.opts.MaxProducers {
			p := newProducer(cfg)
			c.mu.producers[cfg.ID] = p
			c.startLocked(p)
		}
	}
	c.m.producers.Set(float64(len(c.mu.producers)))
	return nil
}

// normalizeSet normalizes a producer set (static or assigned) and returns
// it with its ids; an invalid producer or an id listed twice refuses the
// whole set.
func (c *Collector) normalizeSet(ps []ProducerConfig) ([]ProducerConfig, map[string]bool, error) {
	norm := make([]ProducerConfig, 0, len(ps))
	ids := make(map[string]bool, len(ps))
	for _, p := range ps {
		p, err := c.opts.normalize(p)
		if err != nil {
			return nil, nil, err
		}
		if ids[p.ID] {
			return nil, nil, fmt.Errorf("collector: producer %s is listed twice", p.ID)
		}
		ids[p.ID] = true
		norm = append(norm, p)
	}
	return norm, ids, nil
}
