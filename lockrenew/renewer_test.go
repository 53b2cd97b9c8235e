package lockrenew

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
)

// renewCall records one RenewMessageLock call seen by fakeRenewer.
type renewCall struct {
	at          time.Time // when the call started
	lockedUntil time.Time // msg.LockedUntil when the call started
}

// fakeRenewer is a LockRenewer that, on success, sets msg.LockedUntil to now + lockDuration, like the
// service does.
type fakeRenewer struct {
	lockDuration time.Duration
	latency      time.Duration // simulated duration of each call
	hang         bool          // block every call until its context ends
	noExtend     bool          // succeed without changing LockedUntil
	// fail returns the error for the n-th call (0-based); nil or a nil result means success.
	fail func(n int) error

	inflight, maxInflight atomic.Int64

	mu    sync.Mutex
	calls []renewCall // guarded by mu
}

func (f *fakeRenewer) RenewMessageLock(ctx context.Context, msg *azservicebus.ReceivedMessage, _ *azservicebus.RenewMessageLockOptions) error {
	cur := f.inflight.Add(1)
	defer f.inflight.Add(-1)
	for {
		m := f.maxInflight.Load()
		if cur <= m || f.maxInflight.CompareAndSwap(m, cur) {
			break
		}
	}

	f.mu.Lock()
	n := len(f.calls)
	f.calls = append(f.calls, renewCall{at: time.Now(), lockedUntil: *msg.LockedUntil})
	f.mu.Unlock()

	if f.hang {
		<-ctx.Done()
		return ctx.Err()
	}
	if f.latency > 0 {
		timer := time.NewTimer(f.latency)
		defer timer.Stop()
		select {
		case <-timer.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if f.fail != nil {
		if err := f.fail(n); err != nil {
			return err
		}
	}
	if !f.noExtend {
		until := time.Now().Add(f.lockDuration)
		msg.LockedUntil = &until
	}
	return nil
}

func (f *fakeRenewer) snapshot() []renewCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]renewCall(nil), f.calls...)
}

// lockedMessage returns a message whose lock expires lockDuration from now.
func lockedMessage(id int, lockDuration time.Duration) *azservicebus.ReceivedMessage {
	until := time.Now().Add(lockDuration)
	seq := int64(id)
	return &azservicebus.ReceivedMessage{
		MessageID:      fmt.Sprintf("msg-%d", id),
		SequenceNumber: &seq,
		LockedUntil:    &until,
	}
}

// holdGoroutines counts the goroutines running (*hold).run, in this bubble or elsewhere.
func holdGoroutines() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Count(string(buf[:n]), "lockrenew.(*hold).run(")
		}
		buf = make([]byte, 2*len(buf))
	}
}

// sleepUntil advances the bubble's fake clock to t and waits until every other goroutine is blocked.
func sleepUntil(t time.Time) {
	time.Sleep(time.Until(t))
	synctest.Wait()
}

// checkUndone fails the test if ctx is done.
func checkUndone(t *testing.T, ctx context.Context, when string) {
	t.Helper()
	if ctx.Err() != nil {
		t.Fatalf("%s: message context done (cause %v); want live", when, context.Cause(ctx))
	}
}

// checkCause fails the test unless ctx is done with a cause matching want.
func checkCause(t *testing.T, ctx context.Context, want error) error {
	t.Helper()
	if ctx.Err() == nil {
		t.Fatalf("message context live; want cancelled with %v", want)
	}
	cause := context.Cause(ctx)
	if !errors.Is(cause, want) {
		t.Fatalf("cause = %v; want errors.Is(cause, %v)", cause, want)
	}
	return cause
}

