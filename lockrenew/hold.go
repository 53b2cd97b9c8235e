package lockrenew

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
)

// errNotExtended is returned (and retried like a transient error) when RenewMessageLock succeeded but
// did not move LockedUntil forward; without it a misbehaving LockRenewer would make the hold spin.
var errNotExtended = errors.New("lockrenew: renewal succeeded but did not extend LockedUntil")

// hold renews the lock of one message (Hold) or one session (HoldSession). Hold or HoldSession creates it; its
// run goroutine, started when the first renewal (or the end of the hold) is due, owns the renewal; release
// and Close stop it.
type hold struct {
	r *Renewer

	// msg is the held message, nil for a session hold. It is read by run; msg.LockedUntil is written only by
	// run (through RenewMessageLock) until done is closed.
	msg *azservicebus.ReceivedMessage
	// session is the held session, nil for a message hold. Only run calls its RenewSessionLock and
	// LockedUntil until done is closed.
	session SessionLockRenewer
	// sessionID is session's ID, read once by HoldSession. Immutable.
	sessionID string

	// maxDeadline is when the maximum renewal duration ends (zero: no limit). Immutable.
	maxDeadline time.Time

	// cancelMsg cancels the context returned by Hold. Safe from any goroutine.
	cancelMsg context.CancelCauseFunc

	// renewCtx is the parent of every RenewMessageLock call: it carries the values of the context passed
	// to Hold but not its cancellation, and is cancelled by stop (release or Close), which ends run.
	renewCtx context.Context
	stop     context.CancelFunc

	// done is closed when run returns, or by release when run never started.
	done chan struct{}

	// timer starts run when the hold's first event is due (see start).
	timer *time.Timer

	// releaseOnce makes release idempotent; concurrent callers wait for the first.
	releaseOnce sync.Once

	// lockedUntil is a copy of the latest msg.LockedUntil, written by run and read by LockedUntil(ctx).
	lockedUntil atomic.Pointer[time.Time]

	// expiry is when the current lock ends on the local clock: LockedUntil itself without
	// Options.LockDuration, else derived from the time renewals were sent (see Renewer.initialExpiry).
	// Set by newHold, then written and read by run only.
	expiry time.Time
}

// newHold returns the hold of msg, or of session when msg is nil. lu is its current LockedUntil.
func newHold(parent context.Context, r *Renewer, msg *azservicebus.ReceivedMessage, session SessionLockRenewer, lu time.Time,
	cancelMsg context.CancelCauseFunc) *hold {
	renewCtx, stop := context.WithCancel(context.WithoutCancel(parent))
	h := &hold{
		r:         r,
		msg:       msg,
		session:   session,
		cancelMsg: cancelMsg,
		renewCtx:  renewCtx,
		stop:      stop,
		done:      make(chan struct{}),
	}
	if session != nil {
		h.sessionID = session.SessionID()
	}
	if r.maxRenewal > 0 {
		h.maxDeadline = time.Now().Add(r.maxRenewal)
	}
	h.lockedUntil.Store(&lu)
	h.expiry = r.initialExpiry(lu, time.Now())
	return h
}

// stopped reports whether stop was called.
func (h *hold) stopped() bool {
	return h.renewCtx.Err() != nil
}

// start arms the hold: its goroutine (run) starts only when the first event is due, so a message released
// before its first renewal — short work — costs a timer rather than a goroutine.
func (h *hold) start() {
	at, ev := schedule(h.expiry, time.Now(), 0, h.maxDeadline, time.Time{})
	h.timer = time.AfterFunc(time.Until(at), func() { h.run(at, ev) })
}

// release stops renewal, waits for run, cancels the message context and forgets the hold.
func (h *hold) release() {
	h.releaseOnce.Do(func() {
		h.stop()
		if h.timer.Stop() {
			close(h.done) // run never started and never will
		} else {
			<-h.done
		}
		h.cancelMsg(nil)
		h.r.forget(h)
	})
}

