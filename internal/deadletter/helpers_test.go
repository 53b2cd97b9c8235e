package deadletter

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/holdfast-dev/holdfast/emulator"
	"github.com/holdfast-dev/holdfast/emulator/broker"
	"github.com/holdfast-dev/holdfast/internal/drain"
	"github.com/holdfast-dev/holdfast/internal/testenv"
)

func ptr[T any](v T) *T { return &v }

func testCtx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// env is an in-process emulator with one queue (duplicate detection on) and SDK clients.
type env struct {
	srv    *emulator.Server
	queue  string
	client *azservicebus.Client
	sender *azservicebus.Sender
}

func newEnv(t testing.TB, lock time.Duration) *env {
	t.Helper()
	props := broker.DefaultQueueProperties()
	props.LockDuration, props.MaxDeliveryCount = lock, 10
	props.RequiresDuplicateDetection = true
	props.DuplicateDetectionHistoryTimeWindow = 10 * time.Minute
	const queue = "orders"
	srv, client := testenv.Emulator(t, queue, props, nil)
	sender, err := client.NewSender(queue, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &env{srv: srv, queue: queue, client: client, sender: sender}
}

// receiver opens a peek-lock receiver on the queue (dlq: on its dead-letter queue), closed at cleanup.
func (e *env) receiver(t testing.TB, dlq bool) *azservicebus.Receiver {
	t.Helper()
	var o *azservicebus.ReceiverOptions
	if dlq {
		o = &azservicebus.ReceiverOptions{SubQueue: azservicebus.SubQueueDeadLetter}
	}
	r, err := e.client.NewReceiverForQueue(e.queue, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close(context.Background()) })
	return r
}

// counts counts the Service Bus operations of a Service: receives, completes, abandons and peeks on its
// receivers (shared peeker and per-call receivers) and batch sends.
type counts struct {
	receives, completes, abandons, peeks, sends atomic.Int64
}

func (c *counts) ops() int64 {
	return c.receives.Load() + c.completes.Load() + c.abandons.Load() + c.peeks.Load() + c.sends.Load()
}

// countingReceiver wraps both the shared and the per-call receivers (an *azservicebus.Receiver each).
type countingReceiver struct {
	*azservicebus.Receiver
	c *counts
}

func (r countingReceiver) ReceiveMessages(ctx context.Context, n int, o *azservicebus.ReceiveMessagesOptions) ([]*azservicebus.ReceivedMessage, error) {
	r.c.receives.Add(1)
	return r.Receiver.ReceiveMessages(ctx, n, o)
}

func (r countingReceiver) CompleteMessage(ctx context.Context, m *azservicebus.ReceivedMessage, o *azservicebus.CompleteMessageOptions) error {
	r.c.completes.Add(1)
	return r.Receiver.CompleteMessage(ctx, m, o)
}

func (r countingReceiver) AbandonMessage(ctx context.Context, m *azservicebus.ReceivedMessage, o *azservicebus.AbandonMessageOptions) error {
	r.c.abandons.Add(1)
	return r.Receiver.AbandonMessage(ctx, m, o)
}

func (r countingReceiver) PeekMessages(ctx context.Context, n int, o *azservicebus.PeekMessagesOptions) ([]*azservicebus.ReceivedMessage, error) {
	r.c.peeks.Add(1)
	return r.Receiver.PeekMessages(ctx, n, o)
}

type countingSender struct {
	drain.Sender
	c *counts
}

func (s countingSender) SendMessageBatch(ctx context.Context, b *azservicebus.MessageBatch, o *azservicebus.SendMessageBatchOptions) error {
	s.c.sends.Add(1)
	return s.Sender.SendMessageBatch(ctx, b, o)
}

// service returns a Service on the env's DLQ whose operations are counted in c; opts may set tuning fields.
func (e *env) service(t testing.TB, opts *Options, c *counts) *Service {
	t.Helper()
	var o Options
	if opts != nil {
		o = *opts
	}
	o.Entity = e.queue
	peeker := e.receiver(t, true)
	o.Shared = countingReceiver{Receiver: peeker, c: c}
	o.NewReceiver = func() (Receiver, error) {
		r, err := e.client.NewReceiverForQueue(e.queue, &azservicebus.ReceiverOptions{SubQueue: azservicebus.SubQueueDeadLetter})
		if err != nil {
			return nil, err
		}
		return countingReceiver{Receiver: r, c: c}, nil
	}
	send, err := e.client.NewSender(drain.SendTarget(e.queue), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = send.Close(context.Background()) })
	o.Sender = countingSender{Sender: send, c: c}
	svc, err := New(&o)
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// stats returns the emulator's snapshot of the queue (dlq: of its dead-letter queue).
func (e *env) stats(t testing.TB, dlq bool) broker.EntityStats {
	t.Helper()
	path := e.queue
	if dlq {
		path = Path(e.queue)
	}
	ent, err := e.srv.Broker().Entity(path)
	if err != nil {
		t.Fatal(err)
	}
	return ent.Stats()
}

// seed sends n messages (body "body-i", content type, correlation id, subject, properties) and dead-letters
// each with reason "reason-i" and description "description-i". It returns the sequence numbers in order.
func (e *env) seed(ctx context.Context, t testing.TB, n int) []int64 {
	t.Helper()
	for start := 0; start < n; start += 500 {
		batch, err := e.sender.NewMessageBatch(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := start; i < min(start+500, n); i++ {
			err := batch.AddMessage(&azservicebus.Message{
				MessageID:             ptr(fmt.Sprintf("orig-%d", i)),
				Body:                  []byte(fmt.Sprintf("body-%d", i)),
				ContentType:           ptr("text/plain"),
				CorrelationID:         ptr(fmt.Sprint("corr-", i)),
				Subject:               ptr("subject"),
				ApplicationProperties: map[string]any{"index": int64(i), "tenant": "contoso"},
			}, nil)
			if err != nil {
				t.Fatal(err)
			}
		}
		if err := e.sender.SendMessageBatch(ctx, batch, nil); err != nil {
			t.Fatal(err)
		}
	}
	r := e.receiver(t, false)
	var seqs []int64
	for len(seqs) < n {
		msgs, err := r.ReceiveMessages(ctx, min(500, n-len(seqs)), nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			i := m.ApplicationProperties["index"].(int64)
			err := r.DeadLetterMessage(ctx, m, &azservicebus.DeadLetterOptions{
				Reason: ptr(fmt.Sprint("reason-", i)), ErrorDescription: ptr(fmt.Sprint("description-", i))})
			if err != nil {
				t.Fatal(err)
			}
			seqs = append(seqs, *m.SequenceNumber)
		}
	}
	if st := e.stats(t, true); st.Active != n {
		t.Fatalf("seeded DLQ %+v, want %d active", st, n)
	}
	return seqs
}

// drainQueue receives and completes everything in the queue (not the DLQ) and returns it, waiting until n
// messages arrived.
func (e *env) drainQueue(ctx context.Context, t testing.TB, n int) []*azservicebus.ReceivedMessage {
	t.Helper()
	r := e.receiver(t, false)
	var out []*azservicebus.ReceivedMessage
	for len(out) < n {
		msgs, err := r.ReceiveMessages(ctx, n-len(out), nil)
		if err != nil {
			t.Fatalf("received %d of %d: %v", len(out), n, err)
		}
		for _, m := range msgs {
			if err := r.CompleteMessage(ctx, m, nil); err != nil {
				t.Fatal(err)
			}
		}
		out = append(out, msgs...)
	}
	return out
}