func TestRenewsOncePerLockWindow(t *testing.T) {
	for _, lock := range []time.Duration{5 * time.Second, 30 * time.Second, 60 * time.Second, 300 * time.Second} {
		t.Run(lock.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				fake := &fakeRenewer{lockDuration: lock}
				r := New(fake, &Options{MaxRenewalDuration: -1})
				defer r.Close()

				start := time.Now()
				msg := lockedMessage(1, lock)
				ctx, release := r.Hold(context.Background(), msg)
				defer release()

				const windows = 12
				period := lock - min(lock/2, 10*time.Second)
				sleepUntil(start.Add(windows*period + period/2))

				calls := fake.snapshot()
				if len(calls) != windows {
					t.Fatalf("%d renewals in %d lock windows; want exactly one per window", len(calls), windows)
				}
				granted := start.Add(lock) // the lock the previous call (or the receive) granted
				for i, c := range calls {
					if !c.lockedUntil.Equal(granted) {
						t.Fatalf("renewal %d renewed the lock ending at +%v; want the one ending at +%v (one renewal per window)",
							i, c.lockedUntil.Sub(start), granted.Sub(start))
					}
					if want := granted.Add(-min(lock/2, 10*time.Second)); !c.at.Equal(want) {
						t.Fatalf("renewal %d at +%v; want +%v (LockedUntil − min(remaining/2, 10s))", i, c.at.Sub(start), want.Sub(start))
					}
					granted = c.at.Add(lock)
				}
				checkUndone(t, ctx, "after renewals")
				if got, ok := LockedUntil(ctx); !ok || !got.Equal(granted) {
					t.Errorf("LockedUntil(ctx) = %v, %v; want +%v", got.Sub(start), ok, granted.Sub(start))
				}
				st := r.Stats()
				if st.Renewals != windows || st.Failures != 0 || st.LocksLost != 0 || st.Held != 1 {
					t.Errorf("stats = %+v; want %d renewals, no failures, no lost locks, 1 held", st, windows)
				}
			})
		})
	}
}

func TestRenewsImmediatelyUnder400ms(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fake := &fakeRenewer{lockDuration: 30 * time.Second}
		r := New(fake, nil)
		defer r.Close()
		start := time.Now()
		ctx, release := r.Hold(context.Background(), lockedMessage(1, 300*time.Millisecond))
		defer release()
		synctest.Wait()

		calls := fake.snapshot()
		if len(calls) != 1 || !calls[0].at.Equal(start) {
			t.Fatalf("calls = %v; want one renewal at Hold time", calls)
		}
		checkUndone(t, ctx, "after immediate renewal")
	})
}

func TestTransientFailureThenSuccessKeepsLock(t *testing.T) {
	tests := []struct {
		name      string
		err       error
		failures  int
		wantDelay []time.Duration // delay of each retry after the previous attempt
	}{
		{name: "connection lost", err: &azservicebus.Error{Code: azservicebus.CodeConnectionLost}, failures: 1,
			wantDelay: []time.Duration{250 * time.Millisecond}},
		{name: "timeout", err: &azservicebus.Error{Code: azservicebus.CodeTimeout}, failures: 1,
			wantDelay: []time.Duration{250 * time.Millisecond}},
		{name: "network", err: errors.New("read tcp: connection reset by peer"), failures: 1,
			wantDelay: []time.Duration{250 * time.Millisecond}},
		{name: "backoff doubles to 2s", err: &azservicebus.Error{Code: azservicebus.CodeConnectionLost}, failures: 5,
			wantDelay: []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, time.Second, 2 * time.Second, 2 * time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const lock = 30 * time.Second
				fake := &fakeRenewer{lockDuration: lock, fail: func(n int) error {
					if n < tt.failures {
						return tt.err
					}
					return nil
				}}
				var lostCalls atomic.Int32
				r := New(fake, &Options{OnLockLost: func(*azservicebus.ReceivedMessage, error) { lostCalls.Add(1) }})
				defer r.Close()
				start := time.Now()
				ctx, release := r.Hold(context.Background(), lockedMessage(1, lock))
				defer release()

				sleepUntil(start.Add(lock - time.Nanosecond))
				calls := fake.snapshot()
				if len(calls) != tt.failures+1 {
					t.Fatalf("%d calls; want %d failures then one success", len(calls), tt.failures)
				}
				if want := start.Add(20 * time.Second); !calls[0].at.Equal(want) {
					t.Errorf("first attempt at +%v; want +20s", calls[0].at.Sub(start))
				}
				for i, d := range tt.wantDelay {
					if got := calls[i+1].at.Sub(calls[i].at); got != d {
						t.Errorf("retry %d after %v; want %v", i+1, got, d)
					}
				}
				checkUndone(t, ctx, "after recovery")
				want := calls[len(calls)-1].at.Add(lock)
				if got, _ := LockedUntil(ctx); !got.Equal(want) {
					t.Errorf("LockedUntil = +%v; want +%v", got.Sub(start), want.Sub(start))
				}
				st := r.Stats()
				if st.Failures != uint64(tt.failures) || st.Renewals != 1 || st.LocksLost != 0 || lostCalls.Load() != 0 {
					t.Errorf("stats = %+v, OnLockLost calls %d; want %d failures, 1 renewal, nothing lost",
						st, lostCalls.Load(), tt.failures)
				}
			})
		})
	}
}

