package conformance

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
)

func init() {
	register("SendReceiveCompleteRoundTrip", testRoundTrip)
	register("ReceiveAndDelete", testReceiveAndDelete)
	register("MessageIDAssignedWhenMissing", testMessageIDAssigned)
	register("BatchSendKeepsOrder", testBatchSend)
	register("LargeMessage", testLargeMessage)
	register("EntityPathsAreCaseInsensitive", testCaseInsensitive)
	register("UnknownQueueIsNotFound", testUnknownQueue)
	register("CompetingReceiversNeverShareAMessage", testCompetingReceivers)
}

func testRoundTrip(t *testing.T, e *env) {
	q := e.queue(QueueSpec{})
	sent := &azservicebus.Message{
		Body:          []byte(`{"hello":"world"}`),
		MessageID:     ptr("id-1"),
		CorrelationID: ptr("corr-1"),
		Subject:       ptr("subject-1"),
		ContentType:   ptr("application/json"),
		TimeToLive:    ptr(time.Hour),
		ApplicationProperties: map[string]any{
			"str": "s", "int64": int64(42), "int32": int32(7), "bool": true, "float": 1.5,
			"time": time.UnixMilli(1700000000123).UTC(),
		},
	}
	before := time.Now()
	e.send(q, sent)
	r := e.receiver(q, nil)
	got := e.receiveN(r, 1)[0]

	if !bytes.Equal(got.Body, sent.Body) {
		t.Errorf("body = %q, want %q", got.Body, sent.Body)
	}
	if got.MessageID != "id-1" || deref(got.CorrelationID) != "corr-1" || deref(got.Subject) != "subject-1" ||
		deref(got.ContentType) != "application/json" {
		t.Errorf("properties = id %q corr %q subject %q content-type %q", got.MessageID, deref(got.CorrelationID),
			deref(got.Subject), deref(got.ContentType))
	}
	for k, want := range sent.ApplicationProperties {
		gotV := got.ApplicationProperties[k]
		if wt, ok := want.(time.Time); ok {
			if gt, ok := gotV.(time.Time); !ok || !gt.Equal(wt) {
				t.Errorf("application property %q = %v, want %v", k, gotV, want)
			}
			continue
		}
		if gotV != want {
			t.Errorf("application property %q = %#v (%T), want %#v (%T)", k, gotV, gotV, want, want)
		}
	}
	if got.SequenceNumber == nil || *got.SequenceNumber < 1 {
		t.Errorf("sequence number = %v, want ≥ 1", got.SequenceNumber)
	}
	if got.DeliveryCount != 1 {
		t.Errorf("delivery count = %d, want 1", got.DeliveryCount)
	}
	if got.EnqueuedTime == nil || got.EnqueuedTime.Before(before.Add(-time.Minute)) || got.EnqueuedTime.After(time.Now().Add(time.Minute)) {
		t.Errorf("enqueued time = %v, want about %v", got.EnqueuedTime, before)
	}
	if got.LockedUntil == nil || !got.LockedUntil.After(time.Now()) {
		t.Errorf("locked until = %v, want in the future", got.LockedUntil)
	}
	if got.TimeToLive == nil || *got.TimeToLive != time.Hour {
		t.Errorf("time to live = %v, want 1h", got.TimeToLive)
	}
	if got.LockToken == ([16]byte{}) {
		t.Error("lock token is zero")
	}
	if got.State != azservicebus.MessageStateActive {
		t.Errorf("state = %v, want active", got.State)
	}
	e.complete(r, got)
	e.receiveNone(r, time.Second)
	if left := e.peekAll(r); len(left) != 0 {
		t.Fatalf("after complete the queue still holds %d messages", len(left))
	}
}

func testReceiveAndDelete(t *testing.T, e *env) {
	q := e.queue(QueueSpec{})
	e.send(q, &azservicebus.Message{Body: body(1)}, &azservicebus.Message{Body: body(2)})
	r := e.receiver(q, &azservicebus.ReceiverOptions{ReceiveMode: azservicebus.ReceiveModeReceiveAndDelete})
	got := e.receiveN(r, 2)
	if !bytes.Equal(got[0].Body, body(1)) || !bytes.Equal(got[1].Body, body(2)) {
		t.Fatalf("bodies = %q, %q", got[0].Body, got[1].Body)
	}
	if got[0].LockedUntil != nil {
		t.Errorf("ReceiveAndDelete message has LockedUntil %v", got[0].LockedUntil)
	}
	peek := e.receiver(q, nil)
	if left := e.peekAll(peek); len(left) != 0 {
		t.Fatalf("ReceiveAndDelete left %d messages in the queue", len(left))
	}
}

