package process

import (
	"context"
	"log/slog"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
)

// Settlement is what became of a message a run handled.
type Settlement int

const (
	SettledNone       Settlement = iota // not settled: the lock was lost, or settling and abandoning failed
	SettledComplete                     // completed
	SettledDeadLetter                   // dead-lettered
	SettledDefer                        // deferred again (the Deferrer indexed it)
	SettledAbandon                      // abandoned
)

func (s Settlement) String() string {
	switch s {
	case SettledComplete:
		return "completed"
	case SettledDeadLetter:
		return "dead-lettered"
	case SettledDefer:
		return "deferred"
	case SettledAbandon:
		return "abandoned"
	default:
		return "not settled"
	}
}

// DueReceiver is what a DueSource needs from the run's receiver: receive deferred messages by sequence
// number (locked, settled by lock token over the management link) and peek to prove a missing one gone.
// *azservicebus.Receiver implements it; every call blocks until the service answers or ctx ends, and the SDK
// retries transient failures inside the call.
type DueReceiver interface {
	ReceiveDeferredMessages(ctx context.Context, sequenceNumbers []int64, options *azservicebus.ReceiveDeferredMessagesOptions) ([]*azservicebus.ReceivedMessage, error)
	PeekMessages(ctx context.Context, maxMessageCount int, options *azservicebus.PeekMessagesOptions) ([]*azservicebus.ReceivedMessage, error)
}

var _ DueReceiver = (*azservicebus.Receiver)(nil)

// DueMessage is a deferred message whose not-before time has passed, received and locked by a DueSource.
type DueMessage struct {
	Message *azservicebus.ReceivedMessage
	// Settled is called once, on the message's worker goroutine after the run handled the message, with what
	// became of it, so that the source keeps its index consistent. ctx is the run's settlement context
	// (detached from the caller, bounded by SettleTimeout). Required.
	Settled func(ctx context.Context, s Settlement)
}

// DueSource brings deferred messages back into runs once they are due (the deferral ledger does).
//
// TakeDue claims up to max due entries until claimUntil (so that no drain or other run acts on them
// meanwhile), receives their messages through r and returns them locked, in any order. An entry whose message
// cannot be received is dealt with by the source (its entry removed when the message is proven gone, or
// released for a later run) and not returned; fewer than max messages means no more are due for now. A
// non-nil error means the source could not be read; the messages returned with it are still to be processed.
// TakeDue blocks until its work is done or ctx ends. A run calls it from its own goroutine, never
// concurrently with itself.
type DueSource interface {
	TakeDue(ctx context.Context, r DueReceiver, max int, claimUntil time.Time) ([]DueMessage, error)
}

// dueLoop is the first phase of a run: it takes the due deferred messages, as many as workers are free, up
// to DueMax in all, until no more are due or DueTime has passed, and dispatches them like received ones.
// Failures are logged; they never fail the run.
func (r *run) dueLoop() {
	if r.o.Due == nil {
		return
	}
	dr, ok := r.rcv.(DueReceiver)
	if !ok {
		r.logger.Warn("the run's receiver cannot receive deferred messages; due deferred messages are left to the drain")
		return
	}
	end := r.start.Add(r.o.DueTime)
	if end.After(r.stopReceive) {
		end = r.stopReceive
	}
	// The claim outlasts everything the run may still do with the messages.
	claimUntil := r.settleStop.Add(r.o.SettleTimeout)
	for taken := 0; taken < r.o.DueMax; {
		n := r.takeSlots(end)
		if n == 0 {
			return // the due phase is over, or the caller cancelled
		}
		want := min(n, r.o.DueMax-taken)
		ctx, cancel := context.WithDeadline(r.workCtx, end)
		msgs, err := r.o.Due.TakeDue(ctx, dr, want, claimUntil)
		cancel()
		if len(msgs) > want { // a source that breaks its contract must not take more workers than are free
			for _, m := range msgs[want:] {
				// Received (locked) all the same: counted, so that the summary's counts add up.
				r.received.Add(1)
				r.due.Add(1)
				log := r.msgLog(m.Message)
				log.Error("the due source returned more messages than asked; abandoning the extra one")
				sctx, scancel := r.settleContext()
				m.Settled(sctx, r.abandon(r.rcv, log, m.Message))
				scancel()
			}
			msgs = msgs[:want]
		}
		for range n - len(msgs) {
			<-r.slots // give back the slots no message came for
		}
		for _, m := range msgs {
			r.due.Add(1)
			r.dispatch(m.Message, m.Settled)
		}
		taken += len(msgs)
		if err != nil {
			r.logger.Warn("taking due deferred messages failed; the run goes on with new messages", slog.Any("error", err))
			return
		}
		if len(msgs) < want {
			return // no more due for now
		}
	}
}
