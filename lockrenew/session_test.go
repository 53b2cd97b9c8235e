package lockrenew

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
)

// fakeSession is a SessionLockRenewer whose renewals, like the service's, extend the lock to now +
// lockDuration, on a clock skew behind the local one (skew > 0: the local clock is ahead).
type fakeSession struct {
	id           string
	lockDuration time.Duration
	skew         time.Duration
	// fail returns the error of the n-th call (0-based); nil or a nil result means success.
	fail func(n int) error

	mu    sync.Mutex
	until time.Time   // guarded by mu
	calls []time.Time // local start time of each call; guarded by mu
}

func newFakeSession(id string, lock, skew time.Duration) *fakeSession {
	return &fakeSession{id: id, lockDuration: lock, skew: skew, until: time.Now().Add(-skew).Add(lock)}
}

func (f *fakeSession) RenewSessionLock(ctx context.Context, _ *azservicebus.RenewSessionLockOptions) error {
	f.mu.Lock()
	n := len(f.calls)
	f.calls = append(f.calls, time.Now())
	f.mu.Unlock()
	if f.fail != nil {
		if err := f.fail(n); err != nil {
			return err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !time.Now().Add(-f.skew).Before(f.until) {
		return &azservicebus.Error{Code: azservicebus.CodeLockLost} // renewed too late
	}
	f.until = time.Now().Add(-f.skew).Add(f.lockDuration)
	return nil
}

func (f *fakeSession) LockedUntil() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.until
}

func (f *fakeSession) SessionID() string { return f.id }

func (f *fakeSession) snapshot() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.calls...)
}

// A session hold follows the message policy: one renewal per lock window at LockedUntil − min(remaining/2,
// 10 s), counted as a session renewal; a Renewer without a LockRenewer holds sessions and refuses messages.
func TestSessionHoldRenewsOncePerWindow(t *testing.T) {
	for _, lock := range []time.Duration{5 * time.Second, 60 * time.Second} {
		t.Run(lock.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r := New(nil, &Options{MaxRenewalDuration: -1})
				defer r.Close()
				start := time.Now()
				s := newFakeSession("order-1", lock, 0)
				ctx, release := r.HoldSession(context.Background(), s)
				defer release()
				const windows = 6
				period := lock - min(lock/2, 10*time.Second)
				sleepUntil(start.Add(windows*period + period/2))
				calls := s.snapshot()
				if len(calls) != windows {
					t.Fatalf("%d session renewals in %d lock windows; want one per window", len(calls), windows)
				}
				for i, at := range calls {
					if want := start.Add(time.Duration(i+1) * period); !at.Equal(want) {
						t.Fatalf("renewal %d at +%v; want +%v", i, at.Sub(start), want.Sub(start))
					}
				}
				checkUndone(t, ctx, "after session renewals")
				if got, ok := LockedUntil(ctx); !ok || !got.Equal(s.LockedUntil()) {
					t.Errorf("LockedUntil(ctx) = %v, %v; want the session's %v", got, ok, s.LockedUntil())
				}
				st := r.Stats()
				if st.SessionRenewals != windows || st.Renewals != 0 || st.SessionLocksLost != 0 || st.Held != 1 {
					t.Errorf("stats = %+v; want %d session renewals, no message renewals, nothing lost", st, windows)
				}
				mctx, mrelease := r.Hold(context.Background(), lockedMessage(1, lock))
				defer mrelease()
				checkCause(t, mctx, ErrNotRenewable)
			})
		})
	}
}

// A refused renewal ends the session hold at once with ErrSessionLockLost, which wraps ErrLockLost and the
// service's error. CodeConnectionLost is permanent for a session (its lock lives on the receive link) and
// transient for a message.
func TestSessionLockLost(t *testing.T) {
	for _, code := range []azservicebus.Code{azservicebus.CodeLockLost, azservicebus.CodeConnectionLost, azservicebus.CodeClosed} {
		t.Run(string(code), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const lock = 30 * time.Second
				var lostCalls int
				r := New(nil, &Options{OnLockLost: func(*azservicebus.ReceivedMessage, error) { lostCalls++ }})
				defer r.Close()
				start := time.Now()
				s := newFakeSession("order-2", lock, 0)
				s.fail = func(int) error { return &azservicebus.Error{Code: code} }
				ctx, release := r.HoldSession(context.Background(), s)
				defer release()
				sleepUntil(start.Add(20*time.Second - time.Nanosecond))
				checkUndone(t, ctx, "before the first renewal")
				sleepUntil(start.Add(20 * time.Second))
				cause := checkCause(t, ctx, ErrSessionLockLost)
				var sbErr *azservicebus.Error
				if !errors.Is(cause, ErrLockLost) || !errors.As(cause, &sbErr) || sbErr.Code != code {
					t.Errorf("cause %v: want it to wrap ErrLockLost and code %q", cause, code)
				}
				if n := len(s.snapshot()); n != 1 {
					t.Errorf("%d renewal attempts; want 1 (no retry after %q)", n, code)
				}
				st := r.Stats()
				if st.SessionLocksLost != 1 || st.LocksLost != 0 || st.Failures != 1 || lostCalls != 0 {
					t.Errorf("stats = %+v, OnLockLost calls %d; want 1 session lock lost, no message lock, OnLockLost not called", st, lostCalls)
				}
			})
		})
	}
}

