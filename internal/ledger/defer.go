package ledger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
)

// Properties Defer writes on the deferred message, and the lineage property it reads.
const (
	PropDeferReason   = "holdfast-defer-reason"
	PropNotBefore     = "holdfast-not-before" // RFC 3339, UTC
	PropResubmitCount = "holdfast-resubmit-count"
)

// DeferSettler defers a received message. *azservicebus.Receiver implements it; the SDK retries transient
// failures within the call, which blocks until the service answers or ctx ends.
type DeferSettler interface {
	DeferMessage(ctx context.Context, msg *azservicebus.ReceivedMessage, options *azservicebus.DeferMessageOptions) error
}

var _ DeferSettler = (*azservicebus.Receiver)(nil)

// crashPoint names a place in Defer where tests simulate the process dying.
type crashPoint int

const (
	crashAfterRecord crashPoint = iota + 1 // the pending row is written; DeferMessage was not called
	crashAfterDefer                        // the message is deferred; the row is still pending
)

// Defer records msg in the ledger, then defers it (index first, invariant 2):
//
//  1. write the row (state pending) — unconditional, so deferring the same sequence number again is idempotent;
//  2. DeferMessage with PropDeferReason and PropNotBefore;
//  3. mark the row deferred, conditional on the ETag of step 1.
//
// A nil error means the message is deferred and indexed. Any error means it was NOT deferred, and the caller
// abandons it: the ledger could not be written (logged with the cause), or DeferMessage failed, in which case
// the row stays pending and Reconcile removes it once the message is seen not deferred (or marks it, if the
// service applied the defer but its answer was lost). A failure of step 3 is
// logged and not returned: the message is deferred and its pending row indexes it until Reconcile marks it.
// Safe for concurrent use on different messages.
func (l *Ledger) Defer(ctx context.Context, s DeferSettler, msg *azservicebus.ReceivedMessage, notBefore time.Time, reason string) error {
	if s == nil {
		return invalid("nil settler")
	}
	if msg == nil || msg.SequenceNumber == nil {
		return invalid("message without a sequence number cannot be deferred")
	}
	seq := *msg.SequenceNumber
	log := l.log.With(slog.String("entity", l.entity), slog.Int64("sequenceNumber", seq), slog.String("messageId", msg.MessageID))

	row, err := l.Put(ctx, l.pendingRow(msg, notBefore, reason))
	if err != nil {
		log.Warn("could not record the deferral in the ledger; the message is abandoned, not deferred", slog.Any("error", err))
		return fmt.Errorf("ledger: record deferral of %d before deferring: %w", seq, err)
	}
	if err := l.crashAt(crashAfterRecord); err != nil {
		return err
	}

	props := map[string]any{PropDeferReason: reason}
	if !notBefore.IsZero() {
		props[PropNotBefore] = notBefore.UTC().Format(time.RFC3339)
	}
	if err := s.DeferMessage(ctx, msg, &azservicebus.DeferMessageOptions{PropertiesToModify: props}); err != nil {
		log.Warn("defer failed; the ledger row stays pending until reconciliation", slog.Any("error", err))
		return fmt.Errorf("ledger: defer message %d: %w", seq, err)
	}
	if err := l.crashAt(crashAfterDefer); err != nil {
		return err
	}

	row.State = StateDeferred
	switch _, err := l.Update(ctx, row); {
	case err == nil:
	case errors.Is(err, ErrConflict):
		// Reconcile (or a newer defer of the same message) rewrote the row in between; it is indexed either way.
		log.Debug("ledger row changed while deferring; left as written", slog.Any("error", err))
	default:
		log.Warn("message deferred but its ledger row is still pending; reconciliation will mark it", slog.Any("error", err))
	}
	return nil
}

func (l *Ledger) crashAt(p crashPoint) error {
	if l.crash == nil {
		return nil
	}
	return l.crash(p)
}

// pendingRow builds the step-1 row for msg.
func (l *Ledger) pendingRow(msg *azservicebus.ReceivedMessage, notBefore time.Time, reason string) Row {
	r := Row{
		Entity:         l.entity,
		SequenceNumber: *msg.SequenceNumber,
		State:          StatePending,
		MessageID:      msg.MessageID,
		CorrelationID:  deref(msg.CorrelationID),
		Subject:        deref(msg.Subject),
		Reason:         reason,
		DeferredAt:     l.now(),
		NotBefore:      notBefore,
		DeliveryCount:  int64(msg.DeliveryCount),
		ResubmitCount:  ResubmitCount(msg.ApplicationProperties),
		SessionID:      copyString(msg.SessionID),
	}
	r.ExpiresAt = l.expiresAt(msg)
	return r
}

// copyString returns a pointer to a copy of *s, or nil.
func copyString(s *string) *string {
	if s == nil {
		return nil
	}
	v := *s
	return &v
}

// maxTTL is the longest time-to-live turned into an ExpiresAt: an entity's "never" (TimeSpan.MaxValue,
// about 29,000 years) would overflow time.Time arithmetic, and nothing expires past it in practice.
const maxTTL = 100 * 365 * 24 * time.Hour

// expiresAt is when msg expires (and is dead-lettered or dropped when next received): its enqueued time
// plus its own TTL, capped at the entity's default, or plus the entity's default when it has none. The SDK's
// ExpiresAt is not used: it is EnqueuedTime + the AMQP header's ttl, which is 0 for a message sent without one
// (Service Bus does not write the entity's default there: internal/conformance's
// NoTimeToLiveWrittenIntoHeader; .NET shows such a message's TimeToLive and ExpiresAt as MaxValue,
// azure-sdk-for-net#21127), so it would be the enqueued time itself. Zero means unknown (no enqueued time, or
// no TTL and no DefaultTTL) or never.
func (l *Ledger) expiresAt(msg *azservicebus.ReceivedMessage) time.Time {
	if msg.EnqueuedTime == nil {
		return time.Time{}
	}
	var ttl time.Duration
	if msg.TimeToLive != nil {
		ttl = *msg.TimeToLive
	}
	if ttl <= 0 || (l.defaultTTL > 0 && ttl > l.defaultTTL) {
		ttl = l.defaultTTL
	}
	if ttl <= 0 || ttl > maxTTL {
		return time.Time{}
	}
	return msg.EnqueuedTime.Add(ttl)
}

// ResubmitCount reads the lineage count (PropResubmitCount) a resubmitted copy carries, as the SDK decodes
// application properties; absent or unreadable means 0.
func ResubmitCount(props map[string]any) int64 {
	switch v := props[PropResubmitCount].(type) {
	case int64:
		return v
	case int32:
		return int64(v)
	case int:
		return int64(v)
	case uint32:
		return int64(v)
	case string:
		n, err := strconv.ParseInt(v, 10, 64)
		if err == nil {
			return n
		}
	}
	return 0
}
