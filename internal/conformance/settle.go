package conformance

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
)

func init() {
	register("LockExpiryRedeliversWithCountPlusOne", testLockExpiry)
	register("RenewLockExtendsAndFailsWhenSettled", testRenewLock)
	register("AbandonIncrementsCountAndModifiesProperties", testAbandon)
	register("MaxDeliveryCountExceededDeadLetters", testMaxDeliveryCount)
	register("ReleaseKeepsDeliveryCount", testRelease)
	register("DeadLetterWithReasonAndProperties", testDeadLetter)
	register("DeferOnlyBySequenceNumber", testDefer)
	register("ReceiveMissingDeferredIsNotFound", testReceiveMissingDeferred)
	register("PeekSeesEveryStateAndEndsEmpty", testPeek)
	register("LockTokensWorkAcrossConnections", testCrossConnectionSettle)
	register("DeadLetterQueueKeepsDeliveryCount", testDeadLetterQueueCounts)
	register("NoTimeToLiveWrittenIntoHeader", testNoHeaderTTL)
}

// Descriptions the service puts in its errors (Microsoft's TestReceiver_RenewMessageLock matches
// the first; the second is what ReceiveDeferredMessages reports for a missing number).
const (
	lockLostText         = "The lock supplied is invalid. Either the lock expired, or the message has already been removed from the queue"
	deferredNotFoundText = "Failed to lock one or more specified messages. Either the message is already locked or does not exist"
)

func testLockExpiry(t *testing.T, e *env) {
	lock := e.target.Features.MinLockDuration
	q := e.queue(QueueSpec{LockDuration: lock, MaxDeliveryCount: 10})
	e.send(q, &azservicebus.Message{Body: body(1)})
	r := e.receiver(q, nil)
	first := e.receiveN(r, 1)[0]
	if got := first.LockedUntil.Sub(*first.EnqueuedTime); got < lock-time.Second || got > lock+5*time.Second {
		t.Errorf("locked for %v after enqueue, want about %v", got, lock)
	}
	// The lock lapses without renewal: the message comes back with the next delivery count.
	second := e.receiveN(r, 1)[0]
	if *second.SequenceNumber != *first.SequenceNumber {
		t.Fatalf("redelivered sequence number %d, want %d", *second.SequenceNumber, *first.SequenceNumber)
	}
	if second.DeliveryCount != 2 {
		t.Errorf("delivery count after lock expiry = %d, want 2", second.DeliveryCount)
	}
	if !time.Now().After(*first.LockedUntil) {
		t.Errorf("message redelivered before its lock expired (%v)", first.LockedUntil)
	}
	wantCode(t, r.CompleteMessage(e.ctx(), first, nil), azservicebus.CodeLockLost)
	e.complete(r, second)
}

func testRenewLock(t *testing.T, e *env) {
	lock := e.target.Features.MinLockDuration
	q := e.queue(QueueSpec{LockDuration: lock})
	e.send(q, &azservicebus.Message{Body: body(1)})
	r := e.receiver(q, nil)
	m := e.receiveN(r, 1)[0]
	before := *m.LockedUntil
	// Renew past the original lock twice; the message must never be redelivered meanwhile.
	deadline := before.Add(lock)
	for time.Now().Before(deadline) {
		if err := r.RenewMessageLock(e.ctx(), m, nil); err != nil {
			t.Fatalf("RenewMessageLock: %v", err)
		}
		waitUntil(m.LockedUntil.Add(-lock / 2))
	}
	if !m.LockedUntil.After(before) {
		t.Fatalf("LockedUntil %v not extended past %v", m.LockedUntil, before)
	}
	e.complete(r, m)
	err := r.RenewMessageLock(e.ctx(), m, nil)
	wantCode(t, err, azservicebus.CodeLockLost)
	wantText(t, err, lockLostText)
	e.receiveNone(r, time.Second)
}

