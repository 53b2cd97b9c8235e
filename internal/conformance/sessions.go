package conformance

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/Azure/go-amqp"
)

// Session-enabled queues (https://learn.microsoft.com/azure/service-bus-messaging/message-sessions),
// one case per session operation.
func init() {
	register("SessionSendRequiresSessionID", testSessionSendNeedsID)
	register("SessionPlainReceiverRefused", testSessionPlainReceiver)
	register("SessionAcceptReceivesOnlyItsMessagesInOrder", testSessionAccept)
	register("SessionLockedByOneReceiverAtATime", testSessionExclusive)
	register("SessionAcceptNextTakesAvailableOrTimesOut", testSessionAcceptNext)
	register("SessionLockRenewAndExpiry", testSessionLockExpiry)
	register("SessionStateAndListSessions", testSessionState)
	register("SessionDeferredBySequenceNumber", testSessionDeferred)
	register("SessionDeadLetterQueueHasNoSessions", testSessionDeadLetterQueue)
}

func (e *env) sessionQueue() string {
	e.t.Helper()
	return e.queue(QueueSpec{RequiresSession: true})
}

func sessionMsg(sid string, i int) *azservicebus.Message {
	return &azservicebus.Message{Body: body(i), SessionID: &sid}
}

func (e *env) accept(q, sid string) *azservicebus.SessionReceiver {
	e.t.Helper()
	r, err := e.client.AcceptSessionForQueue(e.ctx(), q, sid, nil)
	if err != nil {
		e.t.Fatalf("AcceptSessionForQueue(%q): %v", sid, err)
	}
	e.t.Cleanup(func() { _ = r.Close(context.Background()) })
	return r
}

func testSessionSendNeedsID(t *testing.T, e *env) {
	q := e.sessionQueue()
	if err := e.sender(q).SendMessage(e.ctx(), &azservicebus.Message{Body: body(1)}, nil); err == nil {
		t.Fatal("a message without a session id was accepted by a session queue")
	}
}

func testSessionPlainReceiver(t *testing.T, e *env) {
	q := e.sessionQueue()
	r := e.receiver(q, nil)
	msgs, err := r.ReceiveMessages(e.ctx(), 1, nil)
	var ae *amqp.Error
	if len(msgs) != 0 || !errors.As(err, &ae) || ae.Condition != amqp.ErrCondNotAllowed {
		t.Fatalf("plain receive on a session queue: %d messages, %v; want amqp:not-allowed", len(msgs), err)
	}
}

func testSessionAccept(t *testing.T, e *env) {
	q := e.sessionQueue()
	s := e.sender(q)
	for i := range 6 {
		sid := []string{"a", "b"}[i%2]
		if err := s.SendMessage(e.ctx(), sessionMsg(sid, i), nil); err != nil {
			t.Fatal(err)
		}
	}
	r := e.accept(q, "a")
	if r.SessionID() != "a" || !r.LockedUntil().After(time.Now()) {
		t.Fatalf("session %q locked until %v", r.SessionID(), r.LockedUntil())
	}
	got := e.receiveN(r, 3)
	for i, m := range got {
		if !bytes.Equal(m.Body, body(2*i)) || m.SessionID == nil || *m.SessionID != "a" {
			t.Fatalf("message %d of session a: body %q session %v", i, m.Body, m.SessionID)
		}
		if m.LockedUntil == nil || m.LockToken == ([16]byte{}) {
			t.Fatalf("message %d received without a lock", i)
		}
	}
	// Abandoning puts a message back at the head of its session.
	if err := r.AbandonMessage(e.ctx(), got[0], nil); err != nil {
		t.Fatalf("AbandonMessage: %v", err)
	}
	again := e.receiveN(r, 1)[0]
	if *again.SequenceNumber != *got[0].SequenceNumber || again.DeliveryCount != 2 {
		t.Fatalf("after abandon: sequence %d delivery count %d", *again.SequenceNumber, again.DeliveryCount)
	}
	for _, m := range append(got[1:], again) {
		if err := r.CompleteMessage(e.ctx(), m, nil); err != nil {
			t.Fatalf("CompleteMessage: %v", err)
		}
	}
	if b := e.receiveN(e.accept(q, "b"), 3); *b[0].SessionID != "b" {
		t.Fatalf("session b got session %v", b[0].SessionID)
	}
}

