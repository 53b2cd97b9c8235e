package emulator_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
)

// BenchmarkSendReceiveComplete measures one SDK round trip of a 1 KB message: send, PeekLock receive,
// complete.
func BenchmarkSendReceiveComplete(b *testing.B) {
	srv := startServer(b, nil)
	q := newQueue(b, srv, nil)
	c := newClient(b, srv)
	s, err := c.NewSender(q, nil)
	if err != nil {
		b.Fatal(err)
	}
	r, err := c.NewReceiverForQueue(q, nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	body := bytes.Repeat([]byte("x"), 1024)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if err := s.SendMessage(ctx, &azservicebus.Message{Body: body}, nil); err != nil {
			b.Fatal(err)
		}
		ms, err := r.ReceiveMessages(ctx, 1, nil)
		if err != nil || len(ms) != 1 {
			b.Fatalf("ReceiveMessages: %d messages, %v", len(ms), err)
		}
		if err := r.CompleteMessage(ctx, ms[0], nil); err != nil {
			b.Fatal(err)
		}
	}
}
