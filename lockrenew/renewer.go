package lockrenew

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
)

// LockRenewer is the part of *azservicebus.Receiver the renewer uses.
//
// RenewMessageLock extends the lock of msg and, on success, stores the new expiry in msg.LockedUntil.
// It blocks until the service answers or ctx ends; the renewer gives every call a deadline no later than
// the lock's current LockedUntil, so an implementation must honour ctx. Implementations may retry
// internally (the SDK retries with the client's RetryOptions); the renewer retries transient failures on
// top of that until LockedUntil. The renewer calls RenewMessageLock concurrently for different messages
// (at most Options.MaxConcurrentRenewals at once) and never concurrently for the same message.
type LockRenewer interface {
	RenewMessageLock(ctx context.Context, msg *azservicebus.ReceivedMessage, options *azservicebus.RenewMessageLockOptions) error
}

var _ LockRenewer = (*azservicebus.Receiver)(nil)

// Causes of a held message's context. Test them with errors.Is on context.Cause.
var (
	// ErrLockLost: the lock could not be renewed. Either the service refused the renewal with a
	// permanent error (the cause also wraps that *azservicebus.Error), or LockedUntil passed without a
	// successful renewal (the cause also wraps the last transient error, if any). The message must not be
	// completed: another receiver may already own it.
	ErrLockLost = errors.New("lockrenew: message lock lost")

	// ErrSessionLockLost: the lock of a session held with HoldSession could not be renewed; it wraps
	// ErrLockLost, so errors.Is(cause, ErrLockLost) holds for it too. Every message received under that lock
	// is lost with it: none of them may be settled (another receiver may hold the session now), and Service
	// Bus redelivers them, in order, to whoever accepts the session next.
	ErrSessionLockLost = fmt.Errorf("lockrenew: session lock lost (%w)", ErrLockLost)

	// ErrMaxRenewal: the hold reached Options.MaxRenewalDuration and renewal stopped. The lock is still
	// valid until the message's last LockedUntil (see LockedUntil), so the holder can still settle it,
	// typically by abandoning it.
	ErrMaxRenewal = errors.New("lockrenew: maximum lock renewal duration reached")

	// ErrClosed: Hold was called after Close.
	ErrClosed = errors.New("lockrenew: renewer closed")

	// ErrNotRenewable: the message passed to Hold is nil or has no lock (LockedUntil is nil, as for
	// messages received in ReceiveAndDelete mode or peeked).
	ErrNotRenewable = errors.New("lockrenew: message has no renewable lock")
)

// Defaults applied by New for zero Options fields.
const (
	DefaultMaxRenewalDuration    = 5 * time.Minute
	DefaultMaxConcurrentRenewals = 16
)

// Options configure a Renewer. A nil *Options, and every zero field, means the default.
type Options struct {
	// MaxRenewalDuration bounds how long one message is kept locked, counted from Hold. When it is
	// reached, renewal stops and the message's context is cancelled with ErrMaxRenewal while the lock is
	// still valid. 0 ⇒ 5 min (the .NET default); negative ⇒ no limit.
	MaxRenewalDuration time.Duration

	// MaxConcurrentRenewals bounds the RenewMessageLock calls in flight across all holds of this
	// Renewer. The Go SDK renews one lock token per request, so this bounds the load put on the
	// namespace. 0 ⇒ 16; negative is invalid.
	MaxConcurrentRenewals int

	// Logger receives renewal events: debug for each renewal and retried failure, info when the
	// maximum renewal duration is reached, warn for lost locks and for renewals that took more than
	// half of the lock time left when they started, error for messages Hold cannot renew. nil ⇒ discard.
	Logger *slog.Logger

	// LockDuration is the entity's lock duration: the lock the service grants on receive and on every
	// renewal. When set, a lock's expiry is judged on the service's clock rather than by comparing
	// LockedUntil (a service timestamp) with the local clock: a renewal sent at local time t holds the lock
	// until t + LockDuration, so a local clock ahead of or behind the service's neither loses locks nor
	// renews them more than once per lock window. It must equal the entity's lock duration (change both
	// together): a longer value makes locks expire before they are renewed. The renewer logs a warning when
	// LockedUntil disagrees with it by more than max(2 s, LockDuration/10). 0 ⇒ LockedUntil is compared
	// with the local clock, as the .NET processor does; negative is invalid.
	LockDuration time.Duration

	// OnLockLost, if set, is called once per message hold whose lock is lost (session holds: see HoldSession) (never for ErrMaxRenewal, a release
	// or Close), with the same cause as the message's context, after that context is cancelled. It runs
	// on the hold's renewal goroutine: it must return promptly and must not call that hold's release
	// func or Close (both wait for this goroutine). Releasing other holds is fine.
	OnLockLost func(msg *azservicebus.ReceivedMessage, cause error)
}

