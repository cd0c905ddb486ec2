// Package promutil registers a component's collectors on a caller's
// prometheus.Registerer as a unit, so a component can be closed and opened
// again on the same registry.
package promutil

import "github.com/prometheus/client_golang/prometheus"

// Set is a group of collectors registered together.
type Set struct {
	reg prometheus.Registerer
	cs  []prometheus.Collector
}

// Register registers every collector on reg (nil: none). On an error it
// unregisters those it had registered and returns the error.
func Register(reg prometheus.Registerer, cs ...prometheus.Collector) (*Set, error) {
	s := &Set{reg: reg, cs: cs}
	if reg == nil {
		return s, nil
	}
	for i, c := range cs {
		if err := reg.Register(c); err != nil {
			for _, done := range cs[:i] {
				reg.Unregister(done)
			}
			return nil, err
		}
	}
	return s, nil
}

// Unregister removes the set's collectors from the registry.
func (s *Set) Unregister() {
	if s == nil || s.reg == nil {
		return
	}
	for _, c := range s.cs {
		s.reg.Unregister(c)
	}
}
