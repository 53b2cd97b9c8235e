package broker

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/Azure/go-amqp"
)

func newSessionQueue(t *testing.T) (*Broker, *ManualClock, *Entity) {
	t.Helper()
	return newTestQueue(t, func(p *QueueProperties) { p.RequiresSession = true })
}

func sessionMsg(sid, body string) *amqp.Message {
	m := msg(body)
	m.Properties = &amqp.MessageProperties{GroupID: &sid}
	return m
}

func sendSession(t *testing.T, b *Broker, sid string, bodies ...string) {
	t.Helper()
	for _, body := range bodies {
		if err := b.Send("orders", sessionMsg(sid, body)); err != nil {
			t.Fatal(err)
		}
	}
}

func bodiesOf(ds []Delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = string(d.Message.GetData())
	}
	return out
}

func accept(t *testing.T, e *Entity, id string) *SessionLock {
	t.Helper()
	l, err := e.AcceptSession(id)
	if err != nil {
		t.Fatalf("AcceptSession(%q): %v", id, err)
	}
	return l
}

// A session receiver gets its own session's messages only, in sequence order; a session is
// locked by one receiver at a time; a session queue refuses a message without a session id and
// a plain receive.
func TestSessionLockAndFIFO(t *testing.T) {
	b, clk, e := newSessionQueue(t)
	sendSession(t, b, "a", "a1", "a2")
	sendSession(t, b, "b", "b1")
	sendSession(t, b, "a", "a3")
	if err := b.Send("orders", msg("no session")); !errors.Is(err, ErrNotAllowed) {
		t.Fatalf("send without a session id: %v, want ErrNotAllowed", err)
	}
	if ds := e.Receive(10, PeekLock); len(ds) != 0 {
		t.Fatalf("a plain receive on a session queue got %d messages", len(ds))
	}
	a := accept(t, e, "a")
	if until := a.LockedUntil(); !until.Equal(now(clk).Add(10 * time.Second)) {
		t.Errorf("locked until %v, want now + LockDuration", until)
	}
	if _, err := e.AcceptSession("a"); !errors.Is(err, ErrSessionCannotBeLocked) {
		t.Fatalf("second accept: %v, want ErrSessionCannotBeLocked", err)
	}
	got := a.Receive(10, PeekLock)
	if want := []string{"a1", "a2", "a3"}; !slices.Equal(bodiesOf(got), want) {
		t.Fatalf("session a received %v, want %v", bodiesOf(got), want)
	}
	if got[0].LockedUntil != a.LockedUntil() || got[0].Message.Properties.GroupID == nil || *got[0].Message.Properties.GroupID != "a" {
		t.Errorf("delivery %+v: want the session's lock time and id", got[0])
	}
	// Abandon puts a1 back first in line: per-session FIFO by sequence number.
	if err := e.Abandon(got[0].LockToken, nil); err != nil {
		t.Fatal(err)
	}
	if again := a.Receive(10, PeekLock); len(again) != 1 || again[0].SequenceNumber != got[0].SequenceNumber || again[0].Message.Header.DeliveryCount != 1 {
		t.Fatalf("after abandon: %v", bodiesOf(again))
	}
	if _, err := e.RenewLock(got[1].LockToken); !errors.Is(err, ErrNotAllowed) {
		t.Errorf("renewing a session message's own lock: %v, want ErrNotAllowed", err)
	}
	for _, d := range got[1:] {
		if err := e.Complete(d.LockToken); err != nil {
			t.Fatal(err)
		}
	}
	bl := accept(t, e, "b")
	if got := bodiesOf(bl.Receive(10, ReceiveAndDelete)); !slices.Equal(got, []string{"b1"}) {
		t.Fatalf("session b received %v", got)
	}
}

func TestAcceptNextSession(t *testing.T) {
	b, _, e := newSessionQueue(t)
	if l, err := e.AcceptNextSession(); l != nil || err != nil {
		t.Fatalf("accept next on an empty queue: %v %v, want nothing", l, err)
	}
	avail := e.Available()
	sendSession(t, b, "second", "s")
	select {
	case <-avail:
	default:
		t.Fatal("Available did not wake on a new session")
	}
	sendSession(t, b, "third", "t")
	first := accept(t, e, "first") // locked, empty: never handed out by accept-next
	l, err := e.AcceptNextSession()
	if err != nil || l == nil || l.ID() != "second" {
		t.Fatalf("accept next: %v %v, want the session with the oldest message", l, err)
	}
	if l2, _ := e.AcceptNextSession(); l2 == nil || l2.ID() != "third" {
		t.Fatalf("accept next again: %v, want third", l2)
	}
	if l3, _ := e.AcceptNextSession(); l3 != nil {
		t.Fatalf("accept next with every session locked: %v", l3.ID())
	}
	first.Release()
	if l4, _ := e.AcceptNextSession(); l4 != nil {
		t.Fatalf("an empty released session was handed out: %v", l4.ID())
	}
}

