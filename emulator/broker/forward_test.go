package broker

import (
	"errors"
	"testing"
	"time"

	"github.com/Azure/go-amqp"
)

// forwardBroker builds a broker from a Config.json namespace body (queues and topics).
func forwardBroker(t *testing.T, ns string) (*Broker, *ManualClock) {
	t.Helper()
	cfg, err := ParseConfig([]byte(`{"UserConfig": {"Namespaces": [{"Name": "ns", ` + ns + `}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	clk := NewManualClock(t0)
	b, err := New(cfg, &Options{Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b, clk
}

func entity(t *testing.T, b *Broker, path string) *Entity {
	t.Helper()
	e, err := b.Entity(path)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestForwardTo(t *testing.T) {
	b, clk := forwardBroker(t, `"Queues": [
		{"Name": "in", "Properties": {"ForwardTo": "https://sbemulatorns.servicebus.windows.net/out"}},
		{"Name": "out"}],
	  "Topics": [{"Name": "events", "Subscriptions": [{"Name": "fwd", "Properties": {"ForwardTo": "out"}}]}]`)
	in, out := entity(t, b, "in"), entity(t, b, "out")
	if err := b.Send("in", msg("via queue")); err != nil {
		t.Fatal(err)
	}
	later := msg("scheduled")
	later.Annotations = amqp.Annotations{AnnotationScheduledTime: t0.Add(time.Minute)}
	if err := b.Send("in", later); err != nil {
		t.Fatal(err)
	}
	if err := b.Send("events", msg("via subscription")); err != nil {
		t.Fatal(err)
	}
	expectEmpty(t, in)
	got := []string{string(receiveOne(t, out, ReceiveAndDelete).Message.GetData()), string(receiveOne(t, out, ReceiveAndDelete).Message.GetData())}
	if got[0] != "via queue" || got[1] != "via subscription" {
		t.Fatalf("out received %q", got)
	}
	expectEmpty(t, out)
	clk.Advance(time.Minute) // the scheduled message is forwarded once it is due
	if d := receiveOne(t, out, PeekLock); string(d.Message.GetData()) != "scheduled" {
		t.Fatalf("out received %q, want the scheduled message", d.Message.GetData())
	}
	if st := in.Stats(); st.Counters.Forwarded != 2 || st.Active+st.Scheduled != 0 {
		t.Errorf("source stats %+v, want 2 forwarded and nothing left", st)
	}
}

func TestForwardDeadLetteredMessagesTo(t *testing.T) {
	b, clk := forwardBroker(t, `"Queues": [
		{"Name": "work", "Properties": {"ForwardDeadLetteredMessagesTo": "errors", "MaxDeliveryCount": 1, "LockDuration": "PT5S"}},
		{"Name": "errors"}]`)
	work, errs := entity(t, b, "work"), entity(t, b, "errors")
	for _, body := range []string{"explicit", "max deliveries"} {
		if err := b.Send("work", msg(body)); err != nil {
			t.Fatal(err)
		}
	}
	d := receiveOne(t, work, PeekLock)
	if err := work.DeadLetter(d.LockToken, "Bad", "bad body", nil); err != nil {
		t.Fatal(err)
	}
	receiveOne(t, work, PeekLock)
	clk.Advance(5 * time.Second) // lock expiry at MaxDeliveryCount 1 dead-letters it
	for _, want := range []string{"Bad", ReasonMaxDeliveryCountExceeded} {
		m := receiveOne(t, errs, ReceiveAndDelete).Message
		if m.ApplicationProperties[PropDeadLetterReason] != want || m.Annotations[AnnotationDeadLetterSource] != "work" {
			t.Errorf("forwarded dead-letter: reason %v source %v, want %s from work", m.ApplicationProperties[PropDeadLetterReason], m.Annotations[AnnotationDeadLetterSource], want)
		}
	}
	expectEmpty(t, work.DeadLetterQueue())
}

// A message may take MaxForwardHops hops; a cycle ends in the dead-letter queue of the entity
// that would forward it a fifth time.
func TestForwardHopLimit(t *testing.T) {
	b, _ := forwardBroker(t, `"Queues": [
		{"Name": "a", "Properties": {"ForwardTo": "b"}},
		{"Name": "b", "Properties": {"ForwardTo": "a"}}]`)
	if err := b.Send("a", msg("loop")); err != nil {
		t.Fatal(err)
	}
	// a→b, b→a, a→b, b→a: four hops, then a dead-letters it.
	m := receiveOne(t, entity(t, b, "a").DeadLetterQueue(), PeekLock).Message
	if m.ApplicationProperties[PropDeadLetterReason] != ReasonMaxTransferHopCountExceeded {
		t.Fatalf("reason %v, want %s", m.ApplicationProperties[PropDeadLetterReason], ReasonMaxTransferHopCountExceeded)
	}
	expectEmpty(t, entity(t, b, "b").DeadLetterQueue())
	if a, bb := entity(t, b, "a").Stats().Counters.Forwarded, entity(t, b, "b").Stats().Counters.Forwarded; a != 2 || bb != 2 {
		t.Errorf("forwarded a=%d b=%d, want 2 each", a, bb)
	}
}

func TestForwardDestinationChecked(t *testing.T) {
	b, _ := forwardBroker(t, `"Queues": [{"Name": "out"}]`)
	p := DefaultQueueProperties()
	p.ForwardTo = "missing"
	if err := b.CreateQueue("in", p); !errors.Is(err, ErrEntityNotFound) {
		t.Errorf("forward to a missing queue: %v, want ErrEntityNotFound", err)
	}
	p.ForwardTo = "in"
	if err := b.CreateQueue("in", p); err == nil {
		t.Error("a queue forwarding to itself was created")
	}
	if _, err := ParseConfig([]byte(`{"UserConfig": {"Namespaces": [{"Name": "ns", "Queues": [{"Name": "q", "Properties": {"ForwardTo": "sb://host/bad name"}}]}]}}`)); err == nil {
		t.Error("an invalid ForwardTo name was accepted")
	}
	if _, err := New(&Config{UserConfig: UserConfig{Namespaces: []NamespaceConfig{{Name: "ns", Queues: []QueueConfig{{Name: "q", Properties: func() QueueProperties {
		p := DefaultQueueProperties()
		p.ForwardDeadLetteredMessagesTo = "nowhere"
		return p
	}()}}}}}}, nil); err == nil {
		t.Error("a Config.json forwarding to a missing queue was accepted")
	}
	// A destination deleted later: the source dead-letters what it cannot forward.
	p.ForwardTo = "out"
	if err := b.CreateQueue("in", p); err != nil {
		t.Fatal(err)
	}
	if err := b.DeleteQueue("out"); err != nil {
		t.Fatal(err)
	}
	if err := b.Send("in", msg("stranded")); err != nil {
		t.Fatal(err)
	}
	m := receiveOne(t, entity(t, b, "in").DeadLetterQueue(), PeekLock).Message
	if m.ApplicationProperties[PropDeadLetterReason] != ReasonForwardingFailed {
		t.Fatalf("reason %v, want %s", m.ApplicationProperties[PropDeadLetterReason], ReasonForwardingFailed)
	}
}