func TestPermanentErrorLosesLockWithinOneAttempt(t *testing.T) {
	codes := []azservicebus.Code{azservicebus.CodeLockLost, azservicebus.CodeNotFound,
		azservicebus.CodeUnauthorizedAccess, azservicebus.CodeClosed}
	for _, code := range codes {
		t.Run(string(code), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const lock = 30 * time.Second
				fake := &fakeRenewer{lockDuration: lock, fail: func(int) error { return &azservicebus.Error{Code: code} }}
				var (
					mu      sync.Mutex
					lost    []error
					lostMsg *azservicebus.ReceivedMessage
				)
				r := New(fake, &Options{OnLockLost: func(m *azservicebus.ReceivedMessage, cause error) {
					mu.Lock()
					defer mu.Unlock()
					lost, lostMsg = append(lost, cause), m
				}})
				defer r.Close()
				start := time.Now()
				msg := lockedMessage(7, lock)
				ctx, release := r.Hold(context.Background(), msg)
				defer release()

				sleepUntil(start.Add(20*time.Second - time.Nanosecond))
				checkUndone(t, ctx, "before the first renewal")
				sleepUntil(start.Add(20 * time.Second))

				cause := checkCause(t, ctx, ErrLockLost)
				var sbErr *azservicebus.Error
				if !errors.As(cause, &sbErr) || sbErr.Code != code {
					t.Errorf("cause %v does not wrap the *azservicebus.Error with code %q", cause, code)
				}
				if n := len(fake.snapshot()); n != 1 {
					t.Errorf("%d renewal attempts; want 1 (no retry after %q)", n, code)
				}
				mu.Lock()
				if len(lost) != 1 || lost[0] != cause || lostMsg != msg {
					t.Errorf("OnLockLost calls %v for %p; want exactly one with the context's cause for %p", lost, lostMsg, msg)
				}
				mu.Unlock()
				st := r.Stats()
				if st.LocksLost != 1 || st.Failures != 1 || st.Renewals != 0 {
					t.Errorf("stats = %+v; want 1 lost, 1 failure, 0 renewals", st)
				}
			})
		})
	}
}

