package broker

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/Azure/go-amqp"
)

func msgWithID(id string) *amqp.Message {
	m := msg(id)
	m.Properties = &amqp.MessageProperties{MessageID: id}
	return m
}

func scheduledMsg(body string, at time.Time) *amqp.Message {
	m := msg(body)
	m.Annotations = amqp.Annotations{AnnotationScheduledTime: at}
	return m
}

func TestDeferCountsADelivery(t *testing.T) {
	tests := []struct {
		name     string
		maxCount int
		wantDLQ  bool
	}{
		{"max 1 dead-letters", 1, true},
		{"max 2 defers", 2, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, _, e := newTestQueue(t, func(p *QueueProperties) { p.MaxDeliveryCount = tt.maxCount })
			sendN(t, b, 1)
			d := receiveOne(t, e, PeekLock)
			if err := e.Defer(d.LockToken, nil); err != nil {
				t.Fatal(err)
			}
			st := e.Stats()
			if got := st.DeadLettered == 1; got != tt.wantDLQ {
				t.Fatalf("dead-lettered %d, deferred %d; want DLQ %v", st.DeadLettered, st.Deferred, tt.wantDLQ)
			}
			if tt.wantDLQ {
				dl := receiveOne(t, e.DeadLetterQueue(), ReceiveAndDelete)
				if dl.Message.ApplicationProperties[PropDeadLetterReason] != ReasonMaxDeliveryCountExceeded {
					t.Errorf("reason %v", dl.Message.ApplicationProperties[PropDeadLetterReason])
				}
				return
			}
			got, err := e.ReceiveDeferred([]int64{d.SequenceNumber}, PeekLock)
			if err != nil || got[0].Message.Header.DeliveryCount != 1 {
				t.Fatalf("ReceiveDeferred: %v, %v; want delivery count 1", got, err)
			}
		})
	}
}

func TestDuplicateDetection(t *testing.T) {
	b, clk, e := newTestQueue(t, func(p *QueueProperties) {
		p.RequiresDuplicateDetection = true
		p.DuplicateDetectionHistoryTimeWindow = 10 * time.Second
	})
	send := func(ms ...*amqp.Message) {
		t.Helper()
		if err := b.Send("orders", ms...); err != nil {
			t.Fatal(err)
		}
	}
	send(msgWithID("a"), msgWithID("a"), msgWithID("b")) // a duplicate inside one batch too
	clk.Advance(9 * time.Second)
	send(msgWithID("a"))     // inside the window: dropped
	send(msg("x"), msg("y")) // no message-id: each gets a fresh one, never a duplicate
	clk.Advance(time.Second)
	send(msgWithID("a")) // the window counts from the first sighting: accepted again
	ds := e.Receive(10, ReceiveAndDelete)
	var ids []any
	for _, d := range ds {
		ids = append(ids, d.Message.Properties.MessageID)
	}
	if len(ds) != 5 || ids[0] != "a" || ids[1] != "b" || ids[4] != "a" {
		t.Fatalf("received ids %v, want a b <x> <y> a", ids)
	}
	if c := e.Stats().Counters; c.Duplicates != 2 || c.Sent != 5 {
		t.Errorf("counters %+v, want 2 duplicates and 5 sent", c)
	}
}

