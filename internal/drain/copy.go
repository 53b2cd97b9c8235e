package drain

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"strconv"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/holdfast-dev/holdfast/internal/browse"
	"github.com/holdfast-dev/holdfast/internal/ledger"
)

// MessageID returns the MessageID of the copy of the message with sequence number seq deferred on entity:
// "hf-" + the first 16 hex digits of SHA-256(entity) + "-" + seq. It is a pure function of its arguments
// (invariant 5) and at most 39 characters (Service Bus allows 128), so duplicate detection recognises a
// copy sent twice.
func MessageID(entity string, seq int64) string {
	return messageIDPrefix(entity) + strconv.FormatInt(seq, 10)
}

func messageIDPrefix(entity string) string {
	sum := sha256.Sum256([]byte(entity))
	return "hf-" + hex.EncodeToString(sum[:8]) + "-"
}

// ErrUnsupportedBody: the copy could not carry the body faithfully.
var ErrUnsupportedBody = errors.New("the message body is not a single data section; a copy would lose it")

// NewCopy builds a copy of m to resubmit: body and properties copied, a new application-properties map
// without the names in drop and with lineage added, no scheduled enqueue time, and MessageID id. m is not
// modified. A body that is not a single data section gives ErrUnsupportedBody.
func NewCopy(m *azservicebus.ReceivedMessage, id string, lineage map[string]any, drop ...string) (*azservicebus.Message, error) {
	if !browse.BodyIsBytes(m) {
		return nil, ErrUnsupportedBody
	}
	c := m.Message() // shallow: the map and MessageID are replaced below, the scheduled time cleared
	c.MessageID = &id
	c.ScheduledEnqueueTime = nil
	props := make(map[string]any, len(m.ApplicationProperties)+len(lineage))
	maps.Copy(props, m.ApplicationProperties)
	for _, k := range drop {
		delete(props, k)
	}
	maps.Copy(props, lineage)
	c.ApplicationProperties = props
	return c, nil
}

// copyOf builds the resubmitted copy of m, whose ledger row is row: NewCopy with the deterministic MessageID
// and the lineage properties; the deferral's not-before is dropped (the copy is due now).
func (s *Service) copyOf(m *azservicebus.ReceivedMessage, row ledger.Row) (*azservicebus.Message, error) {
	reason := row.Reason
	if reason == "" {
		reason, _ = m.ApplicationProperties[PropDeferReason].(string)
	}
	return NewCopy(m, s.idPrefix+strconv.FormatInt(*m.SequenceNumber, 10), map[string]any{
		PropOriginalMessageID:      m.MessageID,
		PropOriginalSequenceNumber: *m.SequenceNumber,
		PropResubmitCount:          max(row.ResubmitCount, ledger.ResubmitCount(m.ApplicationProperties)) + 1,
		PropDeferReason:            reason,
	}, ledger.PropNotBefore)
}

// SendCopies sends msgs through s in as few batches as fit (SendMessageBatch is all-or-nothing) and returns,
// for each message, nil if it was sent or the error that kept it from being sent. A message that does not
// fit an empty batch fails alone; a failed send fails every message of its batch and is also returned as
// sendErr, since later sends would most likely fail the same way.
func SendCopies(ctx context.Context, s Sender, msgs []*azservicebus.Message) (errs []error, sendErr error) {
	errs = make([]error, len(msgs))
	var batch *azservicebus.MessageBatch
	var in []int // indexes of msgs in batch
	flush := func() {
		if len(in) == 0 {
			return
		}
		if err := s.SendMessageBatch(ctx, batch, nil); err != nil {
			sendErr = err
			for _, i := range in {
				errs[i] = fmt.Errorf("send copy: %w", err)
			}
		}
		batch, in = nil, nil
	}
	for i, m := range msgs {
		for attempt := 0; ; attempt++ {
			if batch == nil {
				var err error
				if batch, err = s.NewMessageBatch(ctx, nil); err != nil {
					errs[i] = fmt.Errorf("new message batch: %w", err)
					break
				}
			}
			err := batch.AddMessage(m, nil)
			if err == nil {
				in = append(in, i)
				break
			}
			if !errors.Is(err, azservicebus.ErrMessageTooLarge) || len(in) == 0 || attempt > 0 {
				errs[i] = fmt.Errorf("add copy to batch: %w", err)
				break
			}
			flush() // full: send what it holds and retry in a fresh batch
		}
	}
	flush()
	return errs, sendErr
}
