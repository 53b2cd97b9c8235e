package browse

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
)

// TestBodyOf: text is cut at a character boundary and flagged, binary comes as base64, markup stays text.
func TestBodyOf(t *testing.T) {
	euro := strings.Repeat("€", 10) // 3 bytes each
	for _, tt := range []struct {
		name, body string
		limit      int
		want       Body
	}{
		{"text", "<script>alert(1)</script>", 100, Body{Text: "<script>alert(1)</script>", Encoding: EncodingText, Size: 25}},
		{"cut inside a character", euro, 7, Body{Text: "€€", Encoding: EncodingText, Size: 30, Truncated: true}},
		{"binary", "\xff\xfe\x00", 100, Body{Text: base64.StdEncoding.EncodeToString([]byte("\xff\xfe\x00")), Encoding: EncodingBase64, Size: 3}},
	} {
		got := BodyOf(&azservicebus.ReceivedMessage{Body: []byte(tt.body)}, tt.limit)
		if got != tt.want {
			t.Errorf("%s: got %+v, want %+v", tt.name, got, tt.want)
		}
	}
}

// TestMessageOf: properties are sorted text with their types, the dead-letter properties have their own
// fields, long values are cut, and the expiry follows the TTL.
func TestMessageOf(t *testing.T) {
	enq := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ttl := time.Hour
	seq := int64(42)
	reason := "poison"
	m := MessageOf(&azservicebus.ReceivedMessage{
		SequenceNumber: &seq, MessageID: "m", EnqueuedTime: &enq, TimeToLive: &ttl, DeadLetterReason: &reason,
		State: azservicebus.MessageStateDeferred, Body: []byte("b"),
		ApplicationProperties: map[string]any{"z": int64(7), "a": "<b>x</b>", "DeadLetterReason": reason, "long": strings.Repeat("x", ValueBytes+10), "t": enq},
	}, 10)
	if m.SequenceNumber != 42 || m.State != "deferred" || m.DeadLetterReason != "poison" || m.ExpiresAt == nil || !m.ExpiresAt.Equal(enq.Add(ttl)) {
		t.Fatalf("view %+v", m)
	}
	names := []string{}
	for _, p := range m.Properties {
		names = append(names, p.Name+":"+p.Type)
	}
	if got := strings.Join(names, ","); got != "a:string,long:string,t:timestamp,z:int64" {
		t.Fatalf("properties %s", got)
	}
	if p := m.Properties[1]; !p.Truncated || len(p.Value) != ValueBytes {
		t.Fatalf("long value not cut: %d bytes, truncated %t", len(p.Value), p.Truncated)
	}
	if m.Properties[0].Value != "<b>x</b>" {
		t.Fatalf("markup changed: %q", m.Properties[0].Value)
	}
}

// TestBodyIsBytes: only a body of one data section (or none) is in ReceivedMessage.Body; an AMQP value, a
// sequence or several data sections are not, and BodyOf shows them as EncodingNone rather than as an empty text.
func TestBodyIsBytes(t *testing.T) {
	raw := func(b azservicebus.AMQPAnnotatedMessageBody) *azservicebus.ReceivedMessage {
		var body []byte
		if len(b.Data) == 1 {
			body = b.Data[0] // as the SDK fills it
		}
		return &azservicebus.ReceivedMessage{Body: body, RawAMQPMessage: &azservicebus.AMQPAnnotatedMessage{Body: b}}
	}
	for _, tt := range []struct {
		name string
		m    *azservicebus.ReceivedMessage
		want bool
	}{
		{"no raw message", &azservicebus.ReceivedMessage{Body: []byte("x")}, true},
		{"one data section", raw(azservicebus.AMQPAnnotatedMessageBody{Data: [][]byte{[]byte("x")}}), true},
		{"no body", raw(azservicebus.AMQPAnnotatedMessageBody{}), true},
		{"two data sections", raw(azservicebus.AMQPAnnotatedMessageBody{Data: [][]byte{[]byte("a"), []byte("b")}}), false},
		{"AMQP value", raw(azservicebus.AMQPAnnotatedMessageBody{Value: "hello"}), false},
		{"AMQP sequence", raw(azservicebus.AMQPAnnotatedMessageBody{Sequence: [][]any{{"a"}}}), false},
	} {
		if got := BodyIsBytes(tt.m); got != tt.want {
			t.Errorf("%s: BodyIsBytes = %v, want %v", tt.name, got, tt.want)
		}
		if enc := BodyOf(tt.m, 10).Encoding; (enc == EncodingNone) == tt.want {
			t.Errorf("%s: BodyOf encoding %q", tt.name, enc)
		}
	}
}