func testAbandon(t *testing.T, e *env) {
	q := e.queue(QueueSpec{MaxDeliveryCount: 10})
	e.send(q, &azservicebus.Message{Body: body(1), ApplicationProperties: map[string]any{"keep": "yes"}})
	r := e.receiver(q, nil)
	m := e.receiveN(r, 1)[0]
	if err := r.AbandonMessage(e.ctx(), m, &azservicebus.AbandonMessageOptions{
		PropertiesToModify: map[string]any{"attempt": int64(1)},
	}); err != nil {
		t.Fatalf("AbandonMessage: %v", err)
	}
	again := e.receiveN(r, 1)[0]
	if again.DeliveryCount != 2 {
		t.Errorf("delivery count after abandon = %d, want 2", again.DeliveryCount)
	}
	if again.ApplicationProperties["attempt"] != int64(1) || again.ApplicationProperties["keep"] != "yes" {
		t.Errorf("application properties after abandon = %v", again.ApplicationProperties)
	}
	e.complete(r, again)
}

func testMaxDeliveryCount(t *testing.T, e *env) {
	q := e.queue(QueueSpec{MaxDeliveryCount: 2})
	e.send(q, &azservicebus.Message{Body: body(1)})
	r := e.receiver(q, nil)
	for i := 1; i <= 2; i++ {
		m := e.receiveN(r, 1)[0]
		if m.DeliveryCount != uint32(i) {
			t.Fatalf("delivery %d has count %d", i, m.DeliveryCount)
		}
		if err := r.AbandonMessage(e.ctx(), m, nil); err != nil {
			t.Fatalf("AbandonMessage: %v", err)
		}
	}
	e.receiveNone(r, time.Second)
	dlq := e.receiver(q, &azservicebus.ReceiverOptions{SubQueue: azservicebus.SubQueueDeadLetter})
	dead := e.receiveN(dlq, 1)[0]
	if deref(dead.DeadLetterReason) != "MaxDeliveryCountExceeded" {
		t.Errorf("dead-letter reason = %q, want MaxDeliveryCountExceeded", deref(dead.DeadLetterReason))
	}
	if want := "Message could not be consumed after 2 delivery attempts."; deref(dead.DeadLetterErrorDescription) != want {
		t.Errorf("dead-letter description = %q, want %q", deref(dead.DeadLetterErrorDescription), want)
	}
	if !bytes.Equal(dead.Body, body(1)) {
		t.Errorf("dead-lettered body = %q", dead.Body)
	}
	// The count it had is kept in the DLQ: two deliveries counted, so the SDK reports 3.
	if dead.DeliveryCount != 3 {
		t.Errorf("dead-lettered delivery count = %d, want 3", dead.DeliveryCount)
	}
	e.complete(dlq, dead)
}

func testRelease(t *testing.T, e *env) {
	q := e.queue(QueueSpec{})
	r := e.receiver(q, nil)
	// A receive that times out on an empty queue leaves its credit on the link; the SDK's releaser releases
	// whatever arrives on it afterwards. A released message keeps its delivery count.
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	msgs, err := r.ReceiveMessages(ctx, 1, nil)
	cancel()
	if len(msgs) != 0 || (err != nil && !errors.Is(err, context.DeadlineExceeded)) {
		t.Fatalf("receive on an empty queue: %d messages, %v", len(msgs), err)
	}
	e.send(q, &azservicebus.Message{Body: body(1)})
	m := e.receiveN(r, 1)[0]
	if m.DeliveryCount != 1 {
		t.Errorf("delivery count after a release = %d, want 1", m.DeliveryCount)
	}
	e.complete(r, m)
}

func testDeadLetter(t *testing.T, e *env) {
	q := e.queue(QueueSpec{})
	e.send(q, &azservicebus.Message{Body: body(1), ApplicationProperties: map[string]any{"keep": "yes"}})
	r := e.receiver(q, nil)
	m := e.receiveN(r, 1)[0]
	if err := r.DeadLetterMessage(e.ctx(), m, &azservicebus.DeadLetterOptions{
		Reason: ptr("InvalidBody"), ErrorDescription: ptr("field x missing"),
		PropertiesToModify: map[string]any{"extra": "value"},
	}); err != nil {
		t.Fatalf("DeadLetterMessage: %v", err)
	}
	e.receiveNone(r, time.Second)
	dlq := e.receiver(q, &azservicebus.ReceiverOptions{SubQueue: azservicebus.SubQueueDeadLetter})
	dead := e.receiveN(dlq, 1)[0]
	if deref(dead.DeadLetterReason) != "InvalidBody" || deref(dead.DeadLetterErrorDescription) != "field x missing" {
		t.Errorf("dead-letter reason %q description %q", deref(dead.DeadLetterReason), deref(dead.DeadLetterErrorDescription))
	}
	if dead.ApplicationProperties["extra"] != "value" || dead.ApplicationProperties["keep"] != "yes" {
		t.Errorf("dead-lettered application properties = %v", dead.ApplicationProperties)
	}
	if dead.MessageID != m.MessageID {
		t.Errorf("dead-lettered message id %q, want %q", dead.MessageID, m.MessageID)
	}
	e.complete(dlq, dead)
}

