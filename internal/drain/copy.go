package drain

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"maps"
	"strconv"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

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

// errUnsupportedBody: the copy could not carry the body faithfully.
var errUnsupportedBody = errors.New("the message body is not a single data section; a copy would lose it")

// copyOf builds the resubmitted copy of m, whose ledger row is row: body and properties copied, a new
// application-properties map with the lineage properties, no scheduled enqueue time, the deterministic
// MessageID. m is not modified.
func (s *Service) copyOf(m *azservicebus.ReceivedMessage, row ledger.Row) (*azservicebus.Message, error) {
	if m.RawAMQPMessage != nil && (len(m.RawAMQPMessage.Body.Data) > 1 || m.RawAMQPMessage.Body.Value != nil || m.RawAMQPMessage.Body.Sequence != nil) {
		return nil, errUnsupportedBody
	}
	c := m.Message() // shallow: the map and MessageID are replaced below, the scheduled time cleared
	id := s.idPrefix + strconv.FormatInt(*m.SequenceNumber, 10)
	c.MessageID = &id
	c.ScheduledEnqueueTime = nil

	props := make(map[string]any, len(m.ApplicationProperties)+4)
	maps.Copy(props, m.ApplicationProperties)
	delete(props, ledger.PropNotBefore) // the deferral's; the copy is due now
	reason := row.Reason
	if reason == "" {
		reason, _ = m.ApplicationProperties[PropDeferReason].(string)
	}
	props[PropOriginalMessageID] = m.MessageID
	props[PropOriginalSequenceNumber] = *m.SequenceNumber
	props[PropResubmitCount] = max(row.ResubmitCount, ledger.ResubmitCount(m.ApplicationProperties)) + 1
	props[PropDeferReason] = reason
	c.ApplicationProperties = props
	return c, nil
}

