package emulator_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/Azure/go-amqp"

	"github.com/holdfast-dev/holdfast/emulator"
	"github.com/holdfast-dev/holdfast/emulator/broker"
)

func TestSendReceiveComplete(t *testing.T) {
	srv := startServer(t, nil)
	q := newQueue(t, srv, nil)
	c := newClient(t, srv)
	s, err := c.NewSender(q, nil)
	if err != nil {
		t.Fatal(err)
	}
	mid := "m-1"
	send(t, s,
		&azservicebus.Message{Body: []byte("one"), MessageID: &mid, ApplicationProperties: map[string]any{"k": "v"}},
		&azservicebus.Message{Body: []byte("two")},
		&azservicebus.Message{Body: []byte("three")})

	r, err := c.NewReceiverForQueue(q, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := receiveN(t, r, 3)
	for i, want := range []string{"one", "two", "three"} {
		m := got[i]
		if string(m.Body) != want {
			t.Errorf("message %d body = %q, want %q", i, m.Body, want)
		}
		if m.LockToken == ([16]byte{}) {
			t.Errorf("message %d has no lock token", i)
		}
		if m.DeliveryCount != 1 {
			t.Errorf("message %d DeliveryCount = %d, want 1", i, m.DeliveryCount)
		}
		if m.SequenceNumber == nil || m.EnqueuedTime == nil || m.LockedUntil == nil {
			t.Errorf("message %d lacks broker properties: seq %v enqueued %v locked-until %v", i, m.SequenceNumber, m.EnqueuedTime, m.LockedUntil)
		}
		if m.MessageID == "" {
			t.Errorf("message %d has no message-id", i)
		}
	}
	if got[0].MessageID != mid || got[0].ApplicationProperties["k"] != "v" {
		t.Errorf("first message: id %q props %v", got[0].MessageID, got[0].ApplicationProperties)
	}
	for _, m := range got {
		if err := r.CompleteMessage(ctxT(t), m, nil); err != nil {
			t.Fatalf("CompleteMessage: %v", err)
		}
	}
	e, err := srv.Broker().Entity(q)
	if err != nil {
		t.Fatal(err)
	}
	if left := e.Peek(0, 10); len(left) != 0 {
		t.Fatalf("%d messages left after completing all", len(left))
	}
}

func TestBatchSend(t *testing.T) {
	srv := startServer(t, nil)
	q := newQueue(t, srv, nil)
	c := newClient(t, srv)
	s, err := c.NewSender(q, nil)
	if err != nil {
		t.Fatal(err)
	}
	batch, err := s.NewMessageBatch(ctxT(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	const n = 5
	for i := range n {
		if err := batch.AddMessage(&azservicebus.Message{Body: fmt.Appendf(nil, "b%d", i)}, nil); err != nil {
			t.Fatalf("AddMessage %d: %v", i, err)
		}
	}
	if err := s.SendMessageBatch(ctxT(t), batch, nil); err != nil {
		t.Fatalf("SendMessageBatch: %v", err)
	}
	r, err := c.NewReceiverForQueue(q, &azservicebus.ReceiverOptions{ReceiveMode: azservicebus.ReceiveModeReceiveAndDelete})
	if err != nil {
		t.Fatal(err)
	}
	got := receiveN(t, r, n)
	for i, m := range got {
		if want := fmt.Sprintf("b%d", i); string(m.Body) != want {
			t.Errorf("message %d body = %q, want %q", i, m.Body, want)
		}
		if m.LockToken != ([16]byte{}) {
			t.Errorf("ReceiveAndDelete message %d has a lock token", i)
		}
	}
}

func TestSettlement(t *testing.T) {
	srv := startServer(t, nil)
	q := newQueue(t, srv, nil)
	c := newClient(t, srv)
	s, err := c.NewSender(q, nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := c.NewReceiverForQueue(q, nil)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("abandon", func(t *testing.T) {
		send(t, s, &azservicebus.Message{Body: []byte("a")})
		m := receiveN(t, r, 1)[0]
		err := r.AbandonMessage(ctxT(t), m, &azservicebus.AbandonMessageOptions{PropertiesToModify: map[string]any{"why": "busy"}})
		if err != nil {
			t.Fatalf("AbandonMessage: %v", err)
		}
		again := receiveN(t, r, 1)[0]
		if *again.SequenceNumber != *m.SequenceNumber || again.DeliveryCount != 2 || again.ApplicationProperties["why"] != "busy" {
			t.Fatalf("after abandon: seq %d (want %d), delivery count %d (want 2), props %v",
				*again.SequenceNumber, *m.SequenceNumber, again.DeliveryCount, again.ApplicationProperties)
		}
		if err := r.CompleteMessage(ctxT(t), again, nil); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("defer", func(t *testing.T) {
		send(t, s, &azservicebus.Message{Body: []byte("d")})
		m := receiveN(t, r, 1)[0]
		if err := r.DeferMessage(ctxT(t), m, &azservicebus.DeferMessageOptions{PropertiesToModify: map[string]any{"hello": "world"}}); err != nil {
			t.Fatalf("DeferMessage: %v", err)
		}
		ds, err := r.ReceiveDeferredMessages(ctxT(t), []int64{*m.SequenceNumber}, nil)
		if err != nil {
			t.Fatalf("ReceiveDeferredMessages: %v", err)
		}
		if len(ds) != 1 || string(ds[0].Body) != "d" || ds[0].State != azservicebus.MessageStateDeferred || ds[0].ApplicationProperties["hello"] != "world" {
			t.Fatalf("deferred messages: %+v", ds)
		}
		if err := r.CompleteMessage(ctxT(t), ds[0], nil); err != nil {
			t.Fatalf("CompleteMessage of a deferred message: %v", err)
		}
	})

	t.Run("dead-letter", func(t *testing.T) {
		send(t, s, &azservicebus.Message{Body: []byte("x")})
		m := receiveN(t, r, 1)[0]
		reason, desc := "poison", "cannot parse"
		err := r.DeadLetterMessage(ctxT(t), m, &azservicebus.DeadLetterOptions{Reason: &reason, ErrorDescription: &desc, PropertiesToModify: map[string]any{"extra": int64(7)}})
		if err != nil {
			t.Fatalf("DeadLetterMessage: %v", err)
		}
		dlq, err := c.NewReceiverForQueue(q, &azservicebus.ReceiverOptions{SubQueue: azservicebus.SubQueueDeadLetter})
		if err != nil {
			t.Fatal(err)
		}
		d := receiveN(t, dlq, 1)[0]
		if string(d.Body) != "x" || d.DeadLetterReason == nil || *d.DeadLetterReason != reason ||
			d.DeadLetterErrorDescription == nil || *d.DeadLetterErrorDescription != desc || d.ApplicationProperties["extra"] != int64(7) {
			t.Fatalf("dead-lettered message: body %q reason %v desc %v props %v", d.Body, d.DeadLetterReason, d.DeadLetterErrorDescription, d.ApplicationProperties)
		}
		if err := dlq.CompleteMessage(ctxT(t), d, nil); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("renew-lock", func(t *testing.T) {
		send(t, s, &azservicebus.Message{Body: []byte("r")})
		m := receiveN(t, r, 1)[0]
		before := *m.LockedUntil
		if err := r.RenewMessageLock(ctxT(t), m, nil); err != nil {
			t.Fatalf("RenewMessageLock: %v", err)
		}
		if m.LockedUntil.Before(before) {
			t.Fatalf("LockedUntil went back from %v to %v", before, *m.LockedUntil)
		}
		if err := r.CompleteMessage(ctxT(t), m, nil); err != nil {
			t.Fatal(err)
		}
	})
}

// TestRenewLockManualClock checks that renewal extends the lock from the broker's clock.
func TestRenewLockManualClock(t *testing.T) {
	clock := broker.NewManualClock(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
	srv := startServer(t, &emulator.Options{Clock: clock})
	q := newQueue(t, srv, nil)
	c := newClient(t, srv)
	s, _ := c.NewSender(q, nil)
	r, _ := c.NewReceiverForQueue(q, nil)
	send(t, s, &azservicebus.Message{Body: []byte("r")})
	m := receiveN(t, r, 1)[0]
	before := *m.LockedUntil
	clock.Advance(20 * time.Second)
	if err := r.RenewMessageLock(ctxT(t), m, nil); err != nil {
		t.Fatalf("RenewMessageLock: %v", err)
	}
	if got := m.LockedUntil.Sub(before); got != 20*time.Second {
		t.Fatalf("renewal moved LockedUntil by %v, want 20s", got)
	}
}

func TestLargeMessageRoundTrip(t *testing.T) {
	srv := startServer(t, nil)
	q := newQueue(t, srv, nil)
	c := newClient(t, srv)
	s, _ := c.NewSender(q, nil)
	r, _ := c.NewReceiverForQueue(q, nil)
	body := bytes.Repeat([]byte("0123456789abcdef"), 200*1024/16) // 200 KiB: several frames each way
	send(t, s, &azservicebus.Message{Body: body})
	m := receiveN(t, r, 1)[0]
	if !bytes.Equal(m.Body, body) {
		t.Fatalf("body of %d bytes came back as %d bytes", len(body), len(m.Body))
	}
	if err := r.CompleteMessage(ctxT(t), m, nil); err != nil {
		t.Fatal(err)
	}
}

func TestMessageTooLarge(t *testing.T) {
	srv := startServer(t, nil)
	q := newQueue(t, srv, nil)
	c := newClient(t, srv)
	s, _ := c.NewSender(q, nil)
	err := s.SendMessage(ctxT(t), &azservicebus.Message{Body: make([]byte, emulator.DefaultMaxMessageSize+1)}, nil)
	if !errors.Is(err, azservicebus.ErrMessageTooLarge) {
		t.Fatalf("SendMessage of an oversized message: %v, want ErrMessageTooLarge", err)
	}
}

func TestUnknownQueueNotFound(t *testing.T) {
	srv := startServer(t, nil)
	c := newClient(t, srv)
	r, err := c.NewReceiverForQueue("no-such-queue", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.ReceiveMessages(ctxT(t), 1, nil)
	var sbErr *azservicebus.Error
	if !errors.As(err, &sbErr) || sbErr.Code != azservicebus.CodeNotFound {
		t.Fatalf("ReceiveMessages from an unknown queue: %v, want CodeNotFound", err)
	}
}

func TestConcurrentClients(t *testing.T) {
	srv := startServer(t, nil)
	q := newQueue(t, srv, nil)
	const clients = 100
	errs := make(chan error, clients)
	for i := range clients {
		go func() { errs <- roundTrip(srv, q, i) }()
	}
	for range clients {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	e, _ := srv.Broker().Entity(q)
	if left := e.Peek(0, clients); len(left) != 0 {
		t.Fatalf("%d messages left", len(left))
	}
}

// roundTrip sends one message on its own connection, receives one and completes it.
func roundTrip(srv *emulator.Server, q string, i int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := azservicebus.NewClientFromConnectionString(srv.ConnectionString(), nil)
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	s, err := c.NewSender(q, nil)
	if err != nil {
		return err
	}
	if err := s.SendMessage(ctx, &azservicebus.Message{Body: fmt.Appendf(nil, "client %d", i)}, nil); err != nil {
		return fmt.Errorf("client %d send: %w", i, err)
	}
	r, err := c.NewReceiverForQueue(q, nil)
	if err != nil {
		return err
	}
	ms, err := r.ReceiveMessages(ctx, 1, nil)
	if err != nil || len(ms) != 1 {
		return fmt.Errorf("client %d receive: %d messages, %v", i, len(ms), err)
	}
	if err := r.CompleteMessage(ctx, ms[0], nil); err != nil {
		return fmt.Errorf("client %d complete: %w", i, err)
	}
	return nil
}

func TestCloseJoinsGoroutines(t *testing.T) {
	baseline := runtime.NumGoroutine()
	srv, err := emulator.Start(nil)
	if err != nil {
		t.Fatal(err)
	}
	q := "leak-check"
	if err := srv.Broker().CreateQueue(q, broker.DefaultQueueProperties()); err != nil {
		t.Fatal(err)
	}
	c, err := azservicebus.NewClientFromConnectionString(srv.ConnectionString(), nil)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := c.NewSender(q, nil)
	if err := s.SendMessage(ctxT(t), &azservicebus.Message{Body: []byte("x")}, nil); err != nil {
		t.Fatal(err)
	}
	r, _ := c.NewReceiverForQueue(q, nil)
	if _, err := r.ReceiveMessages(ctxT(t), 1, nil); err != nil {
		t.Fatal(err)
	}
	// Close the server first, with the client's links still attached and a receive link waiting.
	if err := srv.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := srv.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	_ = c.Close(context.Background())
	waitGoroutines(t, baseline)
}

// TestLeftoverCreditReleased covers the SDK's releaser: credit left by a ReceiveMessages call stays
// valid, later messages delivered on it come back released, and the next call gets them at once.
func TestLeftoverCreditReleased(t *testing.T) {
	srv := startServer(t, nil)
	q := newQueue(t, srv, nil)
	c := newClient(t, srv)
	s, _ := c.NewSender(q, nil)
	r, _ := c.NewReceiverForQueue(q, nil)
	send(t, s, &azservicebus.Message{Body: []byte("first")})
	first, err := r.ReceiveMessages(ctxT(t), 3, nil)
	if err != nil || len(first) != 1 || string(first[0].Body) != "first" {
		t.Fatalf("ReceiveMessages(3) with one message queued: %v, %v", first, err)
	}
	// Two credits are left on the link.
	send(t, s, &azservicebus.Message{Body: []byte("second")}, &azservicebus.Message{Body: []byte("third")})
	got := receiveN(t, r, 2)
	for _, m := range got {
		if m.DeliveryCount != 1 {
			t.Errorf("%q: DeliveryCount %d after a release, want 1", m.Body, m.DeliveryCount)
		}
		if err := r.CompleteMessage(ctxT(t), m, nil); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSendToDeadLetterQueueRefused(t *testing.T) {
	srv := startServer(t, nil)
	q := newQueue(t, srv, nil)
	c := newClient(t, srv)
	s, err := c.NewSender(q+"/$DeadLetterQueue", nil)
	if err != nil {
		t.Fatal(err)
	}
	err = s.SendMessage(ctxT(t), &azservicebus.Message{Body: []byte("x")}, nil)
	var ae *amqp.Error
	if !errors.As(err, &ae) || ae.Condition != amqp.ErrCondNotAllowed {
		t.Fatalf("send to a dead-letter queue: %v, want amqp:not-allowed", err)
	}
}

func TestStartRejectsBadOptions(t *testing.T) {
	tests := []struct {
		name string
		opts emulator.Options
		want string
	}{
		{"frame size below the AMQP minimum", emulator.Options{MaxFrameSize: 100}, "MaxFrameSize"},
		{"negative keepalive", emulator.Options{KeepAlive: -time.Second}, "KeepAlive"},
		{"bad address", emulator.Options{Addr: "no-port"}, "no-port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, err := emulator.Start(&tt.opts)
			if err == nil {
				_ = srv.Close()
				t.Fatal("Start succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Start: %v, want an error naming %q", err, tt.want)
			}
		})
	}
}

func TestConnectionString(t *testing.T) {
	srv := startServer(t, nil)
	_, port, _ := strings.Cut(srv.Addr(), ":")
	if !strings.HasPrefix(srv.Addr(), "127.0.0.1:") || port == "" || port == "0" {
		t.Fatalf("Addr() = %q", srv.Addr())
	}
	want := "Endpoint=sb://127.0.0.1:" + port + ";SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=emulator;UseDevelopmentEmulator=true"
	if got := srv.ConnectionString(); got != want {
		t.Fatalf("ConnectionString() = %q, want %q", got, want)
	}
}

// TestExpiredLockSettlementFails checks the failure acknowledgement: settling a message whose lock
// expired fails with CodeLockLost, and the message is delivered again.
func TestExpiredLockSettlementFails(t *testing.T) {
	clock := broker.NewManualClock(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
	srv := startServer(t, &emulator.Options{Clock: clock})
	q := newQueue(t, srv, nil)
	c := newClient(t, srv)
	s, _ := c.NewSender(q, nil)
	r, _ := c.NewReceiverForQueue(q, nil)
	send(t, s, &azservicebus.Message{Body: []byte("late")})
	m := receiveN(t, r, 1)[0]
	clock.Advance(broker.DefaultQueueProperties().LockDuration + time.Second)
	var sbErr *azservicebus.Error
	if err := r.CompleteMessage(ctxT(t), m, nil); !errors.As(err, &sbErr) || sbErr.Code != azservicebus.CodeLockLost {
		t.Fatalf("CompleteMessage after the lock expired: %v, want CodeLockLost", err)
	}
	again := receiveN(t, r, 1)[0]
	if string(again.Body) != "late" || again.DeliveryCount != 2 {
		t.Fatalf("redelivery: body %q, DeliveryCount %d, want 2", again.Body, again.DeliveryCount)
	}
}

func TestTopicSubscriptions(t *testing.T) {
	srv := startServer(t, nil)
	b := srv.Broker()
	if err := b.CreateTopic("orders", broker.DefaultTopicProperties()); err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{"billing", "shipping"} {
		if err := b.CreateSubscription("orders", sub, broker.DefaultSubscriptionProperties(), nil); err != nil {
			t.Fatal(err)
		}
	}
	c := newClient(t, srv)
	s, err := c.NewSender("orders", nil)
	if err != nil {
		t.Fatal(err)
	}
	send(t, s, &azservicebus.Message{Body: []byte("order 1")})
	for _, sub := range []string{"billing", "shipping"} {
		r, err := c.NewReceiverForSubscription("orders", sub, nil)
		if err != nil {
			t.Fatal(err)
		}
		m := receiveN(t, r, 1)[0]
		if string(m.Body) != "order 1" {
			t.Fatalf("%s got %q", sub, m.Body)
		}
		if err := r.CompleteMessage(ctxT(t), m, nil); err != nil {
			t.Fatalf("%s: CompleteMessage: %v", sub, err)
		}
	}
}