func TestLockExpiresWithOnlyTransientFailures(t *testing.T) {
	const lock = 30 * time.Second
	connLost := &azservicebus.Error{Code: azservicebus.CodeConnectionLost}
	// Attempts at 20s, then after 250ms, 500ms, 1s, 2s, 2s, 2s, 2s: the next would start at 31.75s.
	retryAttempts := []time.Duration{20000, 20250, 20750, 21750, 23750, 25750, 27750, 29750}
	tests := []struct {
		name      string
		fake      *fakeRenewer
		wantErr   func(error) bool
		wantCalls []time.Duration // attempt offsets in milliseconds
	}{
		{
			name:      "connection lost",
			fake:      &fakeRenewer{lockDuration: lock, fail: func(int) error { return connLost }},
			wantErr:   func(err error) bool { return errors.Is(err, connLost) },
			wantCalls: retryAttempts,
		},
		{
			name:      "renewal does not extend the lock",
			fake:      &fakeRenewer{lockDuration: lock, noExtend: true},
			wantErr:   func(err error) bool { return errors.Is(err, errNotExtended) },
			wantCalls: retryAttempts,
		},
		{
			name:      "call hangs past LockedUntil",
			fake:      &fakeRenewer{lockDuration: lock, hang: true},
			wantErr:   func(err error) bool { return errors.Is(err, context.DeadlineExceeded) },
			wantCalls: []time.Duration{20000},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r := New(tt.fake, nil)
				defer r.Close()
				start := time.Now()
				ctx, release := r.Hold(context.Background(), lockedMessage(1, lock))
				defer release()

				sleepUntil(start.Add(lock - time.Nanosecond))
				checkUndone(t, ctx, "just before LockedUntil")
				sleepUntil(start.Add(lock))
				cause := checkCause(t, ctx, ErrLockLost)
				if !tt.wantErr(cause) {
					t.Errorf("cause %v does not wrap the last renewal error", cause)
				}
				calls := tt.fake.snapshot()
				if len(calls) != len(tt.wantCalls) {
					t.Fatalf("%d attempts; want %d", len(calls), len(tt.wantCalls))
				}
				for i, c := range calls {
					if want := start.Add(tt.wantCalls[i] * time.Millisecond); !c.at.Equal(want) {
						t.Errorf("attempt %d at +%v; want +%v", i, c.at.Sub(start), want.Sub(start))
					}
				}
				if st := r.Stats(); st.LocksLost != 1 || st.Failures != uint64(len(calls)) {
					t.Errorf("stats = %+v; want 1 lost, %d failures", st, len(calls))
				}
			})
		})
	}
}

func TestExpiredAtHoldIsLostWithoutCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fake := &fakeRenewer{lockDuration: time.Minute}
		r := New(fake, nil)
		defer r.Close()
		ctx, release := r.Hold(context.Background(), lockedMessage(1, -time.Second))
		defer release()
		synctest.Wait()
		checkCause(t, ctx, ErrLockLost)
		if n := len(fake.snapshot()); n != 0 {
			t.Errorf("%d renewal calls for an expired lock; want 0", n)
		}
	})
}

func TestMaxRenewalDuration(t *testing.T) {
	tests := []struct {
		name         string
		max          time.Duration
		lock         time.Duration
		wantEnd      time.Duration
		wantRenewals uint64
	}{
		{name: "1m with 30s lock", max: time.Minute, lock: 30 * time.Second, wantEnd: time.Minute, wantRenewals: 2},
		{name: "default 5m with 60s lock", max: 0, lock: time.Minute, wantEnd: 5 * time.Minute, wantRenewals: 5},
		{name: "between renewals", max: 45 * time.Second, lock: 30 * time.Second, wantEnd: 45 * time.Second, wantRenewals: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				fake := &fakeRenewer{lockDuration: tt.lock}
				var lostCalls atomic.Int32
				r := New(fake, &Options{MaxRenewalDuration: tt.max,
					OnLockLost: func(*azservicebus.ReceivedMessage, error) { lostCalls.Add(1) }})
				defer r.Close()
				start := time.Now()
				ctx, release := r.Hold(context.Background(), lockedMessage(1, tt.lock))
				defer release()

				sleepUntil(start.Add(tt.wantEnd - time.Nanosecond))
				checkUndone(t, ctx, "before the maximum renewal duration")
				sleepUntil(start.Add(tt.wantEnd))
				cause := checkCause(t, ctx, ErrMaxRenewal)
				if errors.Is(cause, ErrLockLost) {
					t.Errorf("cause %v also reports a lost lock", cause)
				}
				if until, _ := LockedUntil(ctx); !until.After(time.Now()) {
					t.Errorf("LockedUntil = +%v at +%v; want the lock still valid", until.Sub(start), time.Since(start))
				}
				sleepUntil(start.Add(tt.wantEnd + 10*tt.lock))
				st := r.Stats()
				if st.Renewals != tt.wantRenewals || st.MaxRenewalReached != 1 || st.LocksLost != 0 || lostCalls.Load() != 0 {
					t.Errorf("stats = %+v, OnLockLost calls %d; want %d renewals, 1 max-renewal, nothing lost",
						st, lostCalls.Load(), tt.wantRenewals)
				}
			})
		})
	}
}

