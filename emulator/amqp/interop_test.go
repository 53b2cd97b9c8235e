package amqp

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	goamqp "github.com/Azure/go-amqp"
)

// Message section descriptors (spec part 3.2).
const (
	secHeader       uint64 = 0x70
	secDeliveryAnn  uint64 = 0x71
	secMessageAnn   uint64 = 0x72
	secProperties   uint64 = 0x73
	secAppProps     uint64 = 0x74
	secData         uint64 = 0x75
	secAMQPSequence uint64 = 0x76
	secAMQPValue    uint64 = 0x77
	secFooter       uint64 = 0x78
)

// decodeSections decodes a message payload section by section with DecodeValue.
func decodeSections(t *testing.T, b []byte) map[uint64][]any {
	t.Helper()
	out := map[uint64][]any{}
	for pos := 0; pos < len(b); {
		v, n, err := DecodeValue(b[pos:])
		if err != nil {
			t.Fatalf("section at %d: %v", pos, err)
		}
		d, ok := v.(Described)
		if !ok {
			t.Fatalf("section at %d is %T, want Described", pos, v)
		}
		code, ok := d.Descriptor.(uint64)
		if !ok || code < secHeader || code > secFooter {
			t.Fatalf("section at %d has descriptor %v", pos, d.Descriptor)
		}
		out[code] = append(out[code], d.Value)
		pos += n
	}
	return out
}

func TestDecodeGoAMQPMessage(t *testing.T) {
	created := time.UnixMilli(1700000000123).UTC()
	lockToken := goamqp.UUID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	msg := &goamqp.Message{
		Header:              &goamqp.MessageHeader{Durable: true, Priority: 7, TTL: 90 * time.Second, FirstAcquirer: true, DeliveryCount: 3},
		DeliveryAnnotations: goamqp.Annotations{"x-opt-d": int64(1)},
		Annotations: goamqp.Annotations{
			"x-opt-sequence-number": int64(42), "x-opt-locked-until": created,
			"x-opt-enqueued-time": created,
		},
		Properties: &goamqp.MessageProperties{
			MessageID: "id-1", UserID: []byte("u"), To: ptr("to"), Subject: ptr("s"), ReplyTo: ptr("r"),
			CorrelationID: uint64(77), ContentType: ptr("application/json"), ContentEncoding: ptr("gzip"),
			AbsoluteExpiryTime: &created, CreationTime: &created, GroupID: ptr("session-1"),
			GroupSequence: ptr[uint32](5), ReplyToGroupID: ptr("rg"),
		},
		ApplicationProperties: map[string]any{
			"s": "v", "i64": int64(-7), "i32": int32(8), "b": true, "f": 1.5, "t": created, "u": lockToken,
			"bin": []byte{1}, "nil": nil,
		},
		Data:   [][]byte{[]byte("part1"), []byte("part2")},
		Footer: goamqp.Annotations{"x-f": "foot"},
	}
	b, err := msg.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	secs := decodeSections(t, b)

	wantHeader := []any{true, uint8(7), uint32(90000), true, uint32(3)}
	if !valueEqual(secs[secHeader][0], wantHeader) {
		t.Errorf("header = %#v, want %#v", secs[secHeader][0], wantHeader)
	}
	if !valueEqual(secs[secDeliveryAnn][0], map[any]any{Symbol("x-opt-d"): int64(1)}) {
		t.Errorf("delivery annotations = %#v", secs[secDeliveryAnn][0])
	}
	wantAnn := map[any]any{
		Symbol("x-opt-sequence-number"): int64(42), Symbol("x-opt-locked-until"): created,
		Symbol("x-opt-enqueued-time"): created,
	}
	if !valueEqual(secs[secMessageAnn][0], wantAnn) {
		t.Errorf("message annotations = %#v", secs[secMessageAnn][0])
	}
	wantProps := []any{"id-1", []byte("u"), "to", "s", "r", uint64(77), Symbol("application/json"), Symbol("gzip"),
		created, created, "session-1", uint32(5), "rg"}
	if !valueEqual(secs[secProperties][0], wantProps) {
		t.Errorf("properties = %#v\nwant %#v", secs[secProperties][0], wantProps)
	}
	wantApp := map[any]any{
		"s": "v", "i64": int64(-7), "i32": int32(8), "b": true, "f": 1.5, "t": created, "u": UUID(lockToken),
		"bin": []byte{1}, "nil": nil,
	}
	if !valueEqual(secs[secAppProps][0], wantApp) {
		t.Errorf("application properties = %#v", secs[secAppProps][0])
	}
	if len(secs[secData]) != 2 || !valueEqual(secs[secData][1], []byte("part2")) {
		t.Errorf("data sections = %#v", secs[secData])
	}
	if !valueEqual(secs[secFooter][0], map[any]any{Symbol("x-f"): "foot"}) {
		t.Errorf("footer = %#v", secs[secFooter][0])
	}
}

func TestDecodeGoAMQPValueAndSequence(t *testing.T) {
	tokens := []goamqp.UUID{{1}, {2}}
	for _, tt := range []struct {
		name string
		msg  *goamqp.Message
		sec  uint64
		want any
	}{
		{"management map", &goamqp.Message{Value: map[string]any{"lock-tokens": tokens, "top": int32(10)}},
			secAMQPValue, map[any]any{"lock-tokens": []UUID{{1}, {2}}, "top": int32(10)}},
		{"sequence numbers", &goamqp.Message{Value: []int64{1, 2, 1 << 40}},
			secAMQPValue, []int64{1, 2, 1 << 40}},
		{"amqp-sequence", &goamqp.Message{Sequence: [][]any{{"a", int64(1)}}},
			secAMQPSequence, []any{"a", int64(1)}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.msg.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			secs := decodeSections(t, b)
			if len(secs[tt.sec]) != 1 || !valueEqual(secs[tt.sec][0], tt.want) {
				t.Fatalf("section 0x%x = %#v, want %#v", tt.sec, secs[tt.sec], tt.want)
			}
		})
	}
}

