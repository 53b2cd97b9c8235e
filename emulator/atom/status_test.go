package atom_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus/admin"
	"github.com/Azure/go-amqp"

	"github.com/holdfast-dev/holdfast/emulator/broker"
)

// entityDisabled is the condition the service fails operations on a disabled entity with;
// the SDK (internal/errors.go) treats it as fatal and returns it as is.
const entityDisabled = amqp.ErrCond("com.microsoft:entity-disabled")

func isDisabled(err error) bool {
	var ae *amqp.Error
	return errors.As(err, &ae) && ae.Condition == entityDisabled
}

func setQueueStatus(t *testing.T, ac *admin.Client, name string, st admin.EntityStatus) {
	t.Helper()
	q, err := ac.GetQueue(ctx(t), name, nil)
	if err != nil || q == nil {
		t.Fatalf("GetQueue: %v", err)
	}
	q.Status = &st
	resp, err := ac.UpdateQueue(ctx(t), name, q.QueueProperties, nil)
	if err != nil {
		t.Fatalf("UpdateQueue(Status=%s): %v", st, err)
	}
	if resp.Status == nil || *resp.Status != st {
		t.Fatalf("UpdateQueue reported Status %v, want %s", resp.Status, st)
	}
}

// queueClients opens a sender and a receiver on a queue.
func queueClients(t *testing.T, c *azservicebus.Client, queue string) (*azservicebus.Sender, *azservicebus.Receiver) {
	t.Helper()
	sender, err := c.NewSender(queue, nil)
	if err != nil {
		t.Fatal(err)
	}
	receiver, err := c.NewReceiverForQueue(queue, nil)
	if err != nil {
		t.Fatal(err)
	}
	return sender, receiver
}

// receiveBodies receives n messages, completes them and returns their bodies.
func receiveBodies(t *testing.T, r *azservicebus.Receiver, n int) []string {
	t.Helper()
	var got []string
	for len(got) < n {
		msgs, err := r.ReceiveMessages(ctx(t), n-len(got), nil)
		if err != nil {
			t.Fatalf("ReceiveMessages: %v", err)
		}
		for _, m := range msgs {
			got = append(got, string(m.Body))
			if err := r.CompleteMessage(ctx(t), m, nil); err != nil {
				t.Fatalf("CompleteMessage: %v", err)
			}
		}
	}
	return got
}

