// Package backoff computes the delays between retries: capped exponential
// with jitter, so that many clients retrying the same failure spread out
// instead of arriving together.
package backoff

import (
	"math/rand/v2"
	"time"
)

// Exp is min doubled attempt times (attempt 0 is min), capped at max,
// without jitter: for callers that spread out by other means or whose
// retries are few (one process retrying its own registry). min <= 0 is
// taken as max.
func Exp(min, max time.Duration, attempt int) time.Duration {
	d := min << (attempt & 0x3f) // shifts by 64 or more give 0: capped below
	if attempt > 30 || d <= 0 || d > max {
		d = max
	}
	return d
}

// Delay is the wait before retry number attempt (0 for the first retry):
// Exp(min, max, attempt), of which half is fixed and half random.
func Delay(min, max time.Duration, attempt int) time.Duration {
	d := Exp(min, max, attempt)
	if d <= 0 {
		return 0
	}
	return d/2 + rand.N(d/2+1)
}

// Backoff counts attempts and hands out their delays. The zero value with
// Min and Max set is ready; it is not safe for concurrent use.
type Backoff struct {
	Min, Max time.Duration
	attempt  int
}

// Next returns the delay before the next retry and counts the attempt.
func (b *Backoff) Next() time.Duration {
	d := Delay(b.Min, b.Max, b.attempt)
	b.attempt++
	return d
}

// Reset starts again from Min, after a success.
func (b *Backoff) Reset() { b.attempt = 0 }