func TestReleaseJoinsGoroutine(t *testing.T) {
	tests := []struct {
		name         string
		fake         *fakeRenewer
		wantInflight int64 // RenewMessageLock calls in flight when release is called
	}{
		{name: "idle", fake: &fakeRenewer{lockDuration: time.Minute}, wantInflight: 0},
		{name: "renewal in flight", fake: &fakeRenewer{lockDuration: time.Minute, hang: true}, wantInflight: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r := New(tt.fake, nil)
				defer r.Close()
				start := time.Now()
				msg := lockedMessage(1, time.Minute)
				ctx, release := r.Hold(context.Background(), msg)
				synctest.Wait()
				if n := holdGoroutines(); n != 0 {
					t.Fatalf("renewal goroutines after Hold = %d; want 0 until the first renewal is due", n)
				}
				sleepUntil(start.Add(55 * time.Second)) // the renewal at +50s has started (and hangs, if hang)
				if n := holdGoroutines(); n != 1 {
					t.Fatalf("renewal goroutines once the renewal is due = %d; want 1", n)
				}
				if got := tt.fake.inflight.Load(); got != tt.wantInflight {
					t.Fatalf("RenewMessageLock calls in flight before release = %d; want %d", got, tt.wantInflight)
				}
				release()
				// release returned only after the renewal goroutine finished its call, so the goroutine no
				// longer writes msg.LockedUntil (-race checks this read).
				if got := tt.fake.inflight.Load(); got != 0 {
					t.Errorf("RenewMessageLock calls in flight after release = %d; want 0", got)
				}
				if until, _ := LockedUntil(ctx); !msg.LockedUntil.Equal(until) {
					t.Errorf("msg.LockedUntil = %v; LockedUntil(ctx) = %v; want equal", msg.LockedUntil, until)
				}
				synctest.Wait() // the goroutine may still be between close(done) and its exit
				if n := holdGoroutines(); n != 0 {
					t.Errorf("renewal goroutines after release = %d; want 0", n)
				}
				if cause := checkCause(t, ctx, context.Canceled); cause != context.Canceled {
					t.Errorf("cause after release = %v; want context.Canceled", cause)
				}
				release() // idempotent
				if st := r.Stats(); st.Held != 0 || st.LocksLost != 0 || st.Failures != 0 {
					t.Errorf("stats after release = %+v; want nothing held, lost or failed", st)
				}
				if n := len(tt.fake.snapshot()); n != 1 {
					t.Errorf("%d renewal calls; want 1", n)
				}
			})
		})
	}
}

func TestParentCancelDoesNotStopRenewal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fake := &fakeRenewer{lockDuration: 30 * time.Second}
		r := New(fake, nil)
		defer r.Close()
		parent, cancel := context.WithCancelCause(context.Background())
		start := time.Now()
		ctx, release := r.Hold(parent, lockedMessage(1, 30*time.Second))
		defer release()

		budget := errors.New("budget exhausted")
		cancel(budget)
		if cause := checkCause(t, ctx, budget); cause != budget {
			t.Errorf("cause = %v; want the parent's cause", cause)
		}
		sleepUntil(start.Add(45 * time.Second))
		if n := len(fake.snapshot()); n != 2 {
			t.Errorf("%d renewals after the parent was cancelled; want 2 (renewal continues until release)", n)
		}
	})
}

