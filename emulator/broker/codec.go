package broker

import (
	"math"

	"github.com/Azure/go-amqp"

	wire "github.com/holdfast-dev/holdfast/emulator/amqp"
)

// MarshalMessage encodes m as the bare message of a transfer or of a $management reply. The
// header section is always present and carries every field explicitly: durable, priority,
// first-acquirer and delivery-count even at their default values, the ttl when the message has
// one (null otherwise). go-amqp's own encoding leaves fields at their default value out, and an
// AMQP client that does not fill in defaults (rhea, under the JavaScript SDK) then reports them as
// missing: a first delivery without a delivery count. The JavaScript SDK's live tests expect the
// service to hand back the header it was sent (durable, priority, first-acquirer and ttl;
// sdk/servicebus/service-bus/test/public/amqpAnnotatedMessage.spec.ts in azure-sdk-for-js) and a
// delivery count of 0 on a first delivery.
func MarshalMessage(m *amqp.Message) ([]byte, error) {
	h := amqp.MessageHeader{Priority: 4}
	if m.Header != nil {
		h = *m.Header
	}
	rest := *m
	rest.Header = nil
	body, err := rest.MarshalBinary()
	if err != nil {
		return nil, err
	}
	var ttl any // null when the message has none
	if h.TTL > 0 {
		ttl = uint32(min(h.TTL.Milliseconds(), math.MaxUint32))
	}
	// The header section, amqp:header:list (§3.2.1 of the AMQP 1.0 messaging specification).
	out, err := wire.AppendValue(make([]byte, 0, 24+len(body)), wire.Described{
		Descriptor: uint64(0x70),
		Value:      []any{h.Durable, h.Priority, ttl, h.FirstAcquirer, h.DeliveryCount},
	})
	if err != nil {
		return nil, err
	}
	return append(out, body...), nil
}
