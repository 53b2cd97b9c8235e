// Package lockrenew keeps the peek-lock of Azure Service Bus messages alive while they are processed,
// for programs that use github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus directly (the Go
// SDK has no processor and no automatic lock renewal).
//
// # Usage
//
// Create one Renewer per *azservicebus.Receiver, Hold every message as soon as it is received — also
// the ones that still wait for a worker — and process each message under the context Hold returns.
// When that context is cancelled with ErrLockLost, the lock is gone and the message must not be
// completed; with ErrMaxRenewal, renewal stopped but the lock is still valid, so the message can be
// abandoned. Release the hold once the message is settled.
//
//	renewer := lockrenew.New(receiver, &lockrenew.Options{MaxRenewalDuration: 10 * time.Minute})
//	defer renewer.Close()
//
//	msgs, err := receiver.ReceiveMessages(ctx, 10, nil)
//	if err != nil {
//		return err
//	}
//	for _, msg := range msgs {
//		msgCtx, release := renewer.Hold(ctx, msg)
//		go func() {
//			defer release()
//			if err := process(msgCtx, msg); err != nil {
//				if errors.Is(context.Cause(msgCtx), lockrenew.ErrLockLost) {
//					return // someone else may own the message now: do not settle it
//				}
//				_ = receiver.AbandonMessage(context.WithoutCancel(msgCtx), msg, nil)
//				return
//			}
//			_ = receiver.CompleteMessage(context.WithoutCancel(msgCtx), msg, nil)
//		}()
//	}
//
// # Sessions
//
// On a session-enabled queue or subscription the session lock covers every message received through the
// session receiver; the messages have no lock of their own ("message locks are not relevant for session
// enabled queues", azure-sdk-for-net#21285). Hold the session with HoldSession instead of holding its
// messages: the same policy, bound, maximum duration and clock rules apply, renewals are counted in
// Stats.SessionRenewals, and a lost session lock cancels the session's context with ErrSessionLockLost
// (which wraps ErrLockLost), after which none of its messages may be settled. Accept the session with a
// client built with SessionRetryOptions (see HoldSession for why).
//
// # Policy
//
// The policy is the one of the .NET and Java Service Bus processors. With remaining = LockedUntil − now,
// a hold renews at LockedUntil − min(remaining/2, 10 s), or at once when less than 400 ms remain, and
// re-reads LockedUntil after every renewal (RenewMessageLock updates it). A 60 s lock is renewed 10 s
// before it expires, a 10 s lock after 5 s; each lock period gets exactly one renewal.
//
// A hold ends, and the message's context is cancelled with a cause, when:
//
//   - RenewMessageLock fails with a permanent error: an *azservicebus.Error with CodeLockLost,
//     CodeNotFound, CodeUnauthorizedAccess or CodeClosed ⇒ ErrLockLost, wrapping that error. None of these
//     can succeed on a retry within the lock period.
//   - LockedUntil passes without a successful renewal ⇒ ErrLockLost. Transient failures — CodeConnectionLost,
//     CodeTimeout, any other code, and errors that are not *azservicebus.Error (network) — are retried
//     after 250 ms, 500 ms, 1 s, then every 2 s, as long as the attempt starts before LockedUntil; every
//     call's deadline is LockedUntil.
//   - The hold has lasted Options.MaxRenewalDuration (default 5 min) ⇒ ErrMaxRenewal.
//
// It also ends, without a cause of its own (context.Canceled), on release or Close. Cancelling the
// context passed to Hold cancels the message's context but does not stop renewal, so the holder can
// still settle the message after, say, a time budget ran out.
//
// No two attempts on one lock start less than 250 ms apart, so a lock shorter than 400 ms (or one that
// looks that short on a skewed clock) is not renewed in a tight loop: it is renewed once and then lost.
//
// # Clocks
//
// LockedUntil is a time on the service's clock. Without Options.LockDuration it is compared with the local
// clock, as the .NET processor does, so clock skew shifts the schedule: a local clock behind the service's
// renews too late and loses locks, one ahead renews too often, and one ahead by more than a lock loses every
// lock at once. With Options.LockDuration (the entity's lock duration) expiry is judged on the service's
// clock: a renewal sent at local time t holds the lock until t + LockDuration, and the offset learnt from
// renewals places the locks of later messages; skew then changes nothing.
//
// # Client retries
//
// The SDK retries inside every call with the client's RetryOptions, whose default first retry (about 4 s)
// is longer than the renewal lead of a short lock: one dropped connection would lose every lock held.
// Build the client with RetryOptions(lockDuration) so that recovery fits inside the lead.
//
// # Concurrency and data ownership
//
// Each hold has one goroutine, started when its first renewal is due (a message released before that never
// has one), which sleeps between renewals; release and Close stop and join it.
// RenewMessageLock calls are bounded across all holds of a Renewer by Options.MaxConcurrentRenewals (the
// SDK renews one lock token per request). A renewal that cannot get a slot before LockedUntil loses the
// lock, so size the bound for the number of messages held at once and the renewal latency: Stats reports
// the latency.
//
// While a message is held, its renewal goroutine is the only writer of msg.LockedUntil (through
// RenewMessageLock). Reading msg.LockedUntil from another goroutine before release returns is a data
// race: use LockedUntil(msgCtx) instead. Settling the message concurrently with a renewal is safe: the
// SDK's settlement does not read LockedUntil.
//
// A successful renewal does not prove the message can still be settled: the service detaches a receive
// link that is idle for 10 minutes, after which renewals over the management link may succeed while
// settlement fails with a lost lock.
package lockrenew
