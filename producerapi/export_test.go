package producerapi

import (
	"context"
	"time"
)

// SetClock replaces the server's clock (cursor expiry) in tests.
func SetClock(s *Server, now func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = now
}

// ServePage3 serves a page as the HTTP endpoint does for a version 3
// request, returning its encoding too (appended to dst).
func ServePage3(s *Server, ctx context.Context, req PageRequest, dst []byte) (Page, []byte, error) {
	req.Binary, req.Version = true, PageVersion3
	return s.servePage(ctx, req, dst)
}

// ReleaseIdleRewinds is releaseIdleRewinds, for the SeriesDecoder tests.
const ReleaseIdleRewinds = releaseIdleRewinds
