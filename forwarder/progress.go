package forwarder

import (
	"sync/atomic"
	"time"
)

// insertClock remembers when the delivery attempt in progress began (0:
// none), so a hung ClickHouse is visible while it hangs. A SIGSTOPped
// server accepts the connection and never answers: the INSERT waits for
// the connection's read timeout (2 min), and until then last_insert_error
// stays empty and nothing looks wrong. The clock says "an insert has been
// running for N seconds" from the first second.
type insertClock struct{ began atomic.Int64 } // unix nanoseconds

func (c *insertClock) start() { c.began.Store(time.Now().UnixNano()) }
func (c *insertClock) stop()  { c.began.Store(0) }

// InsertInProgress returns how long the current delivery attempt (schema
// check, INSERTs, bisection of a refused batch) has been running, or 0
// when none is. Safe from any goroutine.
func (f *Forwarder) InsertInProgress() time.Duration {
	b := f.inserting.began.Load()
	if b == 0 {
		return 0
	}
	return max(time.Since(time.Unix(0, b)), time.Nanosecond)
}
