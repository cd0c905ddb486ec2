package producerapi

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// A cursor is what a producer keeps per collector: where it is in the
// buffer and its outstanding page. Cursors hold samples, so who may have one
// is decided here:
//
//   - configured collectors (ServerOptions.Collectors) have one from the
//     start; it never expires (pinned);
//   - once a registry assignment arrived, only assigned collectors are
//     served (pinned while assigned); anyone else gets ErrCollectorNotAssigned
//     and no cursor, so a late request from a collector the producer was
//     just moved away from cannot recreate a cursor that holds samples
//     forever;
//   - otherwise (a static producer) a collector that asks gets a cursor, up
//     to MaxCollectors of them, which expires after CursorTTL without a
//     request (what only it held counts as dropped for it);
//   - DELETE /v1/collectors/{id} removes one.

// ErrCollectorNotAssigned refuses a collector the registry did not assign
// to this producer (HTTP 403).
var ErrCollectorNotAssigned = errors.New("producerapi: collector not assigned to this producer")

// ErrTooManyCollectors refuses a new collector above MaxCollectors (HTTP 429).
var ErrTooManyCollectors = errors.New("producerapi: too many collectors")

// AddCollector makes the server hold samples for a collector before it
// first asks. The cursor is pinned: it never expires.
func (s *Server) AddCollector(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.configured[id] = true
	s.buf.addCollector(id, s.now()).pinned = true
}

// RemoveCollector forgets a collector handed over to others (added first);
// what only it held is released.
func (s *Server) RemoveCollector(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.configured, id)
	s.buf.removeCollector(id, false)
}

// DeleteCollector removes a collector's cursor (an operator's DELETE): what
// only it held counts as dropped for it. It reports whether there was one.
func (s *Server) DeleteCollector(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	ok := s.buf.removeCollector(id, true)
	if ok {
		s.log.Info("collector cursor deleted", "collector", id)
	}
	return ok
}

// SetAssignment applies a registry assignment: the assigned collectors get
// pinned cursors first (so they hold everything not yet released), then
// every other cursor is removed, and from now on only assigned collectors
// are served. The new collectors thus take over before the old ones are let
// go.
//
// An empty assignment is no information and changes nothing: the registry
// answers [] when it sees no live collector (a partition, its own restart),
// while collectors keep collecting on their cached assignments (invariants
// 5 and 6). Removing every cursor then would refuse them all and leave the
// samples in the buffer until its bound drops them.
func (s *Server) SetAssignment(ids []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(ids) == 0 {
		if len(s.assigned) > 0 {
			s.log.Warn("registry assigned no collector; keeping the current ones (an empty assignment is taken as no information)", "collectors", len(s.assigned))
		}
		return
	}
	next := make(map[string]bool, len(ids))
	now := s.now()
	for _, id := range ids {
		next[id] = true
		if !s.assigned[id] {
			s.log.Info("assigned to collector", "collector", id)
		}
		s.buf.addCollector(id, now).pinned = true
	}
	for id := range s.buf.cursors {
		if !next[id] {
			s.buf.removeCollector(id, false)
			s.log.Info("no longer serving collector", "collector", id)
		}
	}
	s.assigned = next
}

// mayServe says whether a collector may use a cursor, without creating one.
func (s *Server) mayServe(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.assigned != nil && !s.assigned[id] {
		s.refused++
		s.kickRegistration()
		return fmt.Errorf("%w: %q is not among the collectors the registry assigned to producer %s; it gets no cursor", ErrCollectorNotAssigned, id, s.opts.ID)
	}
	return nil
}

// kickRegistration asks RunRegistration to renew now rather than at its
// next period, so a collector the registry just assigned is refused for
// moments, not a third of a lease.
func (s *Server) kickRegistration() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// admitLocked returns the collector's cursor, creating it if it may have one.
func (s *Server) admitLocked(id string) (*cursor, error) {
	if s.assigned != nil && !s.assigned[id] {
		s.refused++
		s.kickRegistration()
		return nil, fmt.Errorf("%w: %q is not among the collectors the registry assigned to producer %s; it gets no cursor", ErrCollectorNotAssigned, id, s.opts.ID)
	}
	if c, ok := s.buf.cursors[id]; ok {
		return c, nil
	}
	if len(s.buf.cursors) >= s.opts.MaxCollectors {
		s.refused++
		return nil, fmt.Errorf("%w: producer %s already keeps cursors for %d collectors (--max-collectors); DELETE /v1/collectors/{id} an old one or wait for idle ones to expire (--cursor-ttl %v)",
			ErrTooManyCollectors, s.opts.ID, len(s.buf.cursors), s.opts.CursorTTL)
	}
	s.log.Info("new collector", "collector", id)
	c := s.buf.addCollector(id, s.now())
	// A collector the registry assigned or the configuration names keeps
	// its pin when it comes back after a DELETE: it must not expire or
	// count against the cap of strangers.
	c.pinned = s.assigned[id] || s.configured[id]
	return c, nil
}

// expireLocked removes idle unpinned cursors.
func (s *Server) expireLocked() {
	if s.opts.CursorTTL <= 0 {
		return
	}
	for _, id := range s.buf.expire(s.now().Add(-s.opts.CursorTTL)) {
		s.expired++
		s.log.Warn("collector cursor expired; what only it held is counted as dropped", "collector", id, "idle_for_more_than", s.opts.CursorTTL)
	}
}

// runExpiry expires idle cursors while no request comes (requests expire
// them too).
func (s *Server) runExpiry(ctx context.Context) {
	if s.opts.CursorTTL <= 0 {
		return
	}
	t := time.NewTicker(min(max(s.opts.CursorTTL/10, 100*time.Millisecond), time.Minute))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.mu.Lock()
			s.expireLocked()
			s.mu.Unlock()
		}
	}
}