func TestScheduledMessages(t *testing.T) {
	b, clk, e := newTestQueue(t, nil)
	due := t0.Add(30 * time.Second)
	seqs, err := b.Schedule("orders", scheduledMsg("later", due), scheduledMsg("cancel me", due), scheduledMsg("past", t0.Add(-time.Second)))
	if err != nil || len(seqs) != 3 || seqs[0] != 1 || seqs[2] != 3 {
		t.Fatalf("Schedule = %v, %v", seqs, err)
	}
	if d := receiveOne(t, e, ReceiveAndDelete); d.SequenceNumber != 3 {
		t.Fatalf("a past schedule time must be available at once, got seq %d", d.SequenceNumber)
	}
	expectEmpty(t, e)
	p := e.Peek(0, 10)
	if len(p) != 2 || p[0].Annotations[AnnotationMessageState] != int32(MessageStateScheduled) {
		t.Fatalf("peek %v, want 2 scheduled", p)
	}
	if st := e.Stats(); st.Scheduled != 2 || st.Active != 0 {
		t.Errorf("stats %+v", st)
	}
	if err := b.CancelScheduled("orders", 2); err != nil {
		t.Fatal(err)
	}
	if err := b.CancelScheduled("orders", 2); !errors.Is(err, ErrMessageNotFound) {
		t.Errorf("second cancel: %v, want ErrMessageNotFound", err)
	}
	clk.Advance(30*time.Second - time.Millisecond)
	expectEmpty(t, e)
	clk.Advance(time.Millisecond)
	d := receiveOne(t, e, ReceiveAndDelete)
	if d.SequenceNumber != 1 || d.Message.Annotations[AnnotationEnqueuedTime] != due {
		t.Errorf("got seq %d enqueued %v, want 1 at %v", d.SequenceNumber, d.Message.Annotations[AnnotationEnqueuedTime], due)
	}
	if err := b.CancelScheduled("orders", 1); !errors.Is(err, ErrMessageNotFound) {
		t.Errorf("cancel after delivery: %v, want ErrMessageNotFound", err)
	}
	if err := b.Send("orders", &amqp.Message{Annotations: amqp.Annotations{AnnotationScheduledTime: "soon"}}); !errors.Is(err, ErrInvalidMessage) {
		t.Errorf("malformed schedule time: %v, want ErrInvalidMessage", err)
	}
}

func TestTTLExpiry(t *testing.T) {
	withTTL := func(body string, ttl time.Duration) *amqp.Message {
		m := msg(body)
		m.Header = &amqp.MessageHeader{TTL: ttl}
		return m
	}
	tests := []struct {
		name    string
		dlq     bool
		wantDLQ int
	}{
		{"dead-lettered", true, 1},
		{"dropped", false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, clk, e := newTestQueue(t, func(p *QueueProperties) {
				p.DefaultMessageTimeToLive = time.Minute
				p.DeadLetteringOnMessageExpiration = tt.dlq
			})
			if err := b.Send("orders", withTTL("short", 5*time.Second), msg("default")); err != nil {
				t.Fatal(err)
			}
			clk.Advance(5 * time.Second)
			st := e.Stats()
			if st.Active != 1 || st.DeadLettered != tt.wantDLQ || st.Counters.Expired != 1 {
				t.Fatalf("after 5s: %+v", st)
			}
			if tt.dlq {
				d := receiveOne(t, e.DeadLetterQueue(), ReceiveAndDelete)
				if d.SequenceNumber != 1 || d.Message.ApplicationProperties[PropDeadLetterReason] != ReasonTTLExpired {
					t.Errorf("DLQ got seq %d props %v", d.SequenceNumber, d.Message.ApplicationProperties)
				}
			}
			clk.Advance(55 * time.Second)
			expectEmpty(t, e)
		})
	}
}

