package lockrenew

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
)

// SessionLockRenewer is the part of *azservicebus.SessionReceiver a session hold uses.
//
// RenewSessionLock extends the session's lock and, on success, makes LockedUntil return the new expiry; it
// blocks until the service answers or ctx ends (the renewer gives every call a deadline no later than the
// lock's expiry). LockedUntil returns the lock's current expiry (service clock). SessionID names the session.
// The renewer calls them from the hold's goroutine only, never concurrently with each other.
type SessionLockRenewer interface {
	RenewSessionLock(ctx context.Context, options *azservicebus.RenewSessionLockOptions) error
	LockedUntil() time.Time
	SessionID() string
}

var _ SessionLockRenewer = (*azservicebus.SessionReceiver)(nil)

// HoldSession keeps the lock of an accepted session alive until release is called, with the policy,
// concurrency bound, maximum renewal duration and clock rules of Hold. Messages of a session have no lock
// of their own: the session lock covers every message received through the session receiver (the service
// refuses to renew one of them), so hold the session, not its messages, and process them under the context
// HoldSession returns (or contexts derived from it).
//
// That context is cancelled with a cause wrapping ErrSessionLockLost when the session lock is lost — a
// renewal refused with a permanent error (as for Hold), or with CodeConnectionLost: the session lock lives on
// the receive link that accepted it, and a lost connection takes that link with it — or LockedUntil passed
// without a successful renewal; with ErrMaxRenewal when the maximum renewal duration is reached. On
// ErrSessionLockLost none of the messages received under the lock may be settled: close the session receiver
// and let Service Bus redeliver them. Options.OnLockLost is not called for session holds. release stops
// renewal, cancels the context and waits for the hold's goroutine; release before closing the session
// receiver, so no renewal races the close.
//
// Receive the session from a client built with SessionRetryOptions: with the SDK's usual retries,
// azservicebus v1.11.0 answers a lost session lock inside RenewSessionLock by accepting the session again
// (it recovers session links on com.microsoft:session-lock-lost, internal/errors.go
// GetRecoveryKindForSession), so the renewal succeeds under a new lock while the messages received under the
// old one can no longer be settled.
//
// If s is nil, or the Renewer is closed, HoldSession returns an already-cancelled context (cause
// ErrNotRenewable or ErrClosed) and a no-op release.
func (r *Renewer) HoldSession(ctx context.Context, s SessionLockRenewer) (context.Context, func()) {
	sessCtx, cancel := context.WithCancelCause(ctx)
	if s == nil {
		cause := fmt.Errorf("%w: nil session", ErrNotRenewable)
		r.logger.Error("lockrenew: cannot hold session", slog.Any("error", cause))
		cancel(cause)
		return sessCtx, func() {}
	}
	return r.start(sessCtx, cancel, newHold(ctx, r, nil, s, s.LockedUntil(), cancel))
}

// SessionRetryOptions returns the client retry options for session receivers whose session locks a Renewer
// holds: those of RetryOptions(lockDuration) without the SDK's own retries (MaxRetries −1). The renewer
// retries a failed renewal itself, until the lock's expiry, so nothing is lost; what changes is that a lost
// session lock surfaces as CodeLockLost instead of being papered over by a new accept (see HoldSession).
func SessionRetryOptions(lockDuration time.Duration) azservicebus.RetryOptions {
	o := RetryOptions(lockDuration)
	o.MaxRetries = -1
	return o
}

// isConnectionLost reports whether err is the SDK's CodeConnectionLost.
func isConnectionLost(err error) bool {
	var sbErr *azservicebus.Error
	return errors.As(err, &sbErr) && sbErr.Code == azservicebus.CodeConnectionLost
}
