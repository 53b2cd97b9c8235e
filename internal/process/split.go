package process

import (
	"context"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
)

// splitReceiver receives on one receiver and settles and renews on another, by lock token.
//
// Why: a receive link keeps the credit of its last ReceiveMessages call. Once a run stops receiving, every
// message that becomes available — including the run's own abandons — is pushed to that link, released by
// the SDK's releaser, pushed again, and whichever delivery is in flight when the receiver closes stays locked
// until its lock expires. Settling by lock token on a receiver that never receives (azservicebus ≥ 1.10,
// non-session entities; it goes over the $management link) lets the Service close the receive link as soon as
// receiving ends, so nothing bounces and nothing is stranded.
type splitReceiver struct {
	recv   *azservicebus.Receiver // ReceiveMessages only; owned by the receive loop
	settle *azservicebus.Receiver // settlement and renewal; safe for concurrent use
}

var (
	_ Receiver    = (*splitReceiver)(nil)
	_ DueReceiver = (*splitReceiver)(nil)
)

// byToken is the lock-token-only view of msg that the SDK settles over the management link.
func byToken(msg *azservicebus.ReceivedMessage) *azservicebus.ReceivedMessage {
	return &azservicebus.ReceivedMessage{LockToken: msg.LockToken}
}

func (s *splitReceiver) ReceiveMessages(ctx context.Context, n int, o *azservicebus.ReceiveMessagesOptions) ([]*azservicebus.ReceivedMessage, error) {
	return s.recv.ReceiveMessages(ctx, n, o)
}

func (s *splitReceiver) CompleteMessage(ctx context.Context, m *azservicebus.ReceivedMessage, o *azservicebus.CompleteMessageOptions) error {
	return s.settle.CompleteMessage(ctx, byToken(m), o)
}

func (s *splitReceiver) AbandonMessage(ctx context.Context, m *azservicebus.ReceivedMessage, o *azservicebus.AbandonMessageOptions) error {
	return s.settle.AbandonMessage(ctx, byToken(m), o)
}

func (s *splitReceiver) DeadLetterMessage(ctx context.Context, m *azservicebus.ReceivedMessage, o *azservicebus.DeadLetterOptions) error {
	return s.settle.DeadLetterMessage(ctx, byToken(m), o)
}

func (s *splitReceiver) DeferMessage(ctx context.Context, m *azservicebus.ReceivedMessage, o *azservicebus.DeferMessageOptions) error {
	return s.settle.DeferMessage(ctx, byToken(m), o)
}

// RenewMessageLock renews by token and copies the new expiry to m. The renewer calls it from m's renewal
// goroutine only, which is the sole writer of m.LockedUntil while m is held.
func (s *splitReceiver) RenewMessageLock(ctx context.Context, m *azservicebus.ReceivedMessage, o *azservicebus.RenewMessageLockOptions) error {
	t := byToken(m)
	if err := s.settle.RenewMessageLock(ctx, t, o); err != nil {
		return err
	}
	m.LockedUntil = t.LockedUntil
	return nil
}

// ReceiveDeferredMessages receives on the settlement receiver: it goes over the management link and adds no
// credit to a receive link, and the messages it returns settle over the management link by lock token anyway.
func (s *splitReceiver) ReceiveDeferredMessages(ctx context.Context, seqs []int64, o *azservicebus.ReceiveDeferredMessagesOptions) ([]*azservicebus.ReceivedMessage, error) {
	return s.settle.ReceiveDeferredMessages(ctx, seqs, o)
}

// PeekMessages browses on the settlement receiver (management link, no lock).
func (s *splitReceiver) PeekMessages(ctx context.Context, n int, o *azservicebus.PeekMessagesOptions) ([]*azservicebus.ReceivedMessage, error) {
	return s.settle.PeekMessages(ctx, n, o)
}
