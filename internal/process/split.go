package process

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/Azure/go-amqp"
)

// splitReceiver receives on one receiver and settles on the receive link while it is open, then by lock
// token on a second receiver once the receive link is closed. Renewals always go by lock token on the second
// receiver (the SDK renews over the management link whatever the receiver).
//
// Why two receivers: a receive link keeps the credit of its last ReceiveMessages call. Once a run stops
// receiving, every message that becomes available — including the run's own end-of-run abandons — is pushed
// to that link, released by the SDK's releaser, pushed again, and whichever delivery is in flight when the
// receiver closes stays locked until its lock expires. So the Service closes the receive link as soon as
// receiving ends (closeReceive), and what is settled after that goes by lock token over the management link of
// a receiver that never receives (azservicebus ≥ 1.10, non-session entities; Microsoft's
// TestMessageSettlementUsingOnlyBackupSettlement settles messages of a closed link that way).
//
// Why settle on the receive link while it is open: a disposition on the link costs a fraction of a
// management request (no request message, no reply to decode, no lock-token lookup by the service), and it
// is the only way a session receiver can settle. If the link fails under a settlement, the SDK itself retries
// it over the management link.
type splitReceiver struct {
	recv   *azservicebus.Receiver // ReceiveMessages and, while open, settlement; receiving is owned by the receive loop
	settle *azservicebus.Receiver // renewal, and settlement once recv is closed; safe for concurrent use

	// mu is held for reading by every settlement on recv, and for writing by closeReceive, so the link is
	// closed only between settlements and no settlement starts on it afterwards.
	mu         sync.RWMutex
	recvClosed bool // guarded by mu
}

var (
	_ Receiver    = (*splitReceiver)(nil)
	_ DueReceiver = (*splitReceiver)(nil)
)

// byToken is the lock-token-only view of msg that the SDK settles over the management link.
func byToken(msg *azservicebus.ReceivedMessage) *azservicebus.ReceivedMessage {
	return &azservicebus.ReceivedMessage{LockToken: msg.LockToken}
}

// closeReceive waits for the settlements in progress on the receive link, then closes it with close (which
// must close s.recv); later settlements go by lock token. Idempotent: close is called once.
func (s *splitReceiver) closeReceive(close func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.recvClosed {
		return
	}
	s.recvClosed = true
	close()
}

// onLinkTimeout bounds a settlement on the receive link. A disposition on a live link takes milliseconds. When
// the connection dropped after the message was received, azservicebus v1.11.0 retries the disposition on the
// message's own, dead link until ctx ends: it falls back to the management link for link errors only, not
// for a lost connection, and waits about 4 s between attempts whatever the client's retry options
// (messageSettler.go); each attempt also makes it recover the connection again. Past onLinkTimeout the
// settlement goes by lock token, which the renewals keep working across a dropped connection.
const onLinkTimeout = time.Second

// byTokenAttempt bounds one attempt of a settlement by lock token. The SDK settles with its default retry
// options whatever the client's (messageSettler.go): after a dropped connection it sleeps 3.2–5.2 s before
// it recovers the links and tries again, then 9.6–15.6 s, so one drop costs seconds and a second drop soon
// after outlasts any settle timeout. Instead, an attempt that fails for want of a connection is cut short, a
// peek on the same receiver (which retries with the client's options, sized for the lock) recovers its
// links, and the settlement is tried again.
const byTokenAttempt = time.Second

// settleOn calls onLink with the receive link when m came from it and the link is still open, else
// byTokenFn with the settlement receiver. Deferred messages (received by sequence number, over the
// management link) always settle by token. A settlement on the link that fails other than with a lost lock,
// or takes longer than onLinkTimeout, is retried by token.
func (s *splitReceiver) settleOn(ctx context.Context, m *azservicebus.ReceivedMessage, onLink, byTokenFn func(context.Context, *azservicebus.Receiver) error) error {
	if m.State != azservicebus.MessageStateDeferred {
		s.mu.RLock()
		if !s.recvClosed {
			lctx, cancel := context.WithTimeout(ctx, onLinkTimeout)
			err := onLink(lctx, s.recv)
			cancel()
			s.mu.RUnlock()
			if err == nil || ctx.Err() != nil || isLockLost(err) {
				return err
			}
			s.probe(ctx) // the connection is suspect: recover the settlement receiver's links first
		} else {
			s.mu.RUnlock()
		}
	}
	return s.byToken(ctx, byTokenFn)
}

// byToken settles by lock token on the settlement receiver in attempts of at most byTokenAttempt until one
// succeeds, the service answers (the lock is lost, the message is gone, access is denied…) or ctx ends.
// Between attempts a one-message peek recovers the receiver's connection and links.
func (s *splitReceiver) byToken(ctx context.Context, fn func(context.Context, *azservicebus.Receiver) error) error {
	for {
		actx, cancel := context.WithTimeout(ctx, byTokenAttempt)
		err := fn(actx, s.settle)
		cancel()
		if err == nil || ctx.Err() != nil || !retryable(err) {
			return err
		}
		s.probe(ctx)
	}
}

