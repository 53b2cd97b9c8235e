package broker

import (
	"reflect"
	"testing"
	"time"

	"github.com/Azure/go-amqp"

	wire "github.com/holdfast-dev/holdfast/emulator/amqp"
)

// TestMarshalMessageHeader checks that every header field is on the wire even at its default
// value (go-amqp's own encoding drops them, and the JavaScript SDK then reports no delivery count),
// and that the rest of the message survives unchanged.
func TestMarshalMessageHeader(t *testing.T) {
	tests := []struct {
		name   string
		header *amqp.MessageHeader
		want   []any // durable, priority, ttl, first-acquirer, delivery-count
	}{
		{"no header", nil, []any{false, uint8(4), nil, false, uint32(0)}},
		{"defaults", &amqp.MessageHeader{}, []any{false, uint8(0), nil, false, uint32(0)}},
		{"all set", &amqp.MessageHeader{Durable: true, Priority: 20, TTL: 100 * time.Second, FirstAcquirer: true, DeliveryCount: 300},
			[]any{true, uint8(20), uint32(100000), true, uint32(300)}},
		{"small values", &amqp.MessageHeader{Priority: 4, TTL: 200 * time.Millisecond, DeliveryCount: 2},
			[]any{false, uint8(4), uint32(200), false, uint32(2)}},
		{"ttl beyond the uint range", &amqp.MessageHeader{Priority: 4, TTL: 100 * 24 * time.Hour},
			[]any{false, uint8(4), uint32(1<<32 - 1), false, uint32(0)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &amqp.Message{Header: tt.header, Data: [][]byte{[]byte("body")},
				ApplicationProperties: map[string]any{"k": "v"}, Footer: amqp.Annotations{"f": int64(1)}}
			raw, err := MarshalMessage(m)
			if err != nil {
				t.Fatal(err)
			}
			v, n, err := wire.DecodeValue(raw)
			if err != nil {
				t.Fatal(err)
			}
			d, ok := v.(wire.Described)
			if !ok || d.Descriptor != uint64(0x70) {
				t.Fatalf("first section %#v, want the header (0x70)", v)
			}
			if !reflect.DeepEqual(d.Value, tt.want) {
				t.Errorf("header fields %#v, want %#v", d.Value, tt.want)
			}
			var back amqp.Message
			if err := back.UnmarshalBinary(raw); err != nil {
				t.Fatal(err)
			}
			if string(back.GetData()) != "body" || back.ApplicationProperties["k"] != "v" || back.Footer["f"] != int64(1) {
				t.Errorf("round trip lost sections: %+v", back)
			}
			if rest, err := (&amqp.Message{Data: m.Data, ApplicationProperties: m.ApplicationProperties, Footer: m.Footer}).MarshalBinary(); err != nil || string(raw[n:]) != string(rest) {
				t.Errorf("sections after the header differ from go-amqp's encoding (%v)", err)
			}
			if m.Header != tt.header {
				t.Error("MarshalMessage changed the message's header")
			}
		})
	}
}