// Lock expiry releases the session to another receiver with its messages' delivery count
// raised; settling under the lost lock reports ErrSessionLockLost. Closing (Release) gives the
// messages back without a count (the service's "delivery count in sessions" table).
func TestSessionLockExpiryAndRelease(t *testing.T) {
	b, clk, e := newSessionQueue(t)
	sendSession(t, b, "s", "m1", "m2")
	l := accept(t, e, "s")
	got := l.Receive(2, PeekLock)
	clk.Advance(6 * time.Second)
	until, err := l.Renew()
	if err != nil || !until.Equal(now(clk).Add(10*time.Second)) {
		t.Fatalf("renew: %v %v", until, err)
	}
	clk.Advance(9 * time.Second) // still inside the renewed lock
	if err := e.Complete(got[0].LockToken); err != nil {
		t.Fatalf("complete under the renewed lock: %v", err)
	}
	clk.Advance(time.Second) // the renewed lock ends
	select {
	case <-l.Lost():
	default:
		t.Fatal("Lost not closed after the session lock expired")
	}
	if !errors.Is(l.Err(), ErrSessionLockLost) {
		t.Errorf("Err = %v", l.Err())
	}
	if err := e.Complete(got[1].LockToken); !errors.Is(err, ErrSessionLockLost) || !errors.Is(err, ErrLockLost) {
		t.Fatalf("complete under the lost lock: %v, want ErrSessionLockLost", err)
	}
	if _, err := l.Renew(); !errors.Is(err, ErrSessionLockLost) {
		t.Fatalf("renew after expiry: %v", err)
	}
	if _, err := l.State(); !errors.Is(err, ErrSessionLockLost) {
		t.Fatalf("state after expiry: %v", err)
	}
	other, err := e.AcceptNextSession()
	if err != nil || other == nil || other.ID() != "s" {
		t.Fatalf("the expired session is not available to another receiver: %v %v", other, err)
	}
	again := other.Receive(10, PeekLock)
	if len(again) != 1 || again[0].SequenceNumber != got[1].SequenceNumber || again[0].Message.Header.DeliveryCount != 1 {
		t.Fatalf("redelivered %v, want m2 with delivery count 1", bodiesOf(again))
	}
	other.Release()
	if err := e.Complete(again[0].LockToken); !errors.Is(err, ErrSessionLockLost) {
		t.Fatalf("complete after release: %v", err)
	}
	third := accept(t, e, "s")
	if d := third.Receive(1, PeekLock); len(d) != 1 || d[0].Message.Header.DeliveryCount != 1 {
		t.Fatalf("after a release: %v, want m2 with its delivery count unchanged", d)
	}
	if err := e.ExpireSessionLock("s"); err != nil {
		t.Fatal(err)
	}
	if _, err := third.Renew(); !errors.Is(err, ErrSessionLockLost) {
		t.Fatalf("renew after ExpireSessionLock: %v", err)
	}
	if err := e.ExpireSessionLock("s"); !errors.Is(err, ErrSessionLockLost) {
		t.Fatalf("expire an unlocked session: %v", err)
	}
	// Each lock that ended with a message under it counted once: by expiry (the first lock, then third) or by
	// the receiver's release (other).
	if c := e.Stats().Counters; c.LockExpired != 2 || c.SessionReleased != 1 {
		t.Errorf("counters: %d lock expiries, %d session releases; want 2, 1", c.LockExpired, c.SessionReleased)
	}
}