// Validate reports the first invalid field of o. A nil *Options is valid.
func (o *Options) Validate() error {
	if o == nil {
		return nil
	}
	if o.MaxConcurrentRenewals < 0 {
		return fmt.Errorf("lockrenew: Options.MaxConcurrentRenewals is %d; want 0 (default %d) or a positive number",
			o.MaxConcurrentRenewals, DefaultMaxConcurrentRenewals)
	}
	if o.LockDuration < 0 {
		return fmt.Errorf("lockrenew: Options.LockDuration is %v; want 0 (judge LockedUntil on the local clock) or the entity's lock duration", o.LockDuration)
	}
	return nil
}

// Renewer keeps the locks of held messages alive in the background. Each Hold arms a timer for its first
// renewal; from then on one goroutine per hold sleeps until the next renewal is due. RenewMessageLock calls
// are bounded across holds by Options.MaxConcurrentRenewals.
//
// A Renewer is safe for concurrent use. Close releases every hold still active.
type Renewer struct {
	client      LockRenewer   // nil: session holds only
	maxRenewal  time.Duration // ≤ 0: no limit
	concurrency int
	logger      *slog.Logger
	onLockLost  func(*azservicebus.ReceivedMessage, error)
	lockDur     time.Duration // Options.LockDuration; 0: judge LockedUntil on the local clock

	// clock is the offset of the local clock from the service's, learnt from renewals when lockDur is set.
	clock struct {
		mu     sync.Mutex    // guards the fields below
		known  bool          // a renewal has succeeded
		offset time.Duration // lower bound of local − service time, from the latest renewal
		warned bool          // the disagreement warning was logged
	}

	// slots holds one token per RenewMessageLock call in flight; its capacity is the concurrency bound.
	slots chan struct{}

	stats counters // atomics; written by hold goroutines, read by Stats

	mu     sync.Mutex
	closed bool               // guarded by mu; set once by Close
	holds  map[*hold]struct{} // guarded by mu; holds started and not yet released
}

// New returns a Renewer that renews message locks through client (usually the *azservicebus.Receiver the
// messages were received with) and session locks through the session receivers passed to HoldSession. client
// may be nil for a Renewer that only holds sessions (Hold then returns ErrNotRenewable). It panics if opts is
// invalid (see Options.Validate): a programming error.
func New(client LockRenewer, opts *Options) *Renewer {
	if err := opts.Validate(); err != nil {
		panic(err.Error())
	}
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.MaxRenewalDuration == 0 {
		o.MaxRenewalDuration = DefaultMaxRenewalDuration
	}
	if o.MaxConcurrentRenewals == 0 {
		o.MaxConcurrentRenewals = DefaultMaxConcurrentRenewals
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Renewer{
		client:      client,
		maxRenewal:  o.MaxRenewalDuration,
		concurrency: o.MaxConcurrentRenewals,
		logger:      o.Logger,
		onLockLost:  o.OnLockLost,
		lockDur:     o.LockDuration,
		slots:       make(chan struct{}, o.MaxConcurrentRenewals),
		holds:       make(map[*hold]struct{}),
	}
}

// Hold starts renewing msg's lock until release is called. Call it as soon as msg is received — also
// for messages that still wait for a worker — and call release once the message is settled (or
// abandoned).
//
// The returned context is a child of ctx. Besides ctx's own cancellation, it is cancelled with cause
// ErrLockLost (wrapping the SDK error when there is one) or ErrMaxRenewal; use errors.Is on
// context.Cause. Cancelling ctx cancels the returned context but does not stop renewal, so the holder
// can still settle the message; only release (or Close) stops it.
//
// release stops renewal, cancels the context (cause context.Canceled unless it already had a cause) and
// waits for the renewal goroutine to return. It is idempotent and safe to call from any goroutine
// except from Options.OnLockLost for the same message. Call it even after the context was cancelled:
// the hold stays counted in Stats.Held until released. Until release returns, the renewal goroutine is the
// only writer of msg.LockedUntil: read it through LockedUntil(ctx) instead, or after release.
//
// A renewal that races with settlement can report a lost lock for a message that was just settled;
// release promptly after settling to keep that window small. A renewal that fails after release
// was called is counted neither as a failure nor as a lost lock.
//
// If msg is nil or has no lock, or the Renewer is closed, Hold returns an already-cancelled context
// (cause ErrNotRenewable or ErrClosed) and a no-op release.
func (r *Renewer) Hold(ctx context.Context, msg *azservicebus.ReceivedMessage) (context.Context, func()) {
	msgCtx, cancel := context.WithCancelCause(ctx)
	if msg == nil || msg.LockedUntil == nil || r.client == nil {
		cause := fmt.Errorf("%w: message is nil or its LockedUntil is nil (was it received in PeekLock mode?)", ErrNotRenewable)
		if r.client == nil {
			cause = fmt.Errorf("%w: the Renewer was created without a LockRenewer (session holds only)", ErrNotRenewable)
		}
		r.logger.Error("lockrenew: cannot hold message", slog.Any("error", cause))
		cancel(cause)
		return msgCtx, func() {}
	}
	return r.start(msgCtx, cancel, newHold(ctx, r, msg, nil, *msg.LockedUntil, cancel))
}

// start registers and arms h, whose context is msgCtx, unless the Renewer is closed.
func (r *Renewer) start(msgCtx context.Context, cancel context.CancelCauseFunc, h *hold) (context.Context, func()) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		h.stop()
		cancel(ErrClosed)
		return msgCtx, func() {}
	}
	h.start() // under mu, so that Close finds every registered hold started
	r.holds[h] = struct{}{}
	r.stats.held.Add(1)
	r.mu.Unlock()
	return context.WithValue(msgCtx, holdKey{}, h), h.release
}