func TestTTLWaitsForLockAndReceiveDeferred(t *testing.T) {
	b, clk, e := newTestQueue(t, func(p *QueueProperties) {
		p.DefaultMessageTimeToLive = 5 * time.Second
		p.DeadLetteringOnMessageExpiration = true
		p.LockDuration = 8 * time.Second
	})
	sendN(t, b, 2)
	ds := e.Receive(2, PeekLock)
	if err := e.Defer(ds[1].LockToken, nil); err != nil {
		t.Fatal(err)
	}
	clk.Advance(6 * time.Second) // TTL passed; seq 1 still locked
	if _, err := e.RenewLock(ds[0].LockToken); err != nil {
		t.Fatalf("a locked message must outlive its TTL until the lock ends: %v", err)
	}
	if st := e.Stats(); st.DeadLettered != 0 || st.Deferred != 1 {
		t.Fatalf("expired early: %+v", st)
	}
	if err := e.Abandon(ds[0].LockToken, nil); err != nil {
		t.Fatal(err)
	}
	if st := e.Stats(); st.DeadLettered != 1 || st.Deferred != 1 {
		t.Fatalf("after the lock ended: %+v, want seq 1 dead-lettered and seq 2 still deferred", st)
	}
	if _, err := e.ReceiveDeferred([]int64{2}, PeekLock); !errors.Is(err, ErrMessageNotFound) {
		t.Fatalf("receive of an expired deferred message: %v, want ErrMessageNotFound", err)
	}
	if st := e.Stats(); st.DeadLettered != 2 || st.Deferred != 0 {
		t.Errorf("after the receive attempt: %+v", st)
	}
}