func testSessionExclusive(t *testing.T, e *env) {
	q := e.sessionQueue()
	first := e.accept(q, "s")
	// The condition callers branch on (holdfast's drain and due pass keep their rows when they see it).
	var ae *amqp.Error
	if _, err := e.client.AcceptSessionForQueue(e.ctx(), q, "s", nil); !errors.As(err, &ae) || ae.Condition != "com.microsoft:session-cannot-be-locked" {
		t.Fatalf("accepting a locked session: %v; want com.microsoft:session-cannot-be-locked", err)
	}
	if err := first.Close(e.ctx()); err != nil {
		t.Fatal(err)
	}
	// Closing frees the session at once.
	e.accept(q, "s")
}

func testSessionAcceptNext(t *testing.T, e *env) {
	q := e.sessionQueue()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	r, err := e.client.AcceptNextSessionForQueue(ctx, q, nil)
	cancel()
	var sbErr *azservicebus.Error
	if r != nil || !(errors.Is(err, context.DeadlineExceeded) || errors.As(err, &sbErr) && sbErr.Code == azservicebus.CodeTimeout) {
		t.Fatalf("accept next on an empty queue: %v, %v; want a timeout", r, err)
	}
	for _, sid := range []string{"first", "second"} {
		if err := e.sender(q).SendMessage(e.ctx(), sessionMsg(sid, 1), nil); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for range 2 {
		r, err := e.client.AcceptNextSessionForQueue(e.ctx(), q, nil)
		if err != nil {
			t.Fatalf("AcceptNextSessionForQueue: %v", err)
		}
		t.Cleanup(func() { _ = r.Close(context.Background()) })
		got = append(got, r.SessionID())
		e.receiveN(r, 1)
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"first", "second"}) {
		t.Fatalf("accepted sessions %v", got)
	}
}

// The session lock covers its messages: renewing it extends them, and once it expires another
// receiver takes the session, its messages coming back with their delivery count raised. (What
// the first receiver does next is the SDK's business: it answers a lost session lock by
// re-accepting the session when it retries, so its settlements are not asserted here; the
// broker's tests prove them refused.)
func testSessionLockExpiry(t *testing.T, e *env) {
	lock := e.target.Features.MinLockDuration
	q := e.queue(QueueSpec{LockDuration: lock, RequiresSession: true})
	if err := e.sender(q).SendMessage(e.ctx(), sessionMsg("s", 1), nil); err != nil {
		t.Fatal(err)
	}
	first := e.accept(q, "s")
	m := e.receiveN(first, 1)[0]
	before := first.LockedUntil()
	waitUntil(before.Add(-lock / 2))
	if err := first.RenewSessionLock(e.ctx(), nil); err != nil {
		t.Fatalf("RenewSessionLock: %v", err)
	}
	if !first.LockedUntil().After(before) {
		t.Fatalf("LockedUntil %v not extended past %v", first.LockedUntil(), before)
	}
	waitUntil(first.LockedUntil().Add(500 * time.Millisecond))

	var second *azservicebus.SessionReceiver
	for second == nil { // the service may take a moment to free an expired session
		r, err := e.client.AcceptSessionForQueue(e.ctx(), q, "s", nil)
		if err == nil {
			second = r
			t.Cleanup(func() { _ = r.Close(context.Background()) })
		} else if e.ctx().Err() != nil {
			t.Fatalf("the expired session never became available: %v", err)
		}
	}
	again := e.receiveN(second, 1)[0]
	if *again.SequenceNumber != *m.SequenceNumber || again.DeliveryCount != 2 {
		t.Fatalf("after the session lock expired: sequence %d delivery count %d, want %d and 2", *again.SequenceNumber, again.DeliveryCount, *m.SequenceNumber)
	}
	if err := second.CompleteMessage(e.ctx(), again, nil); err != nil {
		t.Fatalf("complete under the new lock: %v", err)
	}
}

