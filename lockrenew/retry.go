package lockrenew

import (
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
)

// Bounds of the retry options derived by RetryOptions.
const (
	minRetryDelay     = 50 * time.Millisecond
	maxFirstRetry     = time.Second
	maxRetryDelayCap  = 2500 * time.Millisecond
	minRetries        = 3
	maxDerivedRetries = 50
)

// RetryOptions returns azservicebus client retry options sized for an entity whose lock duration is
// lockDuration, so that recovering from a dropped connection fits inside the renewal lead of a held lock.
//
// Why: the SDK's defaults wait about 4 s (3.2–5.2 s with jitter) before the first retry after a failure,
// then 12 s, 28 s. A RenewMessageLock that meets a dropped connection sleeps that long before it reconnects
// and tries again, but a hold renews a lock only min(lock/2, 10 s) before it expires: 2.5 s on a 5 s lock
// (Azure's minimum), 5 s on a 10 s lock. With the defaults one connection drop loses every lock held on
// such an entity. The SDK waits (2^i − 1) × RetryDelay × [0.8, 1.3) before retry i, capped at
// MaxRetryDelay (azservicebus internal/utils/retrier.go, v1.11.0), so with lead = min(lock/2, 10 s):
//
//   - RetryDelay = lead/10, between 50 ms and 1 s: the first retry comes after at most 13 % of the lead;
//   - MaxRetryDelay = lead/4, between RetryDelay and 2.5 s: at least three attempts fit in the lead;
//   - MaxRetries: enough attempts to keep trying for about one lock duration (at least 3, at most 50, about
//     2 min), the longest an operation on a held message can still succeed. Every caller bounds its calls
//     with a context anyway (the renewer with LockedUntil, settlement with its timeout).
//
// A 5 s lock gets 250 ms / 625 ms / 9 retries, a 60 s lock 1 s / 2.5 s / 25 retries. lockDuration ≤ 0
// means Azure's default lock duration, 60 s. Use the same options for every client that holds or settles
// the entity's messages.
//
// They do not reach settlement: azservicebus v1.11.0 settles (complete, abandon, dead-letter, defer) with
// RetryOptions{}, the SDK defaults, whatever the client says (messageSettler.go, settleWithRetries), so a
// settlement that meets a dropped connection retries after 3.2–5.2 s. Keep renewing while settling (release
// the hold only after the settlement returned) and give settlement more than that (the run allows 15 s):
// the renewals, which do use these options, recover the connection and keep the lock meanwhile.
func RetryOptions(lockDuration time.Duration) azservicebus.RetryOptions {
	if lockDuration <= 0 {
		lockDuration = time.Minute
	}
	lead := min(lockDuration/2, maxRenewBuffer)
	first := min(max(lead/10, minRetryDelay), maxFirstRetry)
	capDelay := min(max(lead/4, first), maxRetryDelayCap)
	retries := 0
	var total, delay time.Duration // delay: the nominal wait before retry i, (2^i − 1) × first, capped
	for retries < maxDerivedRetries && (retries < minRetries || total < lockDuration) {
		retries++
		delay = min(2*delay+first, capDelay)
		total += delay
	}
	return azservicebus.RetryOptions{MaxRetries: int32(retries), RetryDelay: first, MaxRetryDelay: capDelay}
}
