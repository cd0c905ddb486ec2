package collector

import (
	"context"

	"github.com/holdfast/holdfast/registry"
)

// deregister tells the registry this collector is leaving, once its loops
// have stopped (every page it wrote to the WAL is acknowledged), so that
// its producers move to other collectors now rather than when its lease
// runs out. A failure only costs that wait: it is logged, never fatal.
func (c *Collector) deregister() {
	if c.opts.RegistryURL == "" {
		return
	}
	client := c.registryClient()
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.RequestTimeout)
	defer cancel()
	if err := client.DeregisterCollector(ctx, c.id); err != nil {
		c.log.Warn("shutdown: deregistering from the registry failed; its producers move when the lease runs out", "registry", c.opts.RegistryURL, "err", err)
		return
	}
	c.log.Info("shutdown: deregistered from the registry; its producers move to other collectors now", "registry", c.opts.RegistryURL)
}

// registryClient talks to the collector's registry with its HTTP client and
// token.
func (c *Collector) registryClient() *registry.Client {
	return &registry.Client{BaseURL: c.opts.RegistryURL, HTTP: c.http, Token: c.opts.RegistryToken}
}