// Transient failures are retried until the session lock expires; then the hold ends with ErrSessionLockLost.
func TestSessionLockExpiresWithTransientFailures(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const lock = 30 * time.Second
		r := New(nil, nil)
		defer r.Close()
		start := time.Now()
		s := newFakeSession("order-3", lock, 0)
		s.fail = func(int) error { return &azservicebus.Error{Code: azservicebus.CodeTimeout} }
		ctx, release := r.HoldSession(context.Background(), s)
		defer release()
		sleepUntil(start.Add(lock - time.Nanosecond))
		checkUndone(t, ctx, "before the lock expired")
		if n := len(s.snapshot()); n != 8 {
			t.Errorf("%d attempts before expiry; want 8 (20s, then backoff to 2s)", n)
		}
		sleepUntil(start.Add(lock))
		checkCause(t, ctx, ErrSessionLockLost)
	})
}

// The service-clock rule applies to sessions: with the local clock ahead of or behind the service's, a
// renewer that knows the lock duration renews each session lock once per window and loses none.
func TestSessionServiceClockSkew(t *testing.T) {
	const lock = 60 * time.Second
	for _, skew := range []time.Duration{-30 * time.Second, 90 * time.Second} {
		t.Run(fmt.Sprintf("local%+v", skew), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r := New(nil, &Options{LockDuration: lock, MaxRenewalDuration: -1})
				defer r.Close()
				start := time.Now()
				s := newFakeSession("order-4", lock, skew)
				ctx, release := r.HoldSession(context.Background(), s)
				defer release()
				sleepUntil(start.Add(10 * lock))
				checkUndone(t, ctx, "after ten lock windows")
				n := len(s.snapshot())
				if n < 10 || n > 12 {
					t.Errorf("%d renewals in ten 60s windows with the clock %v off; want one per 50s window (10 to 12)", n, skew)
				}
				if st := r.Stats(); st.SessionLocksLost != 0 || st.Failures != 0 {
					t.Errorf("stats = %+v; want no failure and nothing lost", st)
				}
			})
		})
	}
}

// The maximum renewal duration ends a session hold with ErrMaxRenewal (not a lost lock), and release joins
// the hold's goroutine.
func TestSessionMaxRenewalAndRelease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := New(nil, &Options{MaxRenewalDuration: 45 * time.Second})
		defer r.Close()
		start := time.Now()
		s := newFakeSession("order-5", 30*time.Second, 0)
		ctx, release := r.HoldSession(context.Background(), s)
		sleepUntil(start.Add(45 * time.Second))
		checkCause(t, ctx, ErrMaxRenewal)
		if errors.Is(context.Cause(ctx), ErrLockLost) {
			t.Errorf("cause %v wraps ErrLockLost; the lock is still valid", context.Cause(ctx))
		}
		release()
		if n := holdGoroutines(); n != 0 {
			t.Errorf("%d hold goroutines after release", n)
		}
		if st := r.Stats(); st.Held != 0 || st.SessionRenewals != 2 {
			t.Errorf("stats = %+v; want 2 session renewals (20s, 40s), nothing held", st)
		}
		nctx, _ := r.HoldSession(context.Background(), nil)
		checkCause(t, nctx, ErrNotRenewable)
	})
}

func TestSessionRetryOptions(t *testing.T) {
	for _, lock := range []time.Duration{0, 5 * time.Second, time.Minute} {
		got, want := SessionRetryOptions(lock), RetryOptions(lock)
		if got.MaxRetries != -1 || got.RetryDelay != want.RetryDelay || got.MaxRetryDelay != want.MaxRetryDelay {
			t.Errorf("SessionRetryOptions(%v) = %+v; want RetryOptions %+v without the SDK's retries", lock, got, want)
		}
	}
}