// run is the hold's goroutine, started by start's timer when the first event (at, ev) is due: it handles the
// event, then sleeps until the next event of the policy (see schedule), renews, and returns on release, lost
// lock or maximum renewal duration.
func (h *hold) run(at time.Time, ev event) {
	defer close(h.done)

	var (
		lastErr     error         // last failed attempt since the last success
		retryDelay  time.Duration // backoff before the next attempt; 0 after a success
		lastAttempt time.Time     // start of the last attempt; zero before the first
	)
	for first := true; ; first = false {
		expiry := h.expiry
		if !first {
			notBefore := time.Time{}
			if !lastAttempt.IsZero() {
				notBefore = lastAttempt.Add(minRenewInterval)
			}
			at, ev = schedule(expiry, time.Now(), retryDelay, h.maxDeadline, notBefore)
		}
		if !h.sleepUntil(at) {
			return
		}
		lockedUntil := h.until()
		switch ev {
		case evExpired:
			h.lost(lockedUntil, lastErr)
			return
		case evMaxRenewal:
			h.maxReached(lockedUntil)
			return
		}

		lastAttempt = time.Now()
		err := h.renew(lockedUntil, expiry)
		switch {
		case h.stopped():
			return
		case err == nil:
			lastErr, retryDelay = nil, 0
		case h.permanent(err):
			h.lost(lockedUntil, err)
			return
		case !time.Now().Before(expiry):
			h.lost(lockedUntil, err)
			return
		default:
			lastErr, retryDelay = err, nextRetryDelay(retryDelay)
			if h.debugEnabled() {
				h.r.logger.Debug("lockrenew: transient renewal failure; retrying",
					h.attrs(slog.Any("error", err), slog.Duration("retry_in", retryDelay),
						slog.Time("locked_until", lockedUntil))...)
			}
		}
	}
}

// sleepUntil waits until t. It returns false if the hold was stopped first.
func (h *hold) sleepUntil(t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return !h.stopped()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-h.renewCtx.Done():
		return false
	}
}

// renew makes one renewal attempt of the lock whose LockedUntil (service clock) is lockedUntil and which
// ends at expiry on the local clock: it waits for a concurrency slot, then calls RenewMessageLock with a
// deadline of expiry. It records the attempt in the statistics and, on success, publishes the new
// LockedUntil and moves expiry.
func (h *hold) renew(lockedUntil, expiry time.Time) error {
	if err := h.acquireSlot(expiry); err != nil {
		return err
	}
	defer func() { <-h.r.slots }()

	callCtx, cancel := context.WithDeadline(h.renewCtx, expiry)
	defer cancel()
	start := time.Now()
	var err error
	if h.session != nil {
		err = h.session.RenewSessionLock(callCtx, nil)
	} else {
		err = h.r.client.RenewMessageLock(callCtx, h.msg, nil)
	}
	latency := time.Since(start)
	if err != nil && h.stopped() {
		return err // most likely cancelled by release: not counted
	}
	h.r.stats.observeLatency(latency)

	if err == nil {
		err = h.checkExtended(lockedUntil)
	}
	if err != nil {
		h.r.stats.failures.Add(1)
		return fmt.Errorf("renewing lock: %w", err)
	}
	if h.session != nil {
		h.r.stats.sessionRenewals.Add(1)
	} else {
		h.r.stats.renewals.Add(1)
	}
	newUntil := h.until()
	h.lockedUntil.Store(&newUntil)
	h.expiry = h.r.renewedExpiry(start, newUntil)

	remainingAtStart := expiry.Sub(start)
	if latency > remainingAtStart/2 {
		h.r.logger.Warn("lockrenew: slow lock renewal used more than half of the remaining lock time",
			h.attrs(slog.Duration("latency", latency), slog.Duration("remaining_at_start", remainingAtStart))...)
	} else if h.debugEnabled() {
		h.r.logger.Debug("lockrenew: lock renewed",
			h.attrs(slog.Duration("latency", latency), slog.Time("locked_until", newUntil))...)
	}
	return nil
}

// until returns the held lock's current LockedUntil (service clock). Only run calls it once the hold started.
func (h *hold) until() time.Time {
	if h.session != nil {
		return h.session.LockedUntil()
	}
	return *h.msg.LockedUntil
}