// TestUpdateQueueStatus: an entity's status, set through UpdateQueue, governs the links that
// are already open, as the service documents (entity-suspend: SendDisabled refuses sends and
// lets receives go on, ReceiveDisabled the reverse, Disabled both), failing with
// com.microsoft:entity-disabled.
func TestUpdateQueueStatus(t *testing.T) {
	_, ac, c := start(t)
	if _, err := ac.CreateQueue(ctx(t), "orders", nil); err != nil {
		t.Fatal(err)
	}
	sender, receiver := queueClients(t, c, "orders")
	for _, b := range []string{"one", "two"} {
		if err := sender.SendMessage(ctx(t), &azservicebus.Message{Body: []byte(b)}, nil); err != nil {
			t.Fatal(err)
		}
	}

	setQueueStatus(t, ac, "orders", admin.EntityStatusSendDisabled)
	err := sender.SendMessage(ctx(t), &azservicebus.Message{Body: []byte("refused")}, nil)
	if !isDisabled(err) || !strings.Contains(err.Error(), "currently disabled for Send operations") {
		t.Fatalf("SendMessage to a SendDisabled queue: %v, want com.microsoft:entity-disabled", err)
	}
	if got := receiveBodies(t, receiver, 1); got[0] != "one" {
		t.Fatalf("received %q from a SendDisabled queue, want one", got)
	}

	setQueueStatus(t, ac, "orders", admin.EntityStatusReceiveDisabled)
	if err := sender.SendMessage(ctx(t), &azservicebus.Message{Body: []byte("three")}, nil); err != nil {
		t.Fatalf("SendMessage to a ReceiveDisabled queue: %v", err)
	}
	if _, err := receiver.ReceiveMessages(ctx(t), 1, nil); !isDisabled(err) {
		t.Fatalf("ReceiveMessages on a ReceiveDisabled queue: %v, want com.microsoft:entity-disabled", err)
	}

	// A receiver waiting for messages when the queue is disabled fails too.
	setQueueStatus(t, ac, "orders", admin.EntityStatusActive)
	waiting, err := c.NewReceiverForQueue("orders", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := receiveBodies(t, waiting, 1); got[0] != "two" {
		t.Fatalf("received %q after reactivation, want two", got)
	}
	if got := receiveBodies(t, waiting, 1); got[0] != "three" {
		t.Fatalf("received %q after reactivation, want three", got)
	}
	done := make(chan error, 1)
	go func() {
		_, err := waiting.ReceiveMessages(ctx(t), 1, nil)
		done <- err
	}()
	setQueueStatus(t, ac, "orders", admin.EntityStatusDisabled)
	select {
	case err := <-done:
		if !isDisabled(err) {
			t.Fatalf("waiting ReceiveMessages when the queue was disabled: %v, want com.microsoft:entity-disabled", err)
		}
	case <-time.After(timeout):
		t.Fatal("a receiver waiting on a queue that was disabled did not fail")
	}
	if err := sender.SendMessage(ctx(t), &azservicebus.Message{Body: []byte("refused")}, nil); !isDisabled(err) {
		t.Fatalf("SendMessage to a Disabled queue: %v, want com.microsoft:entity-disabled", err)
	}
	q, err := ac.GetQueue(ctx(t), "orders", nil)
	if err != nil || q.Status == nil || *q.Status != admin.EntityStatusDisabled {
		t.Fatalf("GetQueue: %+v, %v; want Status Disabled", q, err)
	}
}

// TestDisabledTopic: a SendDisabled topic refuses sends; a Disabled topic's subscriptions
// cannot be received from; a ReceiveDisabled subscription still gets the topic's messages
// (the EntityStatus reference: an active topic copies messages into a disabled subscription).
//
// The Go admin client does not send a subscription's Status (it only reads it back), so the
// subscription's is set through the broker; the JavaScript client sends it (jstest/admin.test.mjs).
func TestDisabledTopic(t *testing.T) {
	srv, ac, c := start(t)
	if _, err := ac.CreateTopic(ctx(t), "events", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ac.CreateSubscription(ctx(t), "events", "all", nil); err != nil {
		t.Fatal(err)
	}
	if err := srv.Broker().SetStatus("events/Subscriptions/all", broker.StatusReceiveDisabled); err != nil {
		t.Fatal(err)
	}
	if sub, err := ac.GetSubscription(ctx(t), "events", "all", nil); err != nil || *sub.Status != admin.EntityStatusReceiveDisabled {
		t.Fatalf("GetSubscription: %+v, %v; want Status ReceiveDisabled", sub, err)
	}
	sender, err := c.NewSender("events", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := sender.SendMessage(ctx(t), &azservicebus.Message{Body: []byte("one")}, nil); err != nil {
		t.Fatal(err)
	}
	receiver, err := c.NewReceiverForSubscription("events", "all", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := receiver.ReceiveMessages(ctx(t), 1, nil); !isDisabled(err) {
		t.Fatalf("ReceiveMessages on a ReceiveDisabled subscription: %v, want com.microsoft:entity-disabled", err)
	}
	rt, err := ac.GetSubscriptionRuntimeProperties(ctx(t), "events", "all", nil)
	if err != nil || rt.ActiveMessageCount != 1 {
		t.Fatalf("ReceiveDisabled subscription holds %+v, %v; want the message", rt, err)
	}

	if err := srv.Broker().SetStatus("events/Subscriptions/all", broker.StatusActive); err != nil {
		t.Fatal(err)
	}
	topic, err := ac.GetTopic(ctx(t), "events", nil)
	if err != nil {
		t.Fatal(err)
	}
	topic.Status = to.Ptr(admin.EntityStatusDisabled)
	if _, err := ac.UpdateTopic(ctx(t), "events", topic.TopicProperties, nil); err != nil {
		t.Fatal(err)
	}
	if err := sender.SendMessage(ctx(t), &azservicebus.Message{Body: []byte("refused")}, nil); !isDisabled(err) {
		t.Fatalf("SendMessage to a Disabled topic: %v, want com.microsoft:entity-disabled", err)
	}
	again, err := c.NewReceiverForSubscription("events", "all", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := again.ReceiveMessages(ctx(t), 1, nil); !isDisabled(err) {
		t.Fatalf("ReceiveMessages on a subscription of a Disabled topic: %v, want com.microsoft:entity-disabled", err)
	}

	topic.Status = to.Ptr(admin.EntityStatusActive)
	if _, err := ac.UpdateTopic(ctx(t), "events", topic.TopicProperties, nil); err != nil {
		t.Fatal(err)
	}
	active, err := c.NewReceiverForSubscription("events", "all", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := receiveBodies(t, active, 1); got[0] != "one" {
		t.Fatalf("received %q after reactivation, want one", got)
	}
}

// TestUpdateAppliesToLaterDeliveries: a property update changes what happens next without
// detaching anything: the next lock lasts the new LockDuration, the next failed delivery counts
// against the new MaxDeliveryCount, and the receiver that was open goes on receiving.
func TestUpdateAppliesToLaterDeliveries(t *testing.T) {
	_, ac, c := start(t)
	if _, err := ac.CreateQueue(ctx(t), "orders", &admin.CreateQueueOptions{Properties: &admin.QueueProperties{
		LockDuration: to.Ptr("PT30S"), MaxDeliveryCount: to.Ptr[int32](5)}}); err != nil {
		t.Fatal(err)
	}
	sender, receiver := queueClients(t, c, "orders")
	lockedFor := func() time.Duration {
		t.Helper()
		if err := sender.SendMessage(ctx(t), &azservicebus.Message{Body: []byte("m")}, nil); err != nil {
			t.Fatal(err)
		}
		before := time.Now()
		msgs, err := receiver.ReceiveMessages(ctx(t), 1, nil)
		if err != nil || len(msgs) != 1 {
			t.Fatalf("ReceiveMessages: %d, %v", len(msgs), err)
		}
		if err := receiver.AbandonMessage(ctx(t), msgs[0], nil); err != nil {
			t.Fatal(err)
		}
		return msgs[0].LockedUntil.Sub(before)
	}
	if d := lockedFor(); d < 25*time.Second || d > 35*time.Second {
		t.Fatalf("locked for %v, want about the queue's PT30S", d)
	}

	q, err := ac.GetQueue(ctx(t), "orders", nil)
	if err != nil {
		t.Fatal(err)
	}
	q.LockDuration, q.MaxDeliveryCount = to.Ptr("PT2M"), to.Ptr[int32](2)
	if _, err := ac.UpdateQueue(ctx(t), "orders", q.QueueProperties, nil); err != nil {
		t.Fatal(err)
	}
	// The abandoned message comes back first (delivery count 1); its next delivery takes the new
	// lock, and abandoning it reaches the new MaxDeliveryCount 2: it is dead-lettered.
	msgs, err := receiver.ReceiveMessages(ctx(t), 1, nil)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("ReceiveMessages after the update: %d, %v", len(msgs), err)
	}
	if d := time.Until(*msgs[0].LockedUntil); d < 100*time.Second {
		t.Fatalf("a message locked after LockDuration became PT2M is locked for %v", d)
	}
	if err := receiver.AbandonMessage(ctx(t), msgs[0], nil); err != nil {
		t.Fatal(err)
	}
	rt, err := ac.GetQueueRuntimeProperties(ctx(t), "orders", nil)
	if err != nil || rt.DeadLetterMessageCount != 1 || rt.ActiveMessageCount != 0 {
		t.Fatalf("after a second abandon under MaxDeliveryCount 2: %+v, %v; want it dead-lettered", rt, err)
	}
}