// appendSections encodes described sections with AppendValue.
func appendSections(t *testing.T, secs ...Described) []byte {
	t.Helper()
	var b []byte
	for _, s := range secs {
		var err error
		if b, err = AppendValue(b, s); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

func TestGoAMQPUnmarshalsOurSections(t *testing.T) {
	when := time.UnixMilli(1700000000999).UTC()
	token := UUID{0xde, 0xad, 15: 0xff}
	b := appendSections(t,
		Described{Descriptor: secHeader, Value: []any{true, uint8(9), uint32(1500), nil, uint32(2)}},
		Described{Descriptor: secMessageAnn, Value: map[any]any{
			Symbol("x-opt-sequence-number"): int64(1 << 33), Symbol("x-opt-locked-until"): when,
			Symbol("x-opt-enqueued-sequence-number"): int64(3),
		}},
		Described{Descriptor: secProperties, Value: []any{"mid", nil, "to", nil, "reply", token, Symbol("text/plain"), nil,
			when, when, "g", uint32(1)}},
		Described{Descriptor: secAppProps, Value: map[string]any{"k": "v", "n": int64(1), "u": token}},
		Described{Descriptor: secData, Value: []byte("hello")},
		Described{Descriptor: secData, Value: bytes.Repeat([]byte("x"), 300)},
	)
	var m goamqp.Message
	if err := m.UnmarshalBinary(b); err != nil {
		t.Fatalf("go-amqp UnmarshalBinary: %v", err)
	}
	if m.Header == nil || !m.Header.Durable || m.Header.Priority != 9 || m.Header.TTL != 1500*time.Millisecond || m.Header.DeliveryCount != 2 {
		t.Errorf("header = %#v", m.Header)
	}
	if m.Annotations["x-opt-sequence-number"] != int64(1<<33) || !m.Annotations["x-opt-locked-until"].(time.Time).Equal(when) {
		t.Errorf("annotations = %#v", m.Annotations)
	}
	p := m.Properties
	if p == nil || p.MessageID != "mid" || *p.To != "to" || *p.ReplyTo != "reply" || p.CorrelationID != goamqp.UUID(token) ||
		*p.ContentType != "text/plain" || !p.CreationTime.Equal(when) || *p.GroupID != "g" || *p.GroupSequence != 1 {
		t.Errorf("properties = %#v", p)
	}
	if m.ApplicationProperties["k"] != "v" || m.ApplicationProperties["n"] != int64(1) || m.ApplicationProperties["u"] != goamqp.UUID(token) {
		t.Errorf("application properties = %#v", m.ApplicationProperties)
	}
	if len(m.Data) != 2 || string(m.Data[0]) != "hello" || len(m.Data[1]) != 300 {
		t.Errorf("data = %q", m.Data)
	}
}

func TestGoAMQPUnmarshalsOurValueBody(t *testing.T) {
	body := map[string]any{
		"statusCode":        int32(200),
		"expirations":       []time.Time{time.UnixMilli(1000).UTC()},
		"sequence-numbers":  []int64{7, 1 << 40},
		"lock-tokens":       []UUID{{1}, {2}},
		"messages":          []any{map[string]any{"message": []byte{0x00, 0x53, 0x75, 0xa0, 0x00}}},
		"rules":             []any{},
		"session-state":     []byte(nil),
		"associated-link":   Symbol("link"),
		"com.microsoft:rpc": nil,
	}
	b := appendSections(t, Described{Descriptor: secAMQPValue, Value: body})
	var m goamqp.Message
	if err := m.UnmarshalBinary(b); err != nil {
		t.Fatalf("go-amqp UnmarshalBinary: %v", err)
	}
	v, ok := m.Value.(map[string]any)
	if !ok {
		t.Fatalf("value = %#v", m.Value)
	}
	if v["statusCode"] != int32(200) {
		t.Errorf("statusCode = %#v", v["statusCode"])
	}
	if sn, ok := v["sequence-numbers"].([]int64); !ok || len(sn) != 2 || sn[1] != 1<<40 {
		t.Errorf("sequence-numbers = %#v", v["sequence-numbers"])
	}
	if lt, ok := v["lock-tokens"].([]goamqp.UUID); !ok || len(lt) != 2 || lt[1] != (goamqp.UUID{2}) {
		t.Errorf("lock-tokens = %#v", v["lock-tokens"])
	}
	if ex, ok := v["expirations"].([]time.Time); !ok || len(ex) != 1 || ex[0].UnixMilli() != 1000 {
		t.Errorf("expirations = %#v", v["expirations"])
	}
	msgs, ok := v["messages"].([]any)
	if !ok || len(msgs) != 1 {
		t.Fatalf("messages = %#v", v["messages"])
	}
	if inner, ok := msgs[0].(map[string]any); !ok || !bytes.Equal(inner["message"].([]byte), []byte{0x00, 0x53, 0x75, 0xa0, 0x00}) {
		t.Errorf("messages[0] = %#v", msgs[0])
	}
	if fmt.Sprint(v["associated-link"]) != "link" {
		t.Errorf("associated-link = %#v", v["associated-link"])
	}
}
