package drain

import (
	"context"
	"errors"
	"fmt"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/holdfast-dev/holdfast/internal/ledger"
)

// DeferredReceiver receives deferred messages by sequence number and peeks; *azservicebus.Receiver
// implements it. Each call blocks until the service answers or ctx ends (the SDK retries transient failures
// inside the call). Safe for concurrent use.
type DeferredReceiver interface {
	ReceiveDeferredMessages(ctx context.Context, sequenceNumbers []int64, options *azservicebus.ReceiveDeferredMessagesOptions) ([]*azservicebus.ReceivedMessage, error)
	PeekMessages(ctx context.Context, maxMessageCount int, options *azservicebus.PeekMessagesOptions) ([]*azservicebus.ReceivedMessage, error)
}

var _ DeferredReceiver = (*azservicebus.Receiver)(nil)

// Fetched is what Fetch made of one ledger row: its message received (locked), its message proven gone, or
// an error saying why it was not received.
type Fetched struct {
	Row  ledger.Row
	Msg  *azservicebus.ReceivedMessage // the locked message; nil unless received
	Gone bool                          // a peek showed no message with the row's sequence number
	Err  error                         // neither: the message exists but cannot be received, or a call failed
}

// Fetch receives the deferred messages of rows: one call for all of them; when Service Bus answers that one
// of them is not found (the whole call fails then), one call per number, at most limit at once; a number still
// not received is peeked at, to tell a message that is gone (Gone: its row may be deleted, invariant 3) from
// one that exists but is locked by another receiver or no longer deferred (Err). call bounds the context of
// each request. The results are in the order of rows. batchErr is the first call's failure when it was not a
// not-found (the service is failing: every row then carries it as Err, and nothing more is tried).
func Fetch(ctx context.Context, r DeferredReceiver, rows []ledger.Row, limit int,
	call func(context.Context) (context.Context, context.CancelFunc)) (out []Fetched, batchErr error) {
	out = make([]Fetched, len(rows))
	seqs := make([]int64, len(rows))
	for i, row := range rows {
		out[i].Row, seqs[i] = row, row.SequenceNumber
	}
	cctx, cancel := call(ctx)
	msgs, err := r.ReceiveDeferredMessages(cctx, seqs, nil)
	cancel()
	if err != nil && !isNotFound(err) {
		for i := range out {
			out[i].Err = fmt.Errorf("receive deferred message: %w", err)
		}
		return out, err
	}
	bySeq := make(map[int64]*azservicebus.ReceivedMessage, len(msgs))
	for _, m := range msgs {
		if m.SequenceNumber != nil {
			bySeq[*m.SequenceNumber] = m
		}
	}
	var missing []int // indexes into out
	for i := range out {
		if out[i].Msg = bySeq[seqs[i]]; out[i].Msg == nil {
			missing = append(missing, i)
		}
	}
	// One by one, to tell the missing numbers from the others.
	ForEach(len(missing), limit, func(k int) {
		f := &out[missing[k]]
		cctx, cancel := call(ctx)
		defer cancel()
		got, err := r.ReceiveDeferredMessages(cctx, []int64{f.Row.SequenceNumber}, nil)
		switch {
		case err == nil && len(got) == 1:
			f.Msg = got[0]
		case err == nil || isNotFound(err):
			f.Gone, f.Err = peekGone(cctx, r, f.Row.SequenceNumber)
		default:
			f.Err = fmt.Errorf("receive deferred message: %w", err)
		}
	})
	return out, nil
}

// peekGone peeks at seq: gone when no message has that sequence number any more; otherwise the error says why
// the existing message could not be received.
func peekGone(ctx context.Context, r DeferredReceiver, seq int64) (bool, error) {
	peeked, err := r.PeekMessages(ctx, 1, &azservicebus.PeekMessagesOptions{FromSequenceNumber: &seq})
	if err != nil {
		return false, fmt.Errorf("message not received and peek failed: %w", err)
	}
	if len(peeked) == 1 && peeked[0].SequenceNumber != nil && *peeked[0].SequenceNumber == seq {
		why := "the message is locked by another receiver"
		if peeked[0].State != azservicebus.MessageStateDeferred {
			why = "the message is no longer deferred"
		}
		return false, fmt.Errorf("message exists but cannot be received: %s", why)
	}
	return true, nil
}

func isNotFound(err error) bool {
	var sbErr *azservicebus.Error
	return errors.As(err, &sbErr) && sbErr.Code == azservicebus.CodeNotFound
}
