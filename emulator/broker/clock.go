package broker

import (
	"sort"
	"sync"
	"time"
)

// Clock is the broker's source of time. It drives lock expiry (and, later, TTL and scheduled
// enqueue). Implementations must be safe for concurrent use.
//
// AfterFunc calls f on a goroutine of the clock's choosing once d has elapsed; f must not be
// called while any lock the caller of AfterFunc might hold is held by the clock. Stop reports
// whether it prevented f from running (as time.Timer.Stop does).
type Clock interface {
	Now() time.Time
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a pending AfterFunc call.
type Timer interface{ Stop() bool }

// RealClock returns the wall clock backed by package time.
func RealClock() Clock { return realClock{} }

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

// ManualClock is a Clock for tests: time stands still until Advance or Set moves it, and due
// timers fire synchronously on the goroutine that moved the clock, in deadline order. Other
// packages' tests use it to expire locks without sleeping.
type ManualClock struct {
	mu     sync.Mutex // guards every field below
	now    time.Time
	seq    uint64 // tie-breaker so timers with equal deadlines fire in creation order
	timers map[*manualTimer]struct{}
}

// NewManualClock returns a ManualClock reading start.
func NewManualClock(start time.Time) *ManualClock {
	return &ManualClock{now: start, timers: make(map[*manualTimer]struct{})}
}

// Now returns the clock's current time.
func (c *ManualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// AfterFunc registers f to run when the clock has been advanced by at least d. A d ≤ 0 timer
// fires on the next Advance or Set (even Advance(0)), never inside AfterFunc itself, so callers
// may hold their own locks while calling it.
func (c *ManualClock) AfterFunc(d time.Duration, f func()) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	t := &manualTimer{c: c, when: c.now.Add(d), seq: c.seq, f: f}
	c.timers[t] = struct{}{}
	return t
}

// Advance moves the clock forward by d and runs every timer that became due, synchronously,
// in deadline order. Timers created by those callbacks fire too if they are already due.
func (c *ManualClock) Advance(d time.Duration) {
	c.mu.Lock()
	target := c.now.Add(d)
	c.mu.Unlock()
	c.Set(target)
}

// Set moves the clock to t (never backwards) and runs the timers that became due.
func (c *ManualClock) Set(t time.Time) {
	for {
		c.mu.Lock()
		next := c.nextDueLocked(t)
		if next == nil {
			if t.After(c.now) {
				c.now = t
			}
			c.mu.Unlock()
			return
		}
		delete(c.timers, next)
		if next.when.After(c.now) {
			c.now = next.when
		}
		c.mu.Unlock()
		next.f() // outside the lock: callbacks take their own locks and may create timers
	}
}

// Pending reports how many timers are waiting to fire.
func (c *ManualClock) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

// nextDueLocked returns the earliest timer due at or before t, or nil. Caller holds c.mu.
func (c *ManualClock) nextDueLocked(t time.Time) *manualTimer {
	due := make([]*manualTimer, 0, 4)
	for tm := range c.timers {
		if !tm.when.After(t) {
			due = append(due, tm)
		}
	}
	if len(due) == 0 {
		return nil
	}
	sort.Slice(due, func(i, j int) bool {
		if due[i].when.Equal(due[j].when) {
			return due[i].seq < due[j].seq
		}
		return due[i].when.Before(due[j].when)
	})
	return due[0]
}

type manualTimer struct {
	c    *ManualClock
	when time.Time
	seq  uint64
	f    func()
}

// Stop cancels the timer; it reports false when the timer already fired or was stopped.
func (t *manualTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	if _, ok := t.c.timers[t]; !ok {
		return false
	}
	delete(t.c.timers, t)
	return true
}