func testDefer(t *testing.T, e *env) {
	q := e.queue(QueueSpec{})
	e.send(q, &azservicebus.Message{Body: body(1)}, &azservicebus.Message{Body: body(2)})
	r := e.receiver(q, nil)
	got := e.receiveN(r, 2)
	if err := r.DeferMessage(e.ctx(), got[0], &azservicebus.DeferMessageOptions{
		PropertiesToModify: map[string]any{"deferred-because": "busy"},
	}); err != nil {
		t.Fatalf("DeferMessage: %v", err)
	}
	e.complete(r, got[1])
	e.receiveNone(r, time.Second) // deferred: not receivable normally

	peeked := e.peekAll(r)
	if len(peeked) != 1 || peeked[0].State != azservicebus.MessageStateDeferred {
		t.Fatalf("peek after defer: %d messages (want 1 deferred)", len(peeked))
	}
	seq := *got[0].SequenceNumber
	deferred, err := r.ReceiveDeferredMessages(e.ctx(), []int64{seq}, nil)
	if err != nil {
		t.Fatalf("ReceiveDeferredMessages: %v", err)
	}
	if len(deferred) != 1 || *deferred[0].SequenceNumber != seq || !bytes.Equal(deferred[0].Body, body(1)) {
		t.Fatalf("ReceiveDeferredMessages returned %d messages", len(deferred))
	}
	d := deferred[0]
	if d.State != azservicebus.MessageStateDeferred {
		t.Errorf("received deferred message state = %v, want deferred", d.State)
	}
	if d.ApplicationProperties["deferred-because"] != "busy" {
		t.Errorf("properties to modify on defer not applied: %v", d.ApplicationProperties)
	}
	if d.LockedUntil == nil || d.LockToken == ([16]byte{}) {
		t.Fatal("deferred message received without a lock")
	}
	if err := r.RenewMessageLock(e.ctx(), d, nil); err != nil {
		t.Fatalf("RenewMessageLock on a deferred message: %v", err)
	}
	e.complete(r, d)
	if left := e.peekAll(r); len(left) != 0 {
		t.Fatalf("after completing the deferred message %d remain", len(left))
	}
}

func testReceiveMissingDeferred(t *testing.T, e *env) {
	q := e.queue(QueueSpec{})
	e.send(q, &azservicebus.Message{Body: body(1)})
	r := e.receiver(q, nil)
	active := e.receiveN(r, 1)[0]
	_, err := r.ReceiveDeferredMessages(e.ctx(), []int64{*active.SequenceNumber + 1000}, nil)
	wantCode(t, err, azservicebus.CodeNotFound)
	wantText(t, err, deferredNotFoundText)
	e.complete(r, active)
}

// testDeadLetterQueueCounts follows Microsoft's TestMessageSettlementUsingReceiver: the delivery
// count survives dead-lettering, abandoning inside the DLQ does not raise it, and a message of a
// DLQ cannot be dead-lettered again (Azure's dead-letter queue documentation).
func testDeadLetterQueueCounts(t *testing.T, e *env) {
	q := e.queue(QueueSpec{MaxDeliveryCount: 10})
	e.send(q, &azservicebus.Message{Body: body(1)})
	r := e.receiver(q, nil)
	m := e.receiveN(r, 1)[0]
	if err := r.AbandonMessage(e.ctx(), m, nil); err != nil {
		t.Fatalf("AbandonMessage: %v", err)
	}
	m = e.receiveN(r, 1)[0]
	if err := r.DeadLetterMessage(e.ctx(), m, &azservicebus.DeadLetterOptions{Reason: ptr("r")}); err != nil {
		t.Fatalf("DeadLetterMessage: %v", err)
	}
	dlq := e.receiver(q, &azservicebus.ReceiverOptions{SubQueue: azservicebus.SubQueueDeadLetter})
	dead := e.receiveN(dlq, 1)[0]
	if dead.DeliveryCount != 2 {
		t.Errorf("delivery count in the DLQ = %d, want 2 (kept from the queue)", dead.DeliveryCount)
	}
	if err := dlq.AbandonMessage(e.ctx(), dead, nil); err != nil {
		t.Fatalf("AbandonMessage in the DLQ: %v", err)
	}
	dead = e.receiveN(dlq, 1)[0]
	if dead.DeliveryCount != 2 {
		t.Errorf("delivery count after an abandon in the DLQ = %d, want 2", dead.DeliveryCount)
	}
	if err := dlq.DeadLetterMessage(e.ctx(), dead, nil); err == nil {
		t.Error("dead-lettering a message of a DLQ succeeded")
	}
	// Refused, not settled: the lock is still held and completing works.
	e.complete(dlq, dead)
}