func TestHoldRejectsUnrenewableMessage(t *testing.T) {
	tests := []struct {
		name string
		msg  *azservicebus.ReceivedMessage
	}{
		{name: "nil message", msg: nil},
		{name: "no LockedUntil", msg: &azservicebus.ReceivedMessage{MessageID: "m"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				fake := &fakeRenewer{lockDuration: time.Minute}
				r := New(fake, nil)
				defer r.Close()
				ctx, release := r.Hold(context.Background(), tt.msg)
				defer release()
				checkCause(t, ctx, ErrNotRenewable)
				if n := holdGoroutines(); n != 0 {
					t.Errorf("renewal goroutines = %d; want 0 (nothing started)", n)
				}
				if st := r.Stats(); st.Held != 0 {
					t.Errorf("Held = %d; want 0", st.Held)
				}
			})
		})
	}
}

func TestBoundedParallelism(t *testing.T) {
	for _, limit := range []int{1, 16, 50} {
		t.Run(fmt.Sprint(limit), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const holds = 1000
				// 1000 renewals of 1ms each take 1s through one slot: well inside the 5s lock's 2.5s buffer.
				fake := &fakeRenewer{lockDuration: 5 * time.Second, latency: time.Millisecond}
				r := New(fake, &Options{MaxConcurrentRenewals: limit})
				defer r.Close()
				start := time.Now()
				for i := range holds {
					_, release := r.Hold(context.Background(), lockedMessage(i, 5*time.Second))
					defer release()
				}
				sleepUntil(start.Add(20 * time.Second))

				if got := fake.maxInflight.Load(); got != int64(limit) {
					t.Errorf("max concurrent RenewMessageLock calls = %d; want exactly the limit %d", got, limit)
				}
				st := r.Stats()
				if st.LocksLost != 0 || st.Held != holds || st.Renewals < 4*holds {
					t.Errorf("stats = %+v; want nothing lost, %d held, at least %d renewals", st, holds, 4*holds)
				}
				if st.LatencyMax != time.Millisecond || st.Mean() != time.Millisecond {
					t.Errorf("latency max %v mean %v; want 1ms", st.LatencyMax, st.Mean())
				}
			})
		})
	}
}

func TestSlotWaitPastLockedUntilLosesLock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// One slot, held by A's 5s renewal call from +10s to +15s. B arrives at +10.5s with 300ms left:
		// it must renew at once but cannot get the slot before its LockedUntil.
		fake := &fakeRenewer{lockDuration: 20 * time.Second, latency: 5 * time.Second}
		r := New(fake, &Options{MaxConcurrentRenewals: 1})
		defer r.Close()
		start := time.Now()
		ctxA, releaseA := r.Hold(context.Background(), lockedMessage(1, 20*time.Second))
		defer releaseA()

		sleepUntil(start.Add(10500 * time.Millisecond))
		ctxB, releaseB := r.Hold(context.Background(), lockedMessage(2, 300*time.Millisecond))
		defer releaseB()
		sleepUntil(start.Add(10800*time.Millisecond - time.Nanosecond))
		checkUndone(t, ctxB, "before B's LockedUntil")
		sleepUntil(start.Add(10800 * time.Millisecond))
		cause := checkCause(t, ctxB, ErrLockLost)
		if want := "waiting for one of 1 renewal slots"; !strings.Contains(cause.Error(), want) {
			t.Errorf("cause %q does not say %q", cause, want)
		}

		sleepUntil(start.Add(15 * time.Second))
		checkUndone(t, ctxA, "after A's slow renewal")
		if n := len(fake.snapshot()); n != 1 {
			t.Errorf("%d calls; want only A's", n)
		}
		if st := r.Stats(); st.LocksLost != 1 || st.Renewals != 1 || st.Failures != 0 {
			t.Errorf("stats = %+v; want 1 lost, 1 renewal, no failed call", st)
		}
	})
}

