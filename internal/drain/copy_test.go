package drain

import (
	"errors"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
)

// TestNewCopyRefusesABodyThatIsNotBytes: a copy is built from ReceivedMessage.Body, which the SDK leaves empty
// for an AMQP value, a sequence or several data sections, so such a message is refused (it stays where it is,
// reported failed) rather than resubmitted without its payload. Mutation: without the check the copy is built
// with an empty body.
func TestNewCopyRefusesABodyThatIsNotBytes(t *testing.T) {
	seq := int64(7)
	for _, b := range []azservicebus.AMQPAnnotatedMessageBody{
		{Value: "payload"}, {Sequence: [][]any{{"a"}}}, {Data: [][]byte{[]byte("a"), []byte("b")}},
	} {
		m := &azservicebus.ReceivedMessage{SequenceNumber: &seq, RawAMQPMessage: &azservicebus.AMQPAnnotatedMessage{Body: b}}
		if c, err := NewCopy(m, "id", nil); !errors.Is(err, ErrUnsupportedBody) || c != nil {
			t.Errorf("body %+v: copy %v, error %v; want ErrUnsupportedBody", b, c, err)
		}
	}
	m := &azservicebus.ReceivedMessage{Body: []byte("x"), SequenceNumber: &seq,
		RawAMQPMessage: &azservicebus.AMQPAnnotatedMessage{Body: azservicebus.AMQPAnnotatedMessageBody{Data: [][]byte{[]byte("x")}}}}
	if c, err := NewCopy(m, "id", nil); err != nil || string(c.Body) != "x" {
		t.Fatalf("one data section: %v, %v", c, err)
	}
}
