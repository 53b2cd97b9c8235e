package lockrenew

import (
	"errors"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
)

// Timing constants of the renewal policy. They follow the .NET and Java Service Bus processors.
const (
	// maxRenewBuffer is the largest lead time before LockedUntil at which a renewal is attempted.
	maxRenewBuffer = 10 * time.Second
	// renewNowThreshold: a lock with less than this left is renewed at once.
	renewNowThreshold = 400 * time.Millisecond
	// firstRetryDelay and maxRetryDelay bound the backoff between attempts after a transient error.
	firstRetryDelay = 250 * time.Millisecond
	maxRetryDelay   = 2 * time.Second
	// minRenewInterval is the floor on the time between two renewal attempts of one lock: a lock with less
	// than 400 ms left right after a renewal (a lock shorter than that, or a clock far ahead of the
	// service's) would otherwise be renewed again at once, forever.
	minRenewInterval = 250 * time.Millisecond
)

// renewAt returns when a lock that expires at lockedUntil, observed at now, should be renewed:
// lockedUntil − min(remaining/2, 10 s), or now when less than 400 ms remain.
func renewAt(lockedUntil, now time.Time) time.Time {
	remaining := lockedUntil.Sub(now)
	if remaining < renewNowThreshold {
		return now
	}
	return lockedUntil.Add(-min(remaining/2, maxRenewBuffer))
}

// nextRetryDelay returns the wait before the next attempt after a transient failure, given the previous
// wait (0 before the first retry): 250 ms, 500 ms, 1 s, 2 s, 2 s, …
func nextRetryDelay(prev time.Duration) time.Duration {
	if prev <= 0 {
		return firstRetryDelay
	}
	return min(2*prev, maxRetryDelay)
}

// isPermanent reports whether a RenewMessageLock error means the lock cannot be renewed any more, so
// retrying is pointless:
//
//   - CodeLockLost: the lock expired or the message was settled.
//   - CodeNotFound: the entity is gone.
//   - CodeUnauthorizedAccess: the credential can no longer renew; retrying within the lock window will
//     not fix it.
//   - CodeClosed: the receiver was closed; its locks cannot be renewed through it.
//
// Everything else is transient and retried until LockedUntil: CodeConnectionLost and CodeTimeout (the
// SDK already retried and gave up, but the lock may still be valid and the link may come back), any
// other *azservicebus.Error code, and any error that is not an *azservicebus.Error (network errors,
// deadlines of single attempts).
func isPermanent(err error) bool {
	var sbErr *azservicebus.Error
	if !errors.As(err, &sbErr) {
		return false
	}
	switch sbErr.Code {
	case azservicebus.CodeLockLost, azservicebus.CodeNotFound,
		azservicebus.CodeUnauthorizedAccess, azservicebus.CodeClosed:
		return true
	default:
		return false
	}
}

// event is what a hold waits for next.
type event int

const (
	evRenew      event = iota // attempt a renewal
	evMaxRenewal              // the maximum renewal duration has elapsed
	evExpired                 // LockedUntil has passed without a successful renewal
)

func (e event) String() string {
	switch e {
	case evRenew:
		return "renew"
	case evMaxRenewal:
		return "max-renewal"
	case evExpired:
		return "expired"
	default:
		return "unknown"
	}
}

// schedule decides the next event of a hold and when it happens. expiry is when the current lock ends on the
// local clock (see hold.expiry), now the current time, retryDelay the backoff after a transient failure (0
// when the last attempt succeeded or none was made), maxDeadline the end of the maximum renewal duration
// (zero: no limit) and notBefore the earliest time of the next attempt (the last attempt plus
// minRenewInterval; zero before the first).
//
// A renewal is only attempted strictly before both expiry and maxDeadline. When expiry comes no later than
// the other events the lock is lost; otherwise reaching maxDeadline ends the hold.
func schedule(expiry, now time.Time, retryDelay time.Duration, maxDeadline, notBefore time.Time) (time.Time, event) {
	at, ev := renewAt(expiry, now), evRenew
	if retryDelay > 0 {
		at = now.Add(retryDelay)
	}
	if at.Before(notBefore) {
		at = notBefore
	}
	if !maxDeadline.IsZero() && !at.Before(maxDeadline) {
		at, ev = maxDeadline, evMaxRenewal
	}
	if !at.Before(expiry) {
		at, ev = expiry, evExpired
	}
	return at, ev
}
