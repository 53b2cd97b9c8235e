package broker

import (
	"encoding/binary"
	"math"

	"github.com/Azure/go-amqp"
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
	out := appendHeaderSection(make([]byte, 0, headerSectionMax+len(body)), h)
	return append(out, body...), nil
}

// headerSectionMax is the longest header section appendHeaderSection writes.
const headerSectionMax = 3 + 3 + 1 + 2 + 5 + 1 + 5

// AMQP 1.0 type codes used by appendHeaderSection (§1.6 of the types specification).
const (
	codeDescribed  = 0x00
	codeSmallUlong = 0x53
	codeList8      = 0xc0
	codeNull       = 0x40
	codeTrue       = 0x41
	codeFalse      = 0x42
	codeUbyte      = 0x50
	codeUint       = 0x70
	codeSmallUint  = 0x52
	codeUint0      = 0x43

	descriptorHeader = 0x70 // amqp:header:list
)

// appendHeaderSection appends the header section with all five fields (§3.2.1 of the messaging
// specification): durable, priority, ttl (milliseconds, null when zero), first-acquirer and
// delivery-count.
func appendHeaderSection(dst []byte, h amqp.MessageHeader) []byte {
	dst = append(dst, codeDescribed, codeSmallUlong, descriptorHeader, codeList8, 0, 5)
	start := len(dst)
	dst = appendBoolean(dst, h.Durable)
	dst = append(dst, codeUbyte, h.Priority)
	if h.TTL > 0 {
		dst = appendUint(dst, uint32(min(h.TTL.Milliseconds(), math.MaxUint32)))
	} else {
		dst = append(dst, codeNull)
	}
	dst = appendBoolean(dst, h.FirstAcquirer)
	dst = appendUint(dst, h.DeliveryCount)
	dst[start-2] = byte(len(dst) - start + 1) // size covers the count byte and the fields
	return dst
}

func appendBoolean(dst []byte, v bool) []byte {
	if v {
		return append(dst, codeTrue)
	}
	return append(dst, codeFalse)
}

func appendUint(dst []byte, v uint32) []byte {
	switch {
	case v == 0:
		return append(dst, codeUint0)
	case v < 256:
		return append(dst, codeSmallUint, byte(v))
	default:
		return binary.BigEndian.AppendUint32(append(dst, codeUint), v)
	}
}
