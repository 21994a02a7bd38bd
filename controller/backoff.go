package controller

import "time"

// Backoff is a capped exponential retry delay.
type Backoff struct {
	Min, Max time.Duration
}

// Delay returns the wait before retry number n (n >= 1): Min doubled n-1 times, at most Max.
func (b Backoff) Delay(n int) time.Duration {
	if n < 1 {
		n = 1
	}
	d := b.Min
	for i := 1; i < n && d < b.Max; i++ {
		d *= 2
	}
	return min(d, b.Max)
}
