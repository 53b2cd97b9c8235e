package broker

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/Azure/go-amqp"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// newTestQueue returns a broker with one queue "orders" driven by a ManualClock.
func newTestQueue(t testing.TB, mutate func(*QueueProperties)) (*Broker, *ManualClock, *Entity) {
	t.Helper()
	clk := NewManualClock(t0)
	b, err := New(nil, &Options{Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	p := DefaultQueueProperties()
	p.LockDuration = 10 * time.Second
	p.MaxDeliveryCount = 3
	if mutate != nil {
		mutate(&p)
	}
	if err := b.CreateQueue("orders", p); err != nil {
		t.Fatal(err)
	}
	e, err := b.Entity("orders")
	if err != nil {
		t.Fatal(err)
	}
	return b, clk, e
}

func msg(body string) *amqp.Message { return amqp.NewMessage([]byte(body)) }

func sendN(t testing.TB, b *Broker, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		if err := b.Send("orders", msg(fmt.Sprintf("m%d", i+1))); err != nil {
			t.Fatal(err)
		}
	}
}

func receiveOne(t *testing.T, e *Entity, mode ReceiveMode) Delivery {
	t.Helper()
	ds := e.Receive(1, mode)
	if len(ds) != 1 {
		t.Fatalf("Receive on %s: got %d deliveries, want 1", e.Path(), len(ds))
	}
	return ds[0]
}

func expectEmpty(t *testing.T, e *Entity) {
	t.Helper()
	if ds := e.Receive(10, PeekLock); len(ds) != 0 {
		t.Fatalf("Receive on %s: got %d deliveries (seq %d), want none", e.Path(), len(ds), ds[0].SequenceNumber)
	}
}

func TestSendAssignsSystemProperties(t *testing.T) {
	b, clk, e := newTestQueue(t, nil)
	clk.Advance(1500 * time.Microsecond) // enqueued time must come out at ms precision
	withID := msg("b")
	withID.Properties = &amqp.MessageProperties{MessageID: "mine"}
	if err := b.Send("orders", msg("a"), withID, msg("c")); err != nil {
		t.Fatal(err)
	}
	ds := e.Receive(10, ReceiveAndDelete)
	if len(ds) != 3 {
		t.Fatalf("got %d deliveries, want 3", len(ds))
	}
	wantTime := t0.Add(time.Millisecond)
	for i, d := range ds {
		m := d.Message
		if got := m.Annotations[AnnotationSequenceNumber]; got != int64(i+1) || d.SequenceNumber != int64(i+1) {
			t.Errorf("message %d: sequence number %v (%d), want %d", i, got, d.SequenceNumber, i+1)
		}
		if got, _ := m.Annotations[AnnotationEnqueuedTime].(time.Time); !got.Equal(wantTime) || got.Location() != time.UTC {
			t.Errorf("message %d: enqueued time %v, want %v UTC", i, got, wantTime)
		}
		id, ok := m.Properties.MessageID.(string)
		if !ok || id == "" {
			t.Errorf("message %d: message-id %#v, want a string", i, m.Properties.MessageID)
		}
		if i == 1 && id != "mine" {
			t.Errorf("message-id %q, want the sender's %q", id, "mine")
		}
		if _, ok := m.Annotations[AnnotationLockedUntil]; ok {
			t.Errorf("message %d: ReceiveAndDelete delivery has x-opt-locked-until", i)
		}
		if d.LockToken != (amqp.UUID{}) {
			t.Errorf("message %d: ReceiveAndDelete delivery has a lock token", i)
		}
	}
	if ds[0].Message.Properties.MessageID == ds[2].Message.Properties.MessageID {
		t.Error("assigned message-ids are not unique")
	}
	expectEmpty(t, e)
}

func TestSendRejectsBadInput(t *testing.T) {
	b, _, e := newTestQueue(t, nil)
	err := b.Send("orders", msg("ok"), nil)
	if !errors.Is(err, ErrInvalidMessage) {
		t.Fatalf("Send with a nil message: %v, want ErrInvalidMessage", err)
	}
	expectEmpty(t, e) // all or nothing: the good message was not enqueued either
	if err := b.Send("orders/$DeadLetterQueue", msg("x")); !errors.Is(err, ErrSendToSubqueue) {
		t.Errorf("Send to DLQ: %v, want ErrSendToSubqueue", err)
	}
	if err := b.Send("nope", msg("x")); !errors.Is(err, ErrEntityNotFound) {
		t.Errorf("Send to unknown queue: %v, want ErrEntityNotFound", err)
	}
}

func TestPeekLockDelivery(t *testing.T) {
	b, _, e := newTestQueue(t, nil)
	sendN(t, b, 3)
	ds := e.Receive(2, PeekLock)
	if len(ds) != 2 || ds[0].SequenceNumber != 1 || ds[1].SequenceNumber != 2 {
		t.Fatalf("got %+v, want sequence numbers 1 and 2", ds)
	}
	d := ds[0]
	if d.LockToken[6]>>4 != 4 || d.LockToken[8]&0xc0 != 0x80 {
		t.Errorf("lock token %s is not a v4 UUID", d.LockToken)
	}
	if ds[0].LockToken == ds[1].LockToken {
		t.Error("two deliveries share a lock token")
	}
	if want := t0.Add(10 * time.Second); !d.LockedUntil.Equal(want) || d.Message.Annotations[AnnotationLockedUntil] != want {
		t.Errorf("locked until %v / %v, want %v", d.LockedUntil, d.Message.Annotations[AnnotationLockedUntil], want)
	}
	if got := d.Message.DeliveryAnnotations[AnnotationLockToken]; got != d.LockToken {
		t.Errorf("x-opt-lock-token %v, want %v", got, d.LockToken)
	}
	if d.Message.Header == nil || d.Message.Header.DeliveryCount != 0 {
		t.Errorf("header %+v, want delivery count 0", d.Message.Header)
	}
	if _, ok := d.Message.Annotations[AnnotationMessageState]; ok {
		t.Error("active message carries x-opt-message-state")
	}
	if string(d.Message.GetData()) != "m1" {
		t.Errorf("body %q, want m1", d.Message.GetData())
	}
	// The copy is the caller's: mutating it changes nothing in the broker.
	d.Message.Data[0][0] = 'X'
	d.Message.ApplicationProperties = map[string]any{"x": 1}
	if got := e.Peek(1, 1)[0]; string(got.GetData()) != "m1" || got.ApplicationProperties["x"] != nil {
		t.Errorf("stored message changed through a delivery copy: %q %v", got.GetData(), got.ApplicationProperties)
	}
	rest := e.Receive(10, PeekLock)
	if len(rest) != 1 || rest[0].SequenceNumber != 3 {
		t.Fatalf("locked messages were delivered again: %+v", rest)
	}
}

// TestSettlementTransitions covers what each outcome does to a locked active message.
func TestSettlementTransitions(t *testing.T) {
	tests := []struct {
		name          string
		settle        func(e *Entity, clk *ManualClock, tok amqp.UUID) error
		wantAvailable bool   // receivable again from the queue
		wantCount     uint32 // header delivery count on redelivery
		wantDeferred  bool
		wantDLQ       string // reason in the DLQ, "" ⇒ not dead-lettered
		wantProps     map[string]any
	}{
		{name: "complete", settle: func(e *Entity, _ *ManualClock, tok amqp.UUID) error { return e.Complete(tok) }},
		{name: "abandon", settle: func(e *Entity, _ *ManualClock, tok amqp.UUID) error { return e.Abandon(tok, nil) },
			wantAvailable: true, wantCount: 1},
		{name: "abandon with properties", settle: func(e *Entity, _ *ManualClock, tok amqp.UUID) error {
			return e.Abandon(tok, map[string]any{"hello": "world", "n": int64(7)})
		}, wantAvailable: true, wantCount: 1, wantProps: map[string]any{"hello": "world", "n": int64(7)}},
		{name: "release", settle: func(e *Entity, _ *ManualClock, tok amqp.UUID) error { return e.Release(tok) },
			wantAvailable: true, wantCount: 0},
		{name: "lock expiry", settle: func(_ *Entity, clk *ManualClock, _ amqp.UUID) error { clk.Advance(10 * time.Second); return nil },
			wantAvailable: true, wantCount: 1},
		{name: "defer", settle: func(e *Entity, _ *ManualClock, tok amqp.UUID) error {
			return e.Defer(tok, map[string]any{"hello": "world"})
		},
			wantDeferred: true, wantProps: map[string]any{"hello": "world"}},
		{name: "dead-letter", settle: func(e *Entity, _ *ManualClock, tok amqp.UUID) error {
			return e.DeadLetter(tok, "why", "because", map[string]any{"extra": true})
		}, wantDLQ: "why", wantProps: map[string]any{"extra": true, PropDeadLetterErrorDescription: "because"}},
		// The count survives the move (TestMessageSettlementUsingReceiver in the SDK's live tests).
		{name: "abandon then dead-letter", settle: func(e *Entity, _ *ManualClock, tok amqp.UUID) error {
			if err := e.Abandon(tok, nil); err != nil {
				return err
			}
			return e.DeadLetter(e.Receive(1, PeekLock)[0].LockToken, "why", "", nil)
		}, wantDLQ: "why", wantCount: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, clk, e := newTestQueue(t, nil)
			sendN(t, b, 1)
			d := receiveOne(t, e, PeekLock)
			if err := tt.settle(e, clk, d.LockToken); err != nil {
				t.Fatalf("settle: %v", err)
			}
			// Whatever happened, the lock is gone.
			if err := e.Complete(d.LockToken); !errors.Is(err, ErrLockLost) {
				t.Errorf("second settlement: %v, want ErrLockLost", err)
			}
			var got *amqp.Message
			if tt.wantAvailable {
				r := receiveOne(t, e, PeekLock)
				if r.Message.Header.DeliveryCount != tt.wantCount {
					t.Errorf("delivery count %d, want %d", r.Message.Header.DeliveryCount, tt.wantCount)
				}
				got = r.Message
			} else {
				expectEmpty(t, e)
			}
			peeked := e.Peek(0, 10)
			if tt.wantDeferred {
				if len(peeked) != 1 || peeked[0].Annotations[AnnotationMessageState] != int32(MessageStateDeferred) {
					t.Fatalf("peek after defer: %v, want one message in state 1", peeked)
				}
				got = peeked[0]
			}
			dlq := e.DeadLetterQueue()
			dl := dlq.Receive(10, PeekLock)
			if tt.wantDLQ != "" {
				if len(dl) != 1 {
					t.Fatalf("DLQ holds %d messages, want 1", len(dl))
				}
				got = dl[0].Message
				if got.ApplicationProperties[PropDeadLetterReason] != tt.wantDLQ {
					t.Errorf("DeadLetterReason %v, want %q", got.ApplicationProperties[PropDeadLetterReason], tt.wantDLQ)
				}
				if got.Header.DeliveryCount != tt.wantCount {
					t.Errorf("DLQ delivery count %d, want %d", got.Header.DeliveryCount, tt.wantCount)
				}
				if dl[0].SequenceNumber != d.SequenceNumber {
					t.Errorf("DLQ sequence number %d, want the original %d", dl[0].SequenceNumber, d.SequenceNumber)
				}
				if got.Annotations[AnnotationDeadLetterSource] != "orders" {
					t.Errorf("x-opt-deadletter-source %v, want orders", got.Annotations[AnnotationDeadLetterSource])
				}
			} else if len(dl) != 0 {
				t.Fatalf("DLQ holds %d messages, want none", len(dl))
			}
			if !tt.wantAvailable && !tt.wantDeferred && tt.wantDLQ == "" && len(peeked) != 0 {
				t.Fatalf("completed message still present: %v", peeked)
			}
			for k, v := range tt.wantProps {
				if got == nil || got.ApplicationProperties[k] != v {
					t.Errorf("application property %q = %v, want %v", k, got.ApplicationProperties[k], v)
				}
			}
		})
	}
}