// Close releases every hold that is still active (their contexts are cancelled with context.Canceled
// unless they already had a cause) and waits for their goroutines. Hold after Close returns an
// already-cancelled context with cause ErrClosed. Close is idempotent; it does not close the
// LockRenewer. It must not be called from Options.OnLockLost.
func (r *Renewer) Close() {
	r.mu.Lock()
	r.closed = true
	active := make([]*hold, 0, len(r.holds))
	for h := range r.holds {
		active = append(active, h)
	}
	r.mu.Unlock()

	// Signal every goroutine first so they wind down in parallel, then join them one by one.
	for _, h := range active {
		h.stop()
	}
	for _, h := range active {
		h.release()
	}
}

// forget removes a released hold from the active set.
func (r *Renewer) forget(h *hold) {
	r.mu.Lock()
	delete(r.holds, h)
	r.mu.Unlock()
	r.stats.held.Add(-1)
}

// holdKey is the context key under which Hold stores its *hold.
type holdKey struct{}

// LockedUntil returns the latest known lock expiry of the message held by ctx, a context returned by
// Hold (or derived from one). It is safe to call concurrently with renewal, unlike reading
// msg.LockedUntil. ok is false if ctx does not come from Hold.
func LockedUntil(ctx context.Context) (t time.Time, ok bool) {
	h, ok := ctx.Value(holdKey{}).(*hold)
	if !ok {
		return time.Time{}, false
	}
	return *h.lockedUntil.Load(), true
}

// initialExpiry returns when a lock whose LockedUntil is lockedUntil, handed to Hold at local time now, ends on
// the local clock. Without LockDuration that is lockedUntil itself. With it: lockedUntil shifted by the clock
// offset learnt from earlier renewals, if any; else lockedUntil read on the local clock, which cannot be
// later than now + LockDuration (the lock was granted before Hold) nor already past for a lock just granted:
// then the local clock is ahead, and the lock is renewed soon (half a lock from now) to learn the offset.
func (r *Renewer) initialExpiry(lockedUntil, now time.Time) time.Time {
	if r.lockDur <= 0 {
		return lockedUntil
	}
	latest := now.Add(r.lockDur)
	r.clock.mu.Lock()
	known, offset := r.clock.known, r.clock.offset
	r.clock.mu.Unlock()
	switch {
	case known:
		return minTime(lockedUntil.Add(offset), latest)
	case lockedUntil.After(now):
		return minTime(lockedUntil, latest)
	default:
		return now.Add(r.lockDur / 2)
	}
}

// renewedExpiry returns when a lock renewed by a call sent at local time sent, which the service extended to
// lockedUntil, ends on the local clock. With LockDuration the service granted it at or after sent, so it ends
// no earlier than sent + LockDuration, whatever the clocks say; the offset learnt serves later Holds.
func (r *Renewer) renewedExpiry(sent, lockedUntil time.Time) time.Time {
	if r.lockDur <= 0 {
		return lockedUntil
	}
	expiry := sent.Add(r.lockDur)
	offset := expiry.Sub(lockedUntil) // local − service, at most: the service granted it no earlier than sent
	r.clock.mu.Lock()
	r.clock.known, r.clock.offset = true, offset
	warn := !r.clock.warned && offset.Abs() > max(2*time.Second, r.lockDur/10)
	if warn {
		r.clock.warned = true
	}
	r.clock.mu.Unlock()
	if warn {
		r.logger.Warn("lockrenew: LockedUntil disagrees with the local clock plus LockDuration; judging lock expiry with LockDuration",
			slog.Duration("local_minus_service", offset), slog.Duration("lock_duration", r.lockDur),
			slog.String("check", "the local clock is off, or LockDuration is not the entity's lock duration"))
	}
	return expiry
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