func TestCloseJoinsAll(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fake := &fakeRenewer{lockDuration: 10 * time.Second, latency: time.Second}
		r := New(fake, nil)
		start := time.Now()
		ctxs := make([]context.Context, 0, 100)
		const holds = 100
		for i := range holds {
			ctx, _ := r.Hold(context.Background(), lockedMessage(i, time.Duration(5+i%10)*time.Second))
			ctxs = append(ctxs, ctx)
		}
		sleepUntil(start.Add(5*time.Second + 500*time.Millisecond)) // some renewals in flight
		// A lock of L ≤ 20 s is first renewed at L/2: locks up to 11 s have their goroutine by now, the
		// others only a timer (i%10 = 0…6: 70 holds).
		if n := holdGoroutines(); n != 70 {
			t.Fatalf("renewal goroutines before Close = %d; want 70", n)
		}
		if fake.inflight.Load() == 0 {
			t.Fatal("no renewal in flight before Close; the test would not cover interrupting one")
		}
		r.Close()
		synctest.Wait() // goroutines may still be between close(done) and their exit
		if n := holdGoroutines(); n != 0 {
			t.Errorf("renewal goroutines after Close = %d; want 0", n)
		}
		for i, ctx := range ctxs {
			if cause := context.Cause(ctx); cause != context.Canceled {
				t.Fatalf("hold %d: cause after Close = %v; want context.Canceled", i, cause)
			}
		}
		if st := r.Stats(); st.Held != 0 || st.LocksLost != 0 {
			t.Errorf("stats after Close = %+v; want nothing held or lost", st)
		}

		ctx, release := r.Hold(context.Background(), lockedMessage(1000, time.Minute))
		checkCause(t, ctx, ErrClosed)
		release()
		r.Close() // idempotent
		if n := holdGoroutines(); n != 0 {
			t.Errorf("renewal goroutines after Hold on a closed renewer = %d; want 0", n)
		}
	})
}

func TestLockedUntilOutsideHold(t *testing.T) {
	if _, ok := LockedUntil(context.Background()); ok {
		t.Error("LockedUntil(context.Background()) reported ok; want false")
	}
}

// recordingHandler is a slog.Handler that keeps every record's level, message and attributes.
type recordingHandler struct {
	mu      sync.Mutex
	records []string // guarded by mu; "LEVEL message key=value …"
}

func (h *recordingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordingHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *recordingHandler) WithGroup(string) slog.Handler            { return h }
func (h *recordingHandler) Handle(_ context.Context, rec slog.Record) error {
	line := rec.Level.String() + " " + rec.Message
	rec.Attrs(func(a slog.Attr) bool {
		line += " " + a.String()
		return true
	})
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, line)
	return nil
}

func (h *recordingHandler) find(level slog.Level, substrings ...string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
next:
	for _, line := range h.records {
		if !strings.HasPrefix(line, level.String()+" ") {
			continue
		}
		for _, s := range substrings {
			if !strings.Contains(line, s) {
				continue next
			}
		}
		return true
	}
	return false
}

func TestLogsSlowRenewalAndLostLock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// A 10s lock is renewed at +5s with 5s left; a 3s call uses more than half of that.
		fake := &fakeRenewer{lockDuration: 10 * time.Second, latency: 3 * time.Second, fail: func(n int) error {
			if n == 1 {
				return &azservicebus.Error{Code: azservicebus.CodeLockLost}
			}
			return nil
		}}
		logs := &recordingHandler{}
		r := New(fake, &Options{Logger: slog.New(logs)})
		defer r.Close()
		start := time.Now()
		_, release := r.Hold(context.Background(), lockedMessage(42, 10*time.Second))
		defer release()

		sleepUntil(start.Add(30 * time.Second))
		if !logs.find(slog.LevelWarn, "slow lock renewal", "message_id=msg-42", "sequence_number=42", "latency=3s") {
			t.Errorf("no warning about the slow renewal; logs: %q", logs.records)
		}
		if !logs.find(slog.LevelWarn, "message lock lost", "message_id=msg-42", "locklost") {
			t.Errorf("no warning about the lost lock; logs: %q", logs.records)
		}
	})
}
