// Package processor is the extension point of holdfast: a Processor handles one Service Bus message and
// reports how the run should settle it.
package processor

import (
	"context"
	"fmt"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
)

// Processor handles one received message.
//
// Process is called from a run's worker goroutines, possibly for several messages at once, so it must be safe
// for concurrent use. It blocks for as long as the work takes and must return promptly once ctx is done:
// ctx is cancelled with a cause when the message's lock is lost, the maximum lock renewal duration is reached
// or the run budget is exhausted (see context.Cause). After ctx is done the run does not complete the message,
// whatever Outcome is returned. Process must not settle msg itself; the run settles it according to the
// returned Outcome. Retrying is the run's business: a transient failure is reported with Abandon, and Service
// Bus redelivers the message until its MaxDeliveryCount.
type Processor interface {
	Process(ctx context.Context, msg *azservicebus.ReceivedMessage) Outcome
}

// Func adapts a function to Processor.
type Func func(ctx context.Context, msg *azservicebus.ReceivedMessage) Outcome

// Process calls f(ctx, msg).
func (f Func) Process(ctx context.Context, msg *azservicebus.ReceivedMessage) Outcome {
	return f(ctx, msg)
}

// Kind is how a message is settled.
type Kind int

// Outcome kinds. The zero Kind is Complete.
const (
	KindComplete   Kind = iota // done: remove the message
	KindAbandon                // transient failure: release the lock for redelivery (delivery count + 1)
	KindDeadLetter             // poison: move to the dead-letter sub-queue with Reason and Description
	KindDefer                  // not yet: defer until NotBefore and record it in the deferral ledger
)

func (k Kind) String() string {
	switch k {
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
type Outcome struct {
	Kind        Kind
	Reason      string    // dead-letter reason or defer reason
	Description string    // dead-letter description
	NotBefore   time.Time // defer: earliest time to resubmit the message
	Err         error     // abandon: the failure, logged by the run
}

// Complete reports success.
func Complete() Outcome { return Outcome{Kind: KindComplete} }

// Abandon reports a transient failure; err is logged.
func Abandon(err error) Outcome { return Outcome{Kind: KindAbandon, Err: err} }

// DeadLetter reports a message that can never be processed.
func DeadLetter(reason, description string) Outcome {
	return Outcome{Kind: KindDeadLetter, Reason: reason, Description: description}
}

// Defer reports a message to be processed again no earlier than notBefore.
func Defer(notBefore time.Time, reason string) Outcome {
	return Outcome{Kind: KindDefer, NotBefore: notBefore, Reason: reason}
}