// permanent reports whether a renewal error ends the hold at once (see isPermanent). A session's lock also
// ends with its connection (see HoldSession).
func (h *hold) permanent(err error) bool {
	if h.session != nil && isConnectionLost(err) {
		return true
	}
	return isPermanent(err)
}

// checkExtended verifies, after a successful renewal, that LockedUntil moved past the previous expiry.
func (h *hold) checkExtended(previous time.Time) error {
	if h.session != nil {
		if !h.session.LockedUntil().After(previous) {
			return errNotExtended
		}
		return nil
	}
	if h.msg.LockedUntil == nil || !h.msg.LockedUntil.After(previous) {
		if h.msg.LockedUntil == nil {
			// Keep the invariant that a held message always has a LockedUntil.
			h.msg.LockedUntil = &previous
		}
		return errNotExtended
	}
	return nil
}

// acquireSlot takes a concurrency slot, waiting at most until expiry.
func (h *hold) acquireSlot(expiry time.Time) error {
	select {
	case h.r.slots <- struct{}{}:
		return nil
	default:
	}
	timer := time.NewTimer(time.Until(expiry))
	defer timer.Stop()
	select {
	case h.r.slots <- struct{}{}:
		return nil
	case <-timer.C:
		return fmt.Errorf("lock expired while waiting for one of %d renewal slots", h.r.concurrency)
	case <-h.renewCtx.Done():
		return context.Canceled
	}
}

// lost ends the hold with ErrLockLost: it counts the loss, cancels the message context and calls
// OnLockLost. err is the error that ended renewal, or nil if the lock simply expired.
func (h *hold) lost(lockedUntil time.Time, err error) {
	if h.stopped() {
		return
	}
	base := ErrLockLost
	if h.session != nil {
		base = ErrSessionLockLost
	}
	var cause error
	if err != nil && h.permanent(err) {
		cause = fmt.Errorf("%w: %w", base, err)
	} else if err != nil {
		cause = fmt.Errorf("%w: lock expired at %s; last renewal error: %w",
			base, lockedUntil.Format(time.RFC3339Nano), err)
	} else {
		cause = fmt.Errorf("%w: lock expired at %s without a successful renewal",
			base, lockedUntil.Format(time.RFC3339Nano))
	}
	if h.session != nil {
		h.r.stats.sessionLocksLost.Add(1)
		h.r.logger.Warn("lockrenew: session lock lost", h.attrs(slog.Any("error", cause))...)
		h.cancelMsg(cause)
		return
	}
	h.r.stats.locksLost.Add(1)
	h.r.logger.Warn("lockrenew: message lock lost", h.attrs(slog.Any("error", cause))...)
	h.cancelMsg(cause)
	if h.r.onLockLost != nil {
		h.r.onLockLost(h.msg, cause)
	}
}

// maxReached ends the hold with ErrMaxRenewal.
func (h *hold) maxReached(lockedUntil time.Time) {
	if h.stopped() {
		return
	}
	cause := fmt.Errorf("%w (%s); lock valid until %s",
		ErrMaxRenewal, h.r.maxRenewal, lockedUntil.Format(time.RFC3339Nano))
	h.r.stats.maxRenewalReached.Add(1)
	h.r.logger.Info("lockrenew: maximum renewal duration reached", h.attrs(slog.Any("error", cause))...)
	h.cancelMsg(cause)
}

// debugEnabled reports whether debug records would be logged, so building them can be skipped.
func (h *hold) debugEnabled() bool {
	return h.r.logger.Enabled(h.renewCtx, slog.LevelDebug)
}

// attrs returns the log attributes identifying the message or session, followed by extra.
func (h *hold) attrs(extra ...any) []any {
	out := make([]any, 0, 2+len(extra))
	if h.session != nil {
		return append(append(out, slog.String("session_id", h.sessionID)), extra...)
	}
	out = append(out, slog.String("message_id", h.msg.MessageID))
	if h.msg.SequenceNumber != nil {
		out = append(out, slog.Int64("sequence_number", *h.msg.SequenceNumber))
	}
	return append(out, extra...)
}