func TestMaxDeliveryCountDeadLetters(t *testing.T) {
	for _, how := range []string{"abandon", "expiry"} {
		t.Run(how, func(t *testing.T) {
			b, clk, e := newTestQueue(t, nil) // MaxDeliveryCount 3
			sendN(t, b, 1)
			for i := 0; i < 3; i++ {
				d := receiveOne(t, e, PeekLock)
				if d.Message.Header.DeliveryCount != uint32(i) {
					t.Fatalf("delivery %d: count %d, want %d", i+1, d.Message.Header.DeliveryCount, i)
				}
				if how == "abandon" {
					if err := e.Abandon(d.LockToken, nil); err != nil {
						t.Fatal(err)
					}
				} else {
					clk.Advance(e.LockDuration())
				}
			}
			expectEmpty(t, e)
			d := receiveOne(t, e.DeadLetterQueue(), PeekLock)
			props := d.Message.ApplicationProperties
			if props[PropDeadLetterReason] != ReasonMaxDeliveryCountExceeded {
				t.Errorf("reason %v, want %s", props[PropDeadLetterReason], ReasonMaxDeliveryCountExceeded)
			}
			if desc, _ := props[PropDeadLetterErrorDescription].(string); desc == "" {
				t.Error("no DeadLetterErrorDescription")
			}
			// The count the message had is kept (the service reports MaxDeliveryCount deliveries).
			if d.Message.Header.DeliveryCount != 3 {
				t.Errorf("DLQ delivery count %d, want 3", d.Message.Header.DeliveryCount)
			}
			if st := e.Stats(); st.DeadLettered != 1 || st.Active != 0 || st.Counters.DeadLettered != 0 {
				t.Errorf("stats %+v, want 1 dead-lettered, 0 active, no explicit dead-letters", st)
			}
			// Abandoning in the DLQ neither moves the message again nor counts a delivery.
			for i := 0; i < 5; i++ {
				if err := e.DeadLetterQueue().Abandon(d.LockToken, nil); err != nil {
					t.Fatal(err)
				}
				d = receiveOne(t, e.DeadLetterQueue(), PeekLock)
				if d.Message.Header.DeliveryCount != 3 {
					t.Fatalf("DLQ delivery count after %d abandons: %d, want 3", i+1, d.Message.Header.DeliveryCount)
				}
			}
			// A message of a DLQ cannot be dead-lettered; it stays locked.
			if err := e.DeadLetterQueue().DeadLetter(d.LockToken, "again", "", nil); !errors.Is(err, ErrNotAllowed) {
				t.Fatalf("dead-letter from the DLQ: %v, want ErrNotAllowed", err)
			}
			if err := e.DeadLetterQueue().Complete(d.LockToken); err != nil {
				t.Fatalf("complete after the refused dead-letter: %v", err)
			}
		})
	}
}