func testSessionState(t *testing.T, e *env) {
	q := e.sessionQueue()
	if err := e.sender(q).SendMessage(e.ctx(), sessionMsg("with-message", 1), nil); err != nil {
		t.Fatal(err)
	}
	before := time.Now().Add(-time.Hour) // tolerant of clock skew with the service
	r := e.accept(q, "with-state")
	if st, err := r.GetSessionState(e.ctx(), nil); err != nil || st != nil {
		t.Fatalf("fresh session state: %q, %v", st, err)
	}
	if err := r.SetSessionState(e.ctx(), []byte("checkpoint-7"), nil); err != nil {
		t.Fatalf("SetSessionState: %v", err)
	}
	if err := r.Close(e.ctx()); err != nil {
		t.Fatal(err)
	}
	r = e.accept(q, "with-state")
	if st, err := r.GetSessionState(e.ctx(), nil); err != nil || string(st) != "checkpoint-7" {
		t.Fatalf("state after re-accepting: %q, %v", st, err)
	}
	list := func(opts *azservicebus.ListSessionsOptions) []string {
		var ids []string
		pager := e.client.NewListSessionsForQueuePager(q, opts)
		for pager.More() {
			page, err := pager.NextPage(e.ctx())
			if err != nil {
				t.Fatalf("ListSessions: %v", err)
			}
			ids = append(ids, page.Sessions...)
		}
		slices.Sort(ids)
		return ids
	}
	if got := list(nil); !slices.Equal(got, []string{"with-message", "with-state"}) {
		t.Errorf("ListSessions = %v, want the session with a message and the one with state", got)
	}
	if got := list(&azservicebus.ListSessionsOptions{SessionStateUpdatedAfter: &before}); !slices.Equal(got, []string{"with-state"}) {
		t.Errorf("ListSessions updated after %v = %v", before, got)
	}
	if err := r.SetSessionState(e.ctx(), nil, nil); err != nil {
		t.Fatal(err)
	}
	if st, err := r.GetSessionState(e.ctx(), nil); err != nil || st != nil {
		t.Fatalf("cleared state: %q, %v", st, err)
	}
}

// A deferred message of a session comes back by sequence number through a receiver of that
// session (settled through $management, since it came that way), not through another.
func testSessionDeferred(t *testing.T, e *env) {
	q := e.sessionQueue()
	s := e.sender(q)
	for _, sid := range []string{"a", "b"} {
		if err := s.SendMessage(e.ctx(), sessionMsg(sid, 1), nil); err != nil {
			t.Fatal(err)
		}
	}
	a := e.accept(q, "a")
	m := e.receiveN(a, 1)[0]
	if err := a.DeferMessage(e.ctx(), m, nil); err != nil {
		t.Fatalf("DeferMessage: %v", err)
	}
	b := e.accept(q, "b")
	if _, err := b.ReceiveDeferredMessages(e.ctx(), []int64{*m.SequenceNumber}, nil); err == nil {
		t.Fatal("another session's receiver received the deferred message")
	}
	got, err := a.ReceiveDeferredMessages(e.ctx(), []int64{*m.SequenceNumber}, nil)
	if err != nil || len(got) != 1 || got[0].State != azservicebus.MessageStateDeferred {
		t.Fatalf("ReceiveDeferredMessages in the session: %d messages, %v", len(got), err)
	}
	if err := a.CompleteMessage(e.ctx(), got[0], nil); err != nil {
		t.Fatalf("complete the deferred message: %v", err)
	}
	if peeked, err := a.PeekMessages(e.ctx(), 10, nil); err != nil || len(peeked) != 0 {
		t.Fatalf("session a after completing: %d messages, %v", len(peeked), err)
	}
}

// The dead-letter queue of a session-enabled queue has no sessions: it is received with a plain receiver
// (SubQueue), and its messages keep their session id (azure-sdk-for-net#21271: the .NET session live tests
// read dead-lettered session messages with a plain receiver; azure-sdk-for-java#10662: the service refuses
// a session on a sub-queue).
func testSessionDeadLetterQueue(t *testing.T, e *env) {
	q := e.sessionQueue()
	if err := e.sender(q).SendMessage(e.ctx(), sessionMsg("poisoned", 1), nil); err != nil {
		t.Fatal(err)
	}
	r := e.accept(q, "poisoned")
	m := e.receiveN(r, 1)[0]
	reason := "poison"
	if err := r.DeadLetterMessage(e.ctx(), m, &azservicebus.DeadLetterOptions{Reason: &reason}); err != nil {
		t.Fatalf("DeadLetterMessage: %v", err)
	}
	dlq := e.receiver(q, &azservicebus.ReceiverOptions{SubQueue: azservicebus.SubQueueDeadLetter})
	got := e.receiveN(dlq, 1)[0]
	if got.SessionID == nil || *got.SessionID != "poisoned" || !bytes.Equal(got.Body, body(1)) {
		t.Fatalf("dead-lettered message: session %v body %q; want session poisoned", got.SessionID, got.Body)
	}
	e.complete(dlq, got)
}
