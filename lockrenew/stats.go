package lockrenew

import (
	"sync/atomic"
	"time"
)

// Stats is a snapshot of a Renewer's counters since New.
type Stats struct {
	// Renewals counts successful RenewMessageLock calls.
	Renewals uint64
	// SessionRenewals counts successful RenewSessionLock calls (HoldSession).
	SessionRenewals uint64
	// Failures counts failed RenewMessageLock and RenewSessionLock calls, transient or not, and successful
	// ones that did not move LockedUntil forward. A call that fails after release was called is not counted.
	Failures uint64
	// LocksLost counts message holds that ended with ErrLockLost.
	LocksLost uint64
	// SessionLocksLost counts session holds that ended with ErrSessionLockLost.
	SessionLocksLost uint64
	// MaxRenewalReached counts holds that ended with ErrMaxRenewal.
	MaxRenewalReached uint64
	// Held is the number of holds started and not yet released.
	Held int64
	// LatencyTotal and LatencyMax are the total and largest duration of the counted renewal calls
	// (Renewals + SessionRenewals + Failures).
	LatencyTotal, LatencyMax time.Duration
}

// Mean returns the mean latency of the counted RenewMessageLock calls, or 0 if there were none.
func (s Stats) Mean() time.Duration {
	n := s.Renewals + s.SessionRenewals + s.Failures
	if n == 0 {
		return 0
	}
	return s.LatencyTotal / time.Duration(n)
}

// counters are the live statistics of a Renewer. Every field is updated atomically by hold goroutines
// and read by Stats; a snapshot is not taken under a lock, so its fields may be mutually skewed by
// the calls in flight.
type counters struct {
	renewals, failures, locksLost, maxRenewalReached atomic.Uint64
	sessionRenewals, sessionLocksLost                atomic.Uint64
	held                                             atomic.Int64
	latencyTotal, latencyMax                         atomic.Int64 // nanoseconds
}

// observeLatency records the duration of one RenewMessageLock call.
func (c *counters) observeLatency(d time.Duration) {
	c.latencyTotal.Add(int64(d))
	for {
		cur := c.latencyMax.Load()
		if int64(d) <= cur || c.latencyMax.CompareAndSwap(cur, int64(d)) {
			return
		}
	}
}

// Stats returns a snapshot of the counters. Safe for concurrent use.
func (r *Renewer) Stats() Stats {
	return Stats{
		Renewals:          r.stats.renewals.Load(),
		SessionRenewals:   r.stats.sessionRenewals.Load(),
		SessionLocksLost:  r.stats.sessionLocksLost.Load(),
		Failures:          r.stats.failures.Load(),
		LocksLost:         r.stats.locksLost.Load(),
		MaxRenewalReached: r.stats.maxRenewalReached.Load(),
		Held:              r.stats.held.Load(),
		LatencyTotal:      time.Duration(r.stats.latencyTotal.Load()),
		LatencyMax:        time.Duration(r.stats.latencyMax.Load()),
	}
}