func newTestTopic(t *testing.T) (*Broker, *ManualClock) {
	t.Helper()
	clk := NewManualClock(t0)
	b, err := New(nil, &Options{Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	tp := DefaultTopicProperties()
	tp.RequiresDuplicateDetection = true
	if err := b.CreateTopic("events", tp); err != nil {
		t.Fatal(err)
	}
	sp := DefaultSubscriptionProperties()
	corr := func(f CorrelationFilter) []RuleConfig {
		return []RuleConfig{{Name: "r", Properties: RuleProperties{FilterType: FilterCorrelation, CorrelationFilter: &f}}}
	}
	subs := []struct {
		name  string
		rules []RuleConfig
	}{
		{"all", nil},
		{"sql", []RuleConfig{{Name: "t", Properties: RuleProperties{FilterType: FilterSQL, SQLFilter: &SQLExpression{"1 = 1"}}}}},
		{"red", corr(CorrelationFilter{Label: "red"})},
		{"props", corr(CorrelationFilter{Properties: map[string]any{"n": int64(3), "kind": "x"}, CorrelationID: "c1"})},
	}
	for _, s := range subs {
		if err := b.CreateSubscription("events", s.name, sp, s.rules); err != nil {
			t.Fatal(err)
		}
	}
	return b, clk
}

func TestTopicFanOutAndFilters(t *testing.T) {
	b, _ := newTestTopic(t)
	red := msgWithID("red")
	subject := "red"
	red.Properties.Subject = &subject
	match := msgWithID("props")
	match.Properties.CorrelationID = "c1"
	match.ApplicationProperties = map[string]any{"n": int32(3), "kind": "x"}
	wrongType := msgWithID("wrong")
	wrongType.Properties.CorrelationID = "c1"
	wrongType.ApplicationProperties = map[string]any{"n": "3", "kind": "x"}
	if err := b.Send("events", red, match, wrongType, msgWithID("red")); err != nil { // last: duplicate
		t.Fatal(err)
	}
	want := map[string][]int64{"all": {1, 2, 3}, "sql": {1, 2, 3}, "red": {1}, "props": {2}}
	for sub, seqs := range want {
		e, err := b.Entity("EVENTS/subscriptions/" + sub)
		if err != nil {
			t.Fatal(err)
		}
		ds := e.Receive(10, ReceiveAndDelete)
		var got []int64
		for _, d := range ds {
			got = append(got, d.SequenceNumber)
		}
		if !slices.Equal(got, seqs) {
			t.Errorf("%s received %v, want %v", sub, got, seqs)
		}
	}
	if err := b.Send("events/Subscriptions/all", msg("x")); !errors.Is(err, ErrSendToSubqueue) {
		t.Errorf("send to a subscription: %v, want ErrSendToSubqueue", err)
	}
	if _, err := b.Entity("events/Subscriptions/nope"); !errors.Is(err, ErrEntityNotFound) {
		t.Errorf("unknown subscription: %v", err)
	}
	dlq, err := b.Entity("events/Subscriptions/red/$DeadLetterQueue")
	if err != nil || dlq.Kind() != KindDeadLetterQueue {
		t.Fatalf("subscription DLQ: %v, %v", dlq, err)
	}
	st := b.Stats()
	var topicStats *EntityStats
	for i := range st.Entities {
		if st.Entities[i].Path == "events" {
			topicStats = &st.Entities[i]
		}
	}
	if topicStats == nil || topicStats.Kind != KindTopic || topicStats.Counters.Sent != 3 || topicStats.Counters.Duplicates != 1 {
		t.Fatalf("topic stats %+v", topicStats)
	}
	if err := b.DeleteSubscription("events", "red"); err != nil {
		t.Fatal(err)
	}
	if b.Known("events/Subscriptions/red") || !b.Known("events/Subscriptions/all/$management") {
		t.Error("Known after deleting a subscription")
	}
	if err := b.CreateQueue("Events", DefaultQueueProperties()); !errors.Is(err, ErrEntityExists) {
		t.Errorf("queue named like a topic: %v, want ErrEntityExists", err)
	}
	if err := b.CreateQueue("odd/Subscriptions/name", DefaultQueueProperties()); err != nil {
		t.Fatal(err)
	}
	if q, err := b.Entity("odd/Subscriptions/name/$DeadLetterQueue"); err != nil || q.Kind() != KindDeadLetterQueue {
		t.Errorf("a queue whose name looks like a subscription path: %v, %v", q, err)
	}
	if err := b.DeleteTopic("events"); err != nil {
		t.Fatal(err)
	}
	if b.Known("events") {
		t.Error("deleted topic still known")
	}
}

func TestTopicScheduleAndCancel(t *testing.T) {
	b, clk := newTestTopic(t)
	due := t0.Add(time.Minute)
	seqs, err := b.Schedule("events", scheduledMsg("a", due), scheduledMsg("b", due))
	if err != nil || len(seqs) != 2 {
		t.Fatalf("Schedule = %v, %v", seqs, err)
	}
	if err := b.CancelScheduled("events", seqs[1]); err != nil {
		t.Fatal(err)
	}
	if err := b.CancelScheduled("events", 99); !errors.Is(err, ErrMessageNotFound) {
		t.Errorf("cancel unknown: %v", err)
	}
	all, _ := b.Entity("events/Subscriptions/all")
	if p := all.Peek(0, 10); len(p) != 1 || p[0].Annotations[AnnotationMessageState] != int32(MessageStateScheduled) {
		t.Fatalf("peek %v, want one scheduled", p)
	}
	clk.Advance(time.Minute)
	if d := receiveOne(t, all, ReceiveAndDelete); d.SequenceNumber != seqs[0] {
		t.Errorf("got seq %d, want %d", d.SequenceNumber, seqs[0])
	}
}

func TestBrokerStatsAndManagementCalls(t *testing.T) {
	b, _, e := newTestQueue(t, nil)
	sendN(t, b, 3)
	ds := e.Receive(2, PeekLock)
	if err := e.DeadLetter(ds[0].LockToken, "r", "d", nil); err != nil {
		t.Fatal(err)
	}
	b.NoteManagementCall()
	st := b.Stats()
	if st.ManagementCalls != 1 || len(st.Entities) != 2 {
		t.Fatalf("stats %+v", st)
	}
	q, dlq := st.Entities[0], st.Entities[1]
	if q.Path != "orders" || q.Active != 2 || q.Locked != 1 || q.DeadLettered != 1 || q.Counters.Received != 2 || q.Counters.Sent != 3 {
		t.Errorf("queue stats %+v", q)
	}
	if dlq.Path != "orders/$DeadLetterQueue" || dlq.Active != 1 || dlq.Kind != KindDeadLetterQueue {
		t.Errorf("DLQ stats %+v", dlq)
	}
}