// testNoHeaderTTL: a message sent without a TTL comes back without one in its header
// (Microsoft's TestSender_SendAMQPMessageWithMultipleByteSlicesInData compares the header).
func testNoHeaderTTL(t *testing.T, e *env) {
	q := e.queue(QueueSpec{})
	e.send(q, &azservicebus.Message{Body: body(1)})
	r := e.receiver(q, nil)
	m := e.receiveN(r, 1)[0]
	if h := m.RawAMQPMessage.Header; h == nil || h.TTL != 0 {
		t.Errorf("header %+v, want one without a TTL", h)
	}
	e.complete(r, m)
}

func testPeek(t *testing.T, e *env) {
	q := e.queue(QueueSpec{})
	r := e.receiver(q, nil)
	if left := e.peekAll(r); len(left) != 0 {
		t.Fatalf("peek on an empty queue returned %d messages", len(left))
	}
	for i := range 5 {
		e.send(q, &azservicebus.Message{Body: body(i)})
	}
	locked := e.receiveN(r, 2)
	if err := r.DeferMessage(e.ctx(), locked[1], nil); err != nil {
		t.Fatalf("DeferMessage: %v", err)
	}
	all := e.peekAll(r)
	if len(all) != 5 {
		t.Fatalf("peek saw %d messages, want 5 (locked and deferred included)", len(all))
	}
	for i, m := range all {
		if !bytes.Equal(m.Body, body(i)) {
			t.Errorf("peeked message %d body %q", i, m.Body)
		}
		want := azservicebus.MessageStateActive
		if *m.SequenceNumber == *locked[1].SequenceNumber {
			want = azservicebus.MessageStateDeferred
		}
		if m.State != want {
			t.Errorf("peeked message %d state %v, want %v", i, m.State, want)
		}
	}
	from := *all[2].SequenceNumber
	part, err := r.PeekMessages(e.ctx(), 2, &azservicebus.PeekMessagesOptions{FromSequenceNumber: &from})
	if err != nil || len(part) != 2 || *part[0].SequenceNumber != from {
		t.Fatalf("peek from %d: %d messages, %v", from, len(part), err)
	}
	// Peeking does not lock: the three active messages are still receivable.
	e.complete(r, locked[0])
	rest := e.receiveN(r, 3)
	e.complete(r, rest...)
}

func testCrossConnectionSettle(t *testing.T, e *env) {
	q := e.queue(QueueSpec{})
	e.send(q, &azservicebus.Message{Body: body(1)})
	r := e.receiver(q, nil)
	m := e.receiveN(r, 1)[0]

	other := newEnv(t, e.target)
	r2 := other.receiver(q, nil)
	byToken := &azservicebus.ReceivedMessage{LockToken: m.LockToken}
	if err := r2.RenewMessageLock(e.ctx(), byToken, nil); err != nil {
		t.Fatalf("renew by lock token on another connection: %v", err)
	}
	if err := r2.CompleteMessage(e.ctx(), byToken, nil); err != nil {
		t.Fatalf("complete by lock token on another connection: %v", err)
	}
	wantCode(t, r.CompleteMessage(e.ctx(), m, nil), azservicebus.CodeLockLost)
	if left := e.peekAll(r); len(left) != 0 {
		t.Fatalf("%d messages left after completing on another connection", len(left))
	}
}

// waitUntil blocks until the wall clock reaches at; the lock-renewal case paces itself on the broker's clock.
func waitUntil(at time.Time) {
	if d := time.Until(at); d > 0 {
		<-time.After(d)
	}
}