func TestSessionStateAndListing(t *testing.T) {
	b, clk, e := newSessionQueue(t)
	sendSession(t, b, "msg-only", "m")
	st := accept(t, e, "state-only")
	if s, err := st.State(); err != nil || s != nil {
		t.Fatalf("fresh state: %q %v", s, err)
	}
	before := now(clk)
	clk.Advance(time.Second)
	if err := st.SetState([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	st.Release()
	l := accept(t, e, "state-only")
	if s, _ := l.State(); string(s) != "hello" {
		t.Fatalf("state after release and re-accept: %q", s)
	}

	list := func(after time.Time, skip, top int) []string {
		ids, err := e.ListSessions(after, skip, top)
		if err != nil {
			t.Fatal(err)
		}
		return ids
	}
	if got := list(time.Time{}, 0, 100); !slices.Equal(got, []string{"msg-only", "state-only"}) {
		t.Errorf("default listing %v", got)
	}
	if got := list(before, 0, 100); !slices.Equal(got, []string{"state-only"}) {
		t.Errorf("updated after %v: %v", before, got)
	}
	if got := list(now(clk).Add(time.Hour), 0, 100); len(got) != 0 {
		t.Errorf("updated after the future: %v", got)
	}
	if got := list(time.Time{}, 1, 1); !slices.Equal(got, []string{"state-only"}) {
		t.Errorf("page 2 of 1: %v", got)
	}
	if err := l.SetState([]byte{}); err != nil { // an empty state clears it, as nil does
		t.Fatal(err)
	}
	if s, _ := l.State(); s != nil {
		t.Errorf("state after setting it empty: %q, want nil", s)
	}
	l.Release()
	if got := list(time.Time{}, 0, 100); !slices.Equal(got, []string{"msg-only"}) {
		t.Errorf("after clearing the state: %v", got)
	}
}

// Deferred messages of a session come back by sequence number within that session only.
func TestSessionDeferred(t *testing.T) {
	b, _, e := newSessionQueue(t)
	sendSession(t, b, "a", "a1")
	sendSession(t, b, "b", "b1")
	a := accept(t, e, "a")
	d := a.Receive(1, PeekLock)[0]
	if err := e.Defer(d.LockToken, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := e.ReceiveDeferred([]int64{d.SequenceNumber}, PeekLock); !errors.Is(err, ErrNotAllowed) {
		t.Fatalf("entity-wide receive-deferred on a session queue: %v, want ErrNotAllowed", err)
	}
	bl := accept(t, e, "b")
	if _, err := bl.ReceiveDeferred([]int64{d.SequenceNumber}, PeekLock); !errors.Is(err, ErrMessageNotFound) {
		t.Fatalf("another session's deferred message: %v, want ErrMessageNotFound", err)
	}
	if p := bl.Peek(0, 10); len(p) != 1 || string(p[0].GetData()) != "b1" {
		t.Fatalf("session peek %v", p)
	}
	got, err := a.ReceiveDeferred([]int64{d.SequenceNumber}, PeekLock)
	if err != nil || len(got) != 1 || got[0].LockedUntil != a.LockedUntil() {
		t.Fatalf("receive deferred in the session: %v %v", got, err)
	}
	if err := e.Complete(got[0].LockToken); err != nil {
		t.Fatal(err)
	}
}

// A session subscription dead-letters a topic message without a session id; the dead-letter
// queue of a session entity is received without a session.
func TestSessionSubscriptionAndDLQ(t *testing.T) {
	b := newEventsBroker(t)
	sp := DefaultSubscriptionProperties()
	sp.RequiresSession = true
	if err := b.CreateSubscription("events", "s", sp, nil); err != nil {
		t.Fatal(err)
	}
	if err := b.Send("events", msg("no session"), sessionMsg("x", "with session")); err != nil {
		t.Fatal(err)
	}
	sub := entity(t, b, "events/Subscriptions/s")
	if got := bodiesOf(accept(t, sub, "x").Receive(10, ReceiveAndDelete)); !slices.Equal(got, []string{"with session"}) {
		t.Fatalf("session x received %v", got)
	}
	dl := sub.DeadLetterQueue()
	if dl.RequiresSession() {
		t.Fatal("the dead-letter queue requires sessions")
	}
	d := receiveOne(t, dl, PeekLock)
	if d.Message.ApplicationProperties[PropDeadLetterReason] != ReasonSessionIDIsNull {
		t.Fatalf("dead-letter reason %v", d.Message.ApplicationProperties[PropDeadLetterReason])
	}
}

// newEventsBroker returns a broker with a topic "events" and no subscription.
func newEventsBroker(t *testing.T) *Broker {
	t.Helper()
	b, err := New(nil, &Options{Clock: NewManualClock(t0)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	if err := b.CreateTopic("events", DefaultTopicProperties()); err != nil {
		t.Fatal(err)
	}
	return b
}