func TestDeferredLifecycle(t *testing.T) {
	b, clk, e := newTestQueue(t, nil)
	sendN(t, b, 3)
	ds := e.Receive(3, PeekLock)
	for _, d := range ds[:2] {
		if err := e.Defer(d.LockToken, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.Release(ds[2].LockToken); err != nil {
		t.Fatal(err)
	}
	// Only the released message is receivable.
	if d := receiveOne(t, e, ReceiveAndDelete); d.SequenceNumber != 3 {
		t.Fatalf("received %d, want 3", d.SequenceNumber)
	}
	expectEmpty(t, e)

	// A number that is not deferred fails the whole call and changes nothing.
	_, err := e.ReceiveDeferred([]int64{1, 3, 99}, PeekLock)
	if !errors.Is(err, ErrMessageNotFound) {
		t.Fatalf("ReceiveDeferred with missing numbers: %v, want ErrMessageNotFound", err)
	}
	got, err := e.ReceiveDeferred([]int64{2, 1, 2}, PeekLock)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].SequenceNumber != 2 || got[1].SequenceNumber != 1 {
		t.Fatalf("ReceiveDeferred returned %+v, want 2 then 1", got)
	}
	m := got[0].Message
	if m.Annotations[AnnotationMessageState] != int32(MessageStateDeferred) || m.DeliveryAnnotations[AnnotationLockToken] != got[0].LockToken ||
		m.Annotations[AnnotationLockedUntil] == nil {
		t.Errorf("deferred delivery annotations %v / %v", m.Annotations, m.DeliveryAnnotations)
	}
	// Locked deferred messages cannot be received again.
	if _, err := e.ReceiveDeferred([]int64{1}, PeekLock); !errors.Is(err, ErrMessageNotFound) {
		t.Errorf("ReceiveDeferred of a locked message: %v, want ErrMessageNotFound", err)
	}
	// Abandon keeps it deferred and counts a delivery; so does lock expiry (each on top of the
	// delivery that ended in the defer).
	if err := e.Abandon(got[0].LockToken, map[string]any{"k": "v"}); err != nil {
		t.Fatal(err)
	}
	clk.Advance(e.LockDuration()) // expires seq 1's lock
	expectEmpty(t, e)
	again, err := e.ReceiveDeferred([]int64{1, 2}, PeekLock)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range again {
		if d.Message.Header.DeliveryCount != 2 {
			t.Errorf("seq %d: delivery count %d, want 2", d.SequenceNumber, d.Message.Header.DeliveryCount)
		}
	}
	if again[1].Message.ApplicationProperties["k"] != "v" {
		t.Errorf("abandon properties lost: %v", again[1].Message.ApplicationProperties)
	}
	if err := e.Complete(again[0].LockToken); err != nil {
		t.Fatal(err)
	}
	if err := e.Release(again[1].LockToken); err != nil {
		t.Fatal(err)
	}
	if _, err := e.ReceiveDeferred([]int64{1}, PeekLock); !errors.Is(err, ErrMessageNotFound) {
		t.Errorf("ReceiveDeferred of a completed message: %v, want ErrMessageNotFound", err)
	}
	// ReceiveAndDelete removes it.
	rd, err := e.ReceiveDeferred([]int64{2}, ReceiveAndDelete)
	if err != nil || len(rd) != 1 || rd[0].LockToken != (amqp.UUID{}) {
		t.Fatalf("ReceiveDeferred RAD: %+v, %v", rd, err)
	}
	if p := e.Peek(0, 10); len(p) != 0 {
		t.Errorf("entity not empty after deleting the last deferred message: %d left", len(p))
	}
	st := e.Stats()
	if st.Counters.Deferred != 2 || st.Counters.Abandoned != 1 || st.Counters.LockExpired != 1 || st.Counters.Completed != 1 {
		t.Errorf("counters %+v", st.Counters)
	}
}

func TestRenewLock(t *testing.T) {
	b, clk, e := newTestQueue(t, func(p *QueueProperties) { p.DefaultMessageTimeToLive = MaxDuration }) // no expiry timer
	sendN(t, b, 2)
	ds := e.Receive(2, PeekLock)
	clk.Advance(8 * time.Second)
	until, err := e.RenewLock(ds[0].LockToken)
	if err != nil {
		t.Fatal(err)
	}
	if want := t0.Add(18 * time.Second); !until.Equal(want) {
		t.Errorf("renewed until %v, want %v", until, want)
	}
	clk.Advance(5 * time.Second) // t0+13s: the first lock lives, the second expired at t0+10s
	if _, err := e.RenewLock(ds[1].LockToken); !errors.Is(err, ErrLockLost) {
		t.Errorf("renew after expiry: %v, want ErrLockLost", err)
	}
	if err := e.Complete(ds[0].LockToken); err != nil {
		t.Errorf("complete within the renewed lock: %v", err)
	}
	if _, err := e.RenewLock(ds[0].LockToken); !errors.Is(err, ErrLockLost) {
		t.Errorf("renew after complete: %v, want ErrLockLost", err)
	}
	if _, err := e.RenewLock(amqp.UUID{1}); !errors.Is(err, ErrLockLost) {
		t.Errorf("renew of an unknown token: %v, want ErrLockLost", err)
	}
	if n := clk.Pending(); n != 0 {
		t.Errorf("%d lock timers left", n)
	}
}

// stillClock never fires timers (they stay pending until stopped): settlement must still
// notice a passed deadline, as a lagging real timer would require.
type stillClock struct{ now time.Time }

func (c *stillClock) Now() time.Time                        { return c.now }
func (c *stillClock) AfterFunc(time.Duration, func()) Timer { return pendingTimer{} }

type pendingTimer struct{}

func (pendingTimer) Stop() bool { return true }

func TestLockDeadlineCheckedWithoutTimer(t *testing.T) {
	clk := &stillClock{now: t0}
	b, err := New(nil, &Options{Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	p := DefaultQueueProperties()
	if err := b.CreateQueue("q", p); err != nil {
		t.Fatal(err)
	}
	e, _ := b.Entity("q")
	if err := b.Send("q", msg("x")); err != nil {
		t.Fatal(err)
	}
	d := e.Receive(1, PeekLock)[0]
	clk.now = d.LockedUntil
	if err := e.Complete(d.LockToken); !errors.Is(err, ErrLockLost) {
		t.Fatalf("complete at the deadline: %v, want ErrLockLost", err)
	}
	if r := e.Receive(1, PeekLock); len(r) != 1 || r[0].Message.Header.DeliveryCount != 1 {
		t.Fatalf("expired message not redelivered with count 1: %+v", r)
	}
}

func TestConcurrentReceiversNeverShareMessages(t *testing.T) {
	b, _, e := newTestQueue(t, nil)
	const n, workers = 2000, 8
	var wg sync.WaitGroup
	done := make(chan struct{}) // closed once every message was sent
	seen := make([][]int64, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for {
				avail := e.Available() // taken before Receive so no wake-up is missed
				ds := e.Receive(3, PeekLock)
				if len(ds) == 0 {
					select {
					case <-avail:
						continue
					case <-done:
						if ds = e.Receive(3, PeekLock); len(ds) == 0 {
							return // all sent, none left: locks never expire on the manual clock
						}
					}
				}
				for _, d := range ds {
					seen[w] = append(seen[w], d.SequenceNumber)
					if err := e.Complete(d.LockToken); err != nil {
						t.Error(err)
					}
				}
			}
		}(w)
	}
	for i := 0; i < n; i++ {
		if err := b.Send("orders", msg("x")); err != nil {
			t.Fatal(err)
		}
	}
	close(done)
	wg.Wait()
	got := map[int64]int{}
	for _, s := range seen {
		for _, q := range s {
			got[q]++
		}
	}
	if len(got) != n {
		t.Fatalf("received %d distinct messages, want %d", len(got), n)
	}
	for q, c := range got {
		if c != 1 {
			t.Fatalf("sequence number %d delivered %d times", q, c)
		}
	}
}

func TestAvailableWakeups(t *testing.T) {
	b, clk, e := newTestQueue(t, nil)
	closed := func(c <-chan struct{}) bool {
		select {
		case <-c:
			return true
		default:
			return false
		}
	}
	ch := e.Available()
	if closed(ch) {
		t.Fatal("Available closed on an empty queue")
	}
	sendN(t, b, 1)
	if !closed(ch) {
		t.Fatal("send did not wake the waiter")
	}
	if !closed(e.Available()) {
		t.Fatal("Available not closed while a message is available")
	}
	d := receiveOne(t, e, PeekLock)
	steps := []struct {
		name string
		do   func()
	}{
		{"abandon", func() { _ = e.Abandon(d.LockToken, nil) }},
		{"release", func() { _ = e.Release(d.LockToken) }},
		{"lock expiry", func() { clk.Advance(e.LockDuration()) }},
	}
	for _, s := range steps {
		ch := e.Available()
		if closed(ch) {
			t.Fatalf("%s: Available closed while the only message is locked", s.name)
		}
		s.do()
		if !closed(ch) {
			t.Fatalf("%s did not wake the waiter", s.name)
		}
		d = receiveOne(t, e, PeekLock)
	}
	ch = e.Available()
	b.Close()
	if !closed(ch) {
		t.Fatal("Close did not wake the waiter")
	}
}

func TestPeekAcrossStates(t *testing.T) {
	b, _, e := newTestQueue(t, nil)
	sendN(t, b, 5)
	ds := e.Receive(3, PeekLock)                          // 1, 2, 3 locked
	if err := e.Defer(ds[1].LockToken, nil); err != nil { // 2 deferred
		t.Fatal(err)
	}
	if err := e.Complete(ds[2].LockToken); err != nil { // 3 gone
		t.Fatal(err)
	}
	tests := []struct {
		from      int64
		max       int
		wantSeqs  []int64
		wantState []any // x-opt-message-state, nil ⇒ absent
	}{
		{0, 10, []int64{1, 2, 4, 5}, []any{nil, int32(1), nil, nil}},
		{2, 2, []int64{2, 4}, []any{int32(1), nil}},
		{5, 10, []int64{5}, []any{nil}},
		{6, 10, nil, nil},
	}
	for _, tt := range tests {
		got := e.Peek(tt.from, tt.max)
		if len(got) != len(tt.wantSeqs) {
			t.Fatalf("Peek(%d, %d): %d messages, want %d", tt.from, tt.max, len(got), len(tt.wantSeqs))
		}
		for i, m := range got {
			if m.Annotations[AnnotationSequenceNumber] != tt.wantSeqs[i] {
				t.Errorf("Peek(%d,%d)[%d]: seq %v, want %d", tt.from, tt.max, i, m.Annotations[AnnotationSequenceNumber], tt.wantSeqs[i])
			}
			if m.Annotations[AnnotationMessageState] != tt.wantState[i] {
				t.Errorf("Peek(%d,%d)[%d]: state %v, want %v", tt.from, tt.max, i, m.Annotations[AnnotationMessageState], tt.wantState[i])
			}
			if m.Properties == nil || m.DeliveryAnnotations[AnnotationLockToken] != nil {
				t.Errorf("Peek(%d,%d)[%d]: properties %v, lock token %v", tt.from, tt.max, i, m.Properties, m.DeliveryAnnotations)
			}
		}
	}
	// Peeking neither locks nor changes anything.
	if got := e.Receive(10, PeekLock); len(got) != 2 || got[0].SequenceNumber != 4 {
		t.Fatalf("after peeking: %+v, want 4 and 5", got)
	}
	if st := e.Stats(); st.Active != 3 || st.Locked != 3 || st.Deferred != 1 || st.Counters.Peeked != 7 {
		t.Errorf("stats %+v", st)
	}
}

func TestEntityPaths(t *testing.T) {
	b, _, _ := newTestQueue(t, nil)
	tests := []struct {
		path      string
		wantPath  string
		wantKnown bool
	}{
		{"orders", "orders", true},
		{"ORDERS", "orders", true},
		{"Orders/$deadletterqueue", "orders/$DeadLetterQueue", true},
		{"orders/$DeadLetterQueue", "orders/$DeadLetterQueue", true},
		{"orders/$management", "", true},
		{"orders/$DeadLetterQueue/$management", "", true},
		{"/orders", "", true},
		{"other", "", false},
		{"orders/other", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		if got := b.Known(tt.path); got != tt.wantKnown {
			t.Errorf("Known(%q) = %v, want %v", tt.path, got, tt.wantKnown)
		}
		if tt.wantPath == "" {
			continue
		}
		e, err := b.Entity(tt.path)
		if err != nil || e.Path() != tt.wantPath {
			t.Errorf("Entity(%q) = %v, %v; want %q", tt.path, e, err, tt.wantPath)
		}
	}
	if _, err := b.Entity("nope"); !errors.Is(err, ErrEntityNotFound) {
		t.Errorf("Entity(nope): %v, want ErrEntityNotFound", err)
	}
}

func TestQueueLifecycle(t *testing.T) {
	b, clk, e := newTestQueue(t, nil)
	if err := b.CreateQueue("ORDERS", DefaultQueueProperties()); !errors.Is(err, ErrEntityExists) {
		t.Errorf("duplicate create: %v, want ErrEntityExists", err)
	}
	bad := DefaultQueueProperties()
	bad.LockDuration = 10 * time.Minute
	if err := b.CreateQueue("other", bad); err == nil {
		t.Error("create with a 10-minute lock succeeded")
	}
	if err := b.CreateQueue("bad$name", DefaultQueueProperties()); err == nil {
		t.Error("create with '$' in the name succeeded")
	}
	sendN(t, b, 2)
	d := receiveOne(t, e, PeekLock)
	if err := b.DeleteQueue("Orders"); err != nil {
		t.Fatal(err)
	}
	if clk.Pending() != 0 {
		t.Errorf("%d timers left after delete", clk.Pending())
	}
	if err := e.Complete(d.LockToken); !errors.Is(err, ErrEntityNotFound) {
		t.Errorf("settle on a deleted queue: %v, want ErrEntityNotFound", err)
	}
	if err := e.DeadLetterQueue().Err(); !errors.Is(err, ErrEntityNotFound) {
		t.Errorf("Err of a deleted queue's DLQ: %v, want ErrEntityNotFound", err)
	}
	if err := b.DeleteQueue("orders"); !errors.Is(err, ErrEntityNotFound) {
		t.Errorf("second delete: %v, want ErrEntityNotFound", err)
	}
	if err := b.CreateQueue("orders", DefaultQueueProperties()); err != nil {
		t.Fatalf("re-create: %v", err)
	}
	b.Close()
	b.Close()
	if err := b.Send("orders", msg("x")); !errors.Is(err, ErrClosed) {
		t.Errorf("send after close: %v, want ErrClosed", err)
	}
	if err := b.CreateQueue("x", DefaultQueueProperties()); !errors.Is(err, ErrClosed) {
		t.Errorf("create after close: %v, want ErrClosed", err)
	}
}

func TestCloseWaitsForTimers(t *testing.T) {
	b, err := New(nil, nil) // real clock
	if err != nil {
		t.Fatal(err)
	}
	p := DefaultQueueProperties()
	p.LockDuration = time.Second
	if err := b.CreateQueue("q", p); err != nil {
		t.Fatal(err)
	}
	e, _ := b.Entity("q")
	for i := 0; i < 50; i++ {
		_ = b.Send("q", msg("x"))
	}
	ds := e.Receive(50, PeekLock)
	if len(ds) != 50 {
		t.Fatalf("got %d", len(ds))
	}
	if err := e.Err(); err != nil {
		t.Fatalf("Err before close: %v", err)
	}
	b.Close()
	if err := e.Err(); !errors.Is(err, ErrClosed) {
		t.Errorf("Err after close: %v, want ErrClosed", err)
	}
	if err := e.Complete(ds[0].LockToken); !errors.Is(err, ErrClosed) {
		t.Errorf("complete after close: %v, want ErrClosed", err)
	}
	if r := e.Receive(1, PeekLock); r != nil {
		t.Errorf("receive after close returned %d deliveries", len(r))
	}
}

func BenchmarkReceiveComplete1KB(b *testing.B) {
	br, err := New(nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer br.Close()
	if err := br.CreateQueue("q", DefaultQueueProperties()); err != nil {
		b.Fatal(err)
	}
	e, _ := br.Entity("q")
	body := make([]byte, 1024)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m := amqp.NewMessage(body)
		m.Properties = &amqp.MessageProperties{MessageID: "id"}
		if err := br.Send("q", m); err != nil {
			b.Fatal(err)
		}
		ds := e.Receive(1, PeekLock)
		if len(ds) != 1 {
			b.Fatal("no delivery")
		}
		if err := e.Complete(ds[0].LockToken); err != nil {
			b.Fatal(err)
		}
	}
}

func TestLockTokenTag(t *testing.T) {
	// The wire reference's example: tag E760DC02 8A31 B133 6995E0875FE227C8 is lock token
	// 02dc60e7-318a-33b1-6995-e0875fe227c8.
	tok := amqp.UUID{0x02, 0xdc, 0x60, 0xe7, 0x31, 0x8a, 0x33, 0xb1, 0x69, 0x95, 0xe0, 0x87, 0x5f, 0xe2, 0x27, 0xc8}
	want := [16]byte{0xe7, 0x60, 0xdc, 0x02, 0x8a, 0x31, 0xb1, 0x33, 0x69, 0x95, 0xe0, 0x87, 0x5f, 0xe2, 0x27, 0xc8}
	if got := LockTokenTag(tok); got != want {
		t.Fatalf("LockTokenTag = %x, want %x", got, want)
	}
	if back, ok := LockTokenFromTag(want[:]); !ok || back != tok {
		t.Errorf("LockTokenFromTag = %s, %v", back, ok)
	}
	if _, ok := LockTokenFromTag([]byte{1, 2}); ok {
		t.Error("LockTokenFromTag accepted 2 bytes")
	}
	b, _, e := newTestQueue(t, nil)
	sendN(t, b, 1)
	d := receiveOne(t, e, PeekLock)
	if back, ok := LockTokenFromTag(d.Message.DeliveryTag); !ok || back != d.LockToken {
		t.Errorf("delivery tag %x does not carry lock token %s", d.Message.DeliveryTag, d.LockToken)
	}
}

// BenchmarkReceiveOnlyComplete1KB times Receive + Complete alone; sends happen with the timer
// stopped, in batches.
func BenchmarkReceiveOnlyComplete1KB(b *testing.B) {
	br, err := New(nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer br.Close()
	if err := br.CreateQueue("q", DefaultQueueProperties()); err != nil {
		b.Fatal(err)
	}
	e, _ := br.Entity("q")
	body := make([]byte, 1024)
	const batch = 1000
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += batch {
		n := min(batch, b.N-i)
		b.StopTimer()
		for j := 0; j < n; j++ {
			m := amqp.NewMessage(body)
			m.Properties = &amqp.MessageProperties{MessageID: "id"}
			if err := br.Send("q", m); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		for j := 0; j < n; j++ {
			ds := e.Receive(1, PeekLock)
			if len(ds) != 1 {
				b.Fatal("no delivery")
			}
			if err := e.Complete(ds[0].LockToken); err != nil {
				b.Fatal(err)
			}
		}
	}
}
