package producerapi

import "time"

// SetClock replaces the server's clock (cursor expiry) in tests.
func SetClock(s *Server, now func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = now
}