// probe makes a one-message peek on the settlement receiver: it retries with the client's retry options, so
// after a dropped connection it recovers the receiver's connection and links within the first retry delay.
func (s *splitReceiver) probe(ctx context.Context) {
	from := int64(0) // a FromSequenceNumber keeps the peek from updating the receiver's own cursor (unsynchronised)
	_, _ = s.settle.PeekMessages(ctx, 1, &azservicebus.PeekMessagesOptions{FromSequenceNumber: &from})
}

// retryable reports whether a settlement attempt failed for want of a connection (or ran out of its own
// time) rather than with the service's answer.
func retryable(err error) bool {
	var sbErr *azservicebus.Error
	if errors.As(err, &sbErr) {
		return sbErr.Code == azservicebus.CodeConnectionLost || sbErr.Code == azservicebus.CodeTimeout
	}
	var connErr *amqp.ConnError
	var sessErr *amqp.SessionError
	var linkErr *amqp.LinkError
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &connErr) || errors.As(err, &sessErr) || errors.As(err, &linkErr)
}

func (s *splitReceiver) ReceiveMessages(ctx context.Context, n int, o *azservicebus.ReceiveMessagesOptions) ([]*azservicebus.ReceivedMessage, error) {
	return s.recv.ReceiveMessages(ctx, n, o)
}

// CompleteMessage completes m. A complete answered "lock lost" is checked with a peek at m's sequence number:
// when the connection drops after the service completed m but before its reply arrived, the retry (the SDK's
// own, or settleOn's by token) finds the lock token settled and the service answers lock lost — the answer
// for a token that is "expired, or the message has already been removed from the queue" (Azure's
// MessageLockLostException). If m is gone, the complete took effect and nil is returned; if m is still in
// the entity (redelivered, or waiting), its lock was lost and the error stands. (m is also gone if its lock
// expired and another receiver completed its redelivery within the time of the retry; it is then completed
// too, by that receiver, and this run's count holds one completion that was not its own.)
func (s *splitReceiver) CompleteMessage(ctx context.Context, m *azservicebus.ReceivedMessage, o *azservicebus.CompleteMessageOptions) error {
	err := s.settleOn(ctx, m,
		func(ctx context.Context, r *azservicebus.Receiver) error { return r.CompleteMessage(ctx, m, o) },
		func(ctx context.Context, r *azservicebus.Receiver) error {
			return r.CompleteMessage(ctx, byToken(m), o)
		})
	if isLockLost(err) && m.SequenceNumber != nil && ctx.Err() == nil && s.gone(ctx, *m.SequenceNumber) {
		return nil
	}
	return err
}

// gone reports whether the entity no longer holds the message with sequence number seq, in any state. A
// failed peek reports false.
func (s *splitReceiver) gone(ctx context.Context, seq int64) bool {
	msgs, err := s.settle.PeekMessages(ctx, 1, &azservicebus.PeekMessagesOptions{FromSequenceNumber: &seq})
	if err != nil {
		return false
	}
	return len(msgs) == 0 || msgs[0].SequenceNumber == nil || *msgs[0].SequenceNumber != seq
}

func (s *splitReceiver) AbandonMessage(ctx context.Context, m *azservicebus.ReceivedMessage, o *azservicebus.AbandonMessageOptions) error {
	return s.settleOn(ctx, m,
		func(ctx context.Context, r *azservicebus.Receiver) error { return r.AbandonMessage(ctx, m, o) },
		func(ctx context.Context, r *azservicebus.Receiver) error { return r.AbandonMessage(ctx, byToken(m), o) })
}

func (s *splitReceiver) DeadLetterMessage(ctx context.Context, m *azservicebus.ReceivedMessage, o *azservicebus.DeadLetterOptions) error {
	return s.settleOn(ctx, m,
		func(ctx context.Context, r *azservicebus.Receiver) error { return r.DeadLetterMessage(ctx, m, o) },
		func(ctx context.Context, r *azservicebus.Receiver) error {
			return r.DeadLetterMessage(ctx, byToken(m), o)
		})
}

func (s *splitReceiver) DeferMessage(ctx context.Context, m *azservicebus.ReceivedMessage, o *azservicebus.DeferMessageOptions) error {
	return s.settleOn(ctx, m,
		func(ctx context.Context, r *azservicebus.Receiver) error { return r.DeferMessage(ctx, m, o) },
		func(ctx context.Context, r *azservicebus.Receiver) error { return r.DeferMessage(ctx, byToken(m), o) })
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
