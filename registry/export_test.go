package registry

// ExpireEveryLease makes every producer's and collector's lease run out now,
// as a registry that trusted stored lease times saw them after an outage
// longer than a lease; the next expiry tick removes everyone.
func ExpireEveryLease(r *Registry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.opts.Now()
	for _, p := range r.producers {
		p.LeaseExpires = now
	}
	for _, c := range r.collectors {
		c.LeaseExpires = now
	}
}
