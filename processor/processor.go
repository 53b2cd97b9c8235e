// Package processor is the extension point of holdfast: a Processor handles one Service Bus message and
// reports how the run should settle it.
package processor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
)

// Processor handles one received message.
//
// Process is called from a run's worker goroutines, possibly for several messages at once, so it must be safe
// for concurrent use. It blocks for as long as the work takes and must return promptly once ctx is done:
// ctx is cancelled with a cause when the message's lock is lost (lockrenew.ErrLockLost; on a session-enabled
// entity, the session's lock: lockrenew.ErrSessionLockLost, which wraps it), the maximum lock renewal duration
// is reached or the run budget is exhausted (see context.Cause). After ctx is done the run does not complete the
// message, whatever Outcome is returned. On a session-enabled entity the messages of one session are processed
// one at a time, in order; messages of different sessions concurrently.
//
// A Process call that has not returned a short grace period after ctx is done is abandoned by the run: the run
// stops waiting for it, abandons the message while its lock is still held, counts it as stuck in the run's
// summary and logs it. When such a call finally returns, its Outcome is ignored — the message is never settled
// by it — and its goroutine ends; it is the only goroutine a run leaves behind. A panic in Process is
// recovered and abandons the message.
//
// The run keeps renewing msg's lock while Process runs, and renewal updates msg.LockedUntil: reading that
// field from Process is a data race. lockrenew.LockedUntil(ctx) gives the current lock expiry safely.
//
// Process must not settle msg itself; the run settles it according to the returned Outcome. Retrying is the
// run's business: a transient failure is reported with Abandon, and Service Bus redelivers the message until
// its MaxDeliveryCount.
type Processor interface {
	Process(ctx context.Context, msg *azservicebus.ReceivedMessage) Outcome
}

// Func adapts a function to Processor.
type Func func(ctx context.Context, msg *azservicebus.ReceivedMessage) Outcome

// Process calls f(ctx, msg).
func (f Func) Process(ctx context.Context, msg *azservicebus.ReceivedMessage) Outcome {
	return f(ctx, msg)
}

// Kind is how a message is settled. The zero Kind is not a valid outcome: an Outcome left at its zero value
// (a forgotten return, a half-built struct) abandons the message instead of completing it.
type Kind int

// Outcome kinds. Build outcomes with Complete, Abandon, DeadLetter and Defer.
const (
	KindComplete   Kind = iota + 1 // done: remove the message
	KindAbandon                    // transient failure: release the lock for redelivery (delivery count + 1)
	KindDeadLetter                 // poison: move to the dead-letter sub-queue with Reason and Description
	KindDefer                      // not yet: defer until NotBefore and record it in the deferral ledger
)

func (k Kind) String() string {
	switch k {
	case 0:
		return "invalid"
	case KindComplete:
		return "complete"
	case KindAbandon:
		return "abandon"
	case KindDeadLetter:
		return "deadletter"
	case KindDefer:
		return "defer"
	default:
		return fmt.Sprintf("Kind(%d)", int(k))
	}
}

// Outcome is a processor's verdict on one message.
//
// The run settles a message as the Outcome says only when Validate returns nil. Otherwise — the zero Outcome,
// an unknown Kind, or any Outcome whose Err is set (Abandon(err) included) — the message is abandoned and the
// Outcome is logged as a processor error. So a message is completed only by Complete() (or the identical
// Outcome{Kind: KindComplete}), never by an Outcome that carries an error or was left unset.
type Outcome struct {
	Kind        Kind
	Reason      string    // dead-letter reason or defer reason
	Description string    // dead-letter description
	NotBefore   time.Time // defer: when the message is due again; zero: only an operator's drain brings it back
	Err         error     // the failure; set ⇒ the message is abandoned, whatever Kind says
}

// ErrInvalidOutcome is wrapped by Validate's error for an Outcome the run does not settle as asked: the zero
// Kind, an unknown Kind, or an Err set on a Kind other than KindAbandon.
var ErrInvalidOutcome = errors.New("processor: invalid outcome")

// Validate reports whether the run settles o as o.Kind says. It returns nil for Complete(), DeadLetter(…),
// Defer(…) and Abandon(nil); o.Err for Abandon(err); and an error wrapping ErrInvalidOutcome (and o.Err, if
// set) for anything else. A non-nil result means the message is abandoned.
func (o Outcome) Validate() error {
	switch o.Kind {
	case KindAbandon:
		return o.Err
	case KindComplete, KindDeadLetter, KindDefer:
		if o.Err != nil {
			return fmt.Errorf("%w: kind %s with an error: %w", ErrInvalidOutcome, o.Kind, o.Err)
		}
		return nil
	default:
		if o.Err != nil {
			return fmt.Errorf("%w: kind %s: %w", ErrInvalidOutcome, o.Kind, o.Err)
		}
		return fmt.Errorf("%w: kind %s (the zero Outcome abandons; return processor.Complete() for success)", ErrInvalidOutcome, o.Kind)
	}
}

// Complete reports success. It is the only way to have a message completed.
func Complete() Outcome { return Outcome{Kind: KindComplete} }

// Abandon reports a transient failure; err is logged as a processor error.
func Abandon(err error) Outcome { return Outcome{Kind: KindAbandon, Err: err} }

// DeadLetter reports a message that can never be processed.
func DeadLetter(reason, description string) Outcome {
	return Outcome{Kind: KindDeadLetter, Reason: reason, Description: description}
}

// Defer reports a message to be processed again no earlier than notBefore: a run takes it back once
// notBefore has passed (a zero notBefore leaves it to the operator's drain).
func Defer(notBefore time.Time, reason string) Outcome {
	return Outcome{Kind: KindDefer, NotBefore: notBefore, Reason: reason}
}