func testMessageIDAssigned(t *testing.T, e *env) {
	q := e.queue(QueueSpec{})
	e.send(q, &azservicebus.Message{Body: body(1)})
	r := e.receiver(q, nil)
	got := e.receiveN(r, 1)[0]
	if got.MessageID == "" {
		t.Fatal("the broker assigned no message id")
	}
	e.complete(r, got)
}

func testBatchSend(t *testing.T, e *env) {
	q := e.queue(QueueSpec{})
	s := e.sender(q)
	batch, err := s.NewMessageBatch(e.ctx(), nil)
	if err != nil {
		t.Fatalf("NewMessageBatch: %v", err)
	}
	const n = 50
	for i := range n {
		if err := batch.AddMessage(&azservicebus.Message{Body: body(i), ApplicationProperties: map[string]any{"i": int64(i)}}, nil); err != nil {
			t.Fatalf("AddMessage %d: %v", i, err)
		}
	}
	if err := s.SendMessageBatch(e.ctx(), batch, nil); err != nil {
		t.Fatalf("SendMessageBatch: %v", err)
	}
	r := e.receiver(q, nil)
	got := e.receiveN(r, n)
	for i, m := range got {
		if !bytes.Equal(m.Body, body(i)) || m.ApplicationProperties["i"] != int64(i) {
			t.Fatalf("message %d: body %q props %v", i, m.Body, m.ApplicationProperties)
		}
		if i > 0 && *m.SequenceNumber <= *got[i-1].SequenceNumber {
			t.Fatalf("sequence numbers not increasing: %d then %d", *got[i-1].SequenceNumber, *m.SequenceNumber)
		}
	}
	e.complete(r, got...)
}

func testLargeMessage(t *testing.T, e *env) {
	q := e.queue(QueueSpec{})
	big := bytes.Repeat([]byte("0123456789abcdef"), 200*1024/16) // 200 KiB: several AMQP frames each way
	e.send(q, &azservicebus.Message{Body: big})
	r := e.receiver(q, nil)
	got := e.receiveN(r, 1)[0]
	if !bytes.Equal(got.Body, big) {
		t.Fatalf("large body corrupted: got %d bytes, want %d", len(got.Body), len(big))
	}
	e.complete(r, got)

	tooBig := make([]byte, 300*1024)
	err := e.sender(q).SendMessage(e.ctx(), &azservicebus.Message{Body: tooBig}, nil)
	if err == nil {
		t.Fatal("sending 300 KiB to a Standard-sized queue succeeded; want message-size-exceeded")
	}
}

func testCaseInsensitive(t *testing.T, e *env) {
	q := e.queue(QueueSpec{})
	upper := []byte(q)
	for i, c := range upper {
		if c >= 'a' && c <= 'z' {
			upper[i] = c - 'a' + 'A'
		}
	}
	e.send(string(upper), &azservicebus.Message{Body: body(1)})
	r := e.receiver(q, nil)
	e.complete(r, e.receiveN(r, 1)...)
}

func testUnknownQueue(t *testing.T, e *env) {
	s, err := e.client.NewSender("holdfast-no-such-queue", nil)
	if err != nil {
		t.Fatalf("NewSender: %v", err)
	}
	defer s.Close(context.Background())
	err = s.SendMessage(e.ctx(), &azservicebus.Message{Body: body(1)}, nil)
	wantCode(t, err, azservicebus.CodeNotFound)
}

func testCompetingReceivers(t *testing.T, e *env) {
	q := e.queue(QueueSpec{})
	const n = 40
	s := e.sender(q)
	batch, err := s.NewMessageBatch(e.ctx(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := batch.AddMessage(&azservicebus.Message{Body: body(i)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SendMessageBatch(e.ctx(), batch, nil); err != nil {
		t.Fatal(err)
	}
	type result struct {
		seqs []int64
		err  error
	}
	results := make(chan result, 4)
	for range 4 {
		r := e.receiver(q, nil)
		go func() {
			var res result
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			for {
				msgs, err := r.ReceiveMessages(ctx, 5, nil)
				for _, m := range msgs {
					res.seqs = append(res.seqs, *m.SequenceNumber)
					if err := r.CompleteMessage(context.Background(), m, nil); err != nil {
						res.err = err
					}
				}
				if err != nil || ctx.Err() != nil {
					results <- res
					return
				}
			}
		}()
	}
	seen := map[int64]bool{}
	for range 4 {
		res := <-results
		if res.err != nil {
			t.Errorf("complete: %v", res.err)
		}
		for _, s := range res.seqs {
			if seen[s] {
				t.Fatalf("sequence number %d delivered to two receivers", s)
			}
			seen[s] = true
		}
	}
	if len(seen) != n {
		t.Fatalf("receivers got %d distinct messages, want %d", len(seen), n)
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
