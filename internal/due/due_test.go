package due_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/holdfast-dev/holdfast/emulator"
	"github.com/holdfast-dev/holdfast/emulator/broker"
	"github.com/holdfast-dev/holdfast/internal/due"
	"github.com/holdfast-dev/holdfast/internal/ledger"
	"github.com/holdfast-dev/holdfast/internal/process"
	"github.com/holdfast-dev/holdfast/internal/testenv"
	"github.com/holdfast-dev/holdfast/processor"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// stack is the emulator with queue "q", a client on it, and a ledger of "q" in its own Azurite table.
type stack struct {
	srv    *emulator.Server
	client *azservicebus.Client
	ledger *ledger.Ledger
}

func startStack(t *testing.T) *stack {
	t.Helper()
	props := broker.DefaultQueueProperties()
	props.LockDuration, props.MaxDeliveryCount = 2*time.Second, 10
	srv, client := testenv.Emulator(t, "q", props, nil)
	tc, err := ledger.NewClientFromConnectionString(testenv.Azurite(t), testenv.TableName(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	l, err := ledger.New(tc, &ledger.Options{Entity: "q"})
	if err != nil {
		t.Fatal(err)
	}
	return &stack{srv: srv, client: client, ledger: l}
}

func (st *stack) receiver(t *testing.T) *azservicebus.Receiver {
	t.Helper()
	r, err := st.client.NewReceiverForQueue("q", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(context.Background()) })
	return r
}

// run performs one run over a fresh receiver with the ledger as Deferrer and due source.
func (st *stack) run(t *testing.T, p processor.Processor) process.Summary {
	t.Helper()
	return st.runOn(t, st.receiver(t), p)
}

// runOn performs one run over rcv with the ledger as Deferrer and due source.
func (st *stack) runOn(t *testing.T, rcv process.Receiver, p processor.Processor) process.Summary {
	t.Helper()
	src, err := due.New(st.ledger, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := process.Run(context.Background(), rcv, p, &process.Options{Budget: 30 * time.Second,
		NoMessageWait: 500 * time.Millisecond, Deferrer: process.DeferrerFunc(func(ctx context.Context, s process.DeferSettler, m *azservicebus.ReceivedMessage, nb time.Time, reason string) error {
			return st.ledger.Defer(ctx, s, m, nb, reason)
		}), Due: src})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("summary %+v", s)
	return s
}

// send sends one message per body to "q", with the body as its message ID.
func (st *stack) send(t *testing.T, bodies ...string) {
	t.Helper()
	sender, err := st.client.NewSender("q", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sender.Close(context.Background())
	for _, body := range bodies {
		id := body
		if err := sender.SendMessage(context.Background(), &azservicebus.Message{MessageID: &id, Body: []byte(body)}, nil); err != nil {
			t.Fatal(err)
		}
	}
}

// rows returns the ledger rows by message ID.
func (st *stack) rows(t *testing.T) map[string]ledger.Row {
	t.Helper()
	rows, _, err := st.ledger.List(context.Background(), 100, "")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]ledger.Row{}
	for _, r := range rows {
		out[r.MessageID] = r
	}
	return out
}

// byBody is a processor that defers every first delivery to now (so it is due at the next run) and then
// does what the body says; it records each delivery's sequence number.
type byBody struct {
	mu   sync.Mutex
	seen map[string][]int64 // guarded by mu; message ID → sequence numbers delivered
}

func (b *byBody) Process(ctx context.Context, m *azservicebus.ReceivedMessage) processor.Outcome {
	b.mu.Lock()
	if b.seen == nil {
		b.seen = map[string][]int64{}
	}
	b.seen[m.MessageID] = append(b.seen[m.MessageID], *m.SequenceNumber)
	b.mu.Unlock()
	if _, again := m.ApplicationProperties[ledger.PropDeferReason]; !again {
		return processor.Defer(time.Now(), "first try")
	}
	switch string(m.Body) {
	case "abandon":
		return processor.Abandon(errors.New("still failing"))
	case "defer-again":
		return processor.Defer(time.Now().Add(time.Hour), "later")
	case "deadletter":
		return processor.DeadLetter("bad", "given up")
	default:
		return processor.Complete()
	}
}

// Due deferred messages come back by themselves at the next run, and the ledger follows how each is settled:
// completed or dead-lettered ⇒ row deleted; deferred again ⇒ row updated; abandoned ⇒ the message stays
// deferred and its row stays, due again; a message gone meanwhile ⇒ its row deleted.
func TestDueMessagesComeBackAndTheLedgerFollows(t *testing.T) {
	ctx := context.Background()
	st := startStack(t)
	st.send(t, "complete", "abandon", "defer-again", "deadletter", "gone")
	p := &byBody{}

	// Run 1 defers all five, due at once.
	if s := st.run(t, p); s.Received != 5 || s.Deferred != 5 || s.Due != 0 {
		t.Fatalf("run 1: %+v", s)
	}
	rows := st.rows(t)
	if len(rows) != 5 {
		t.Fatalf("ledger after run 1: %v", rows)
	}
	// "gone" is completed by someone else: its row is now stale.
	other := st.receiver(t)
	msgs, err := other.ReceiveDeferredMessages(ctx, []int64{rows["gone"].SequenceNumber}, nil)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("receive gone: %v %v", msgs, err)
	}
	if err := other.CompleteMessage(ctx, msgs[0], nil); err != nil {
		t.Fatal(err)
	}

	// Run 2 takes the four due messages back without any drain call.
	s := st.run(t, p)
	if s.Due != 4 || s.Received != 4 || s.Completed != 1 || s.Abandoned != 1 || s.Deferred != 1 || s.DeadLettered != 1 {
		t.Fatalf("run 2: %+v", s)
	}
	for _, id := range []string{"complete", "abandon", "defer-again", "deadletter"} {
		if seqs := p.seen[id]; len(seqs) != 2 || seqs[0] != seqs[1] {
			t.Errorf("%s delivered with sequence numbers %v, want the same one twice", id, seqs)
		}
	}
	after := st.rows(t)
	for _, id := range []string{"complete", "deadletter", "gone"} {
		if r, ok := after[id]; ok {
			t.Errorf("row of %s kept: %+v", id, r)
		}
	}
	if r := after["defer-again"]; r.State != ledger.StateDeferred || r.Reason != "later" || time.Until(r.NotBefore) < 50*time.Minute {
		t.Errorf("row of defer-again: %+v, want deferred until in an hour", r)
	}
	ab := after["abandon"]
	if ab.State != ledger.StateDeferred || !ab.LeaseUntil.IsZero() || !strings.Contains(ab.LastError, "abandoned") || ab.NotBefore.After(time.Now()) {
		t.Errorf("row of abandon: %+v, want released, deferred and still due", ab)
	}
	// The abandoned message is still deferred, one delivery more (as Service Bus does).
	peeked, err := other.PeekMessages(ctx, 1, &azservicebus.PeekMessagesOptions{FromSequenceNumber: &ab.SequenceNumber})
	if err != nil || len(peeked) != 1 || peeked[0].State != azservicebus.MessageStateDeferred || peeked[0].DeliveryCount != 3 {
		t.Fatalf("abandoned message: %+v %v, want deferred with delivery count 3", peeked, err)
	}
	dlq, err := st.client.NewReceiverForQueue("q", &azservicebus.ReceiverOptions{SubQueue: azservicebus.SubQueueDeadLetter})
	if err != nil {
		t.Fatal(err)
	}
	defer dlq.Close(ctx)
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if dl, err := dlq.ReceiveMessages(rctx, 1, nil); err != nil || len(dl) != 1 || dl[0].MessageID != "deadletter" {
		t.Fatalf("dead-letter queue: %v %v", dl, err)
	}

	// Run 3: only the abandoned message is due again; this time it completes and its row goes.
	p2 := processor.Func(func(context.Context, *azservicebus.ReceivedMessage) processor.Outcome { return processor.Complete() })
	if s := st.run(t, p2); s.Due != 1 || s.Completed != 1 || s.Received != 1 {
		t.Fatalf("run 3: %+v", s)
	}
	final := st.rows(t)
	if _, ok := final["abandon"]; ok || len(final) != 1 {
		t.Fatalf("ledger after run 3: %v, want only defer-again", final)
	}
}

// losesLock makes lock renewal fail with CodeLockLost for the message with ID "lost".
type losesLock struct{ *azservicebus.Receiver }

func (l losesLock) RenewMessageLock(ctx context.Context, m *azservicebus.ReceivedMessage, o *azservicebus.RenewMessageLockOptions) error {
	if m.MessageID == "lost" {
		return &azservicebus.Error{Code: azservicebus.CodeLockLost}
	}
	return l.Receiver.RenewMessageLock(ctx, m, o)
}

// A due message that is not settled keeps its row (invariant 3: a row goes only once its message is completed,
// dead-lettered or proven gone): one whose lock is lost while it is processed keeps the run's claim, which
// lapses for a later run; one that exists but cannot be received (another receiver holds its lock) is
// released, due again. Mutations: deleting the row in either case makes this fail.
func TestDueRowsOfUnsettledMessagesStay(t *testing.T) {
	ctx := context.Background()
	st := startStack(t)
	st.send(t, "lost", "held")
	p := &byBody{}
	if s := st.run(t, p); s.Deferred != 2 {
		t.Fatalf("run 1: %+v", s)
	}
	rows := st.rows(t)
	// "held" is locked by another receiver for the whole of the next run.
	other := st.receiver(t)
	held, err := other.ReceiveDeferredMessages(ctx, []int64{rows["held"].SequenceNumber}, nil)
	if err != nil || len(held) != 1 {
		t.Fatalf("receive held: %v %v", held, err)
	}
	renew, renewed := make(chan struct{}), make(chan struct{})
	defer func() { close(renew); <-renewed }()
	go func() { // keep "held" locked while the run tries to take it (the lock is 2 s)
		defer close(renewed)
		tk := time.NewTicker(500 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-renew:
				return
			case <-tk.C:
				_ = other.RenewMessageLock(ctx, held[0], nil)
			}
		}
	}()

	// Run 2 takes "lost" back, and its lock is lost while the processor works on it.
	blocks := processor.Func(func(ctx context.Context, m *azservicebus.ReceivedMessage) processor.Outcome {
		<-ctx.Done()
		return processor.Complete() // must not be believed: the lock is gone
	})
	if s := st.runOn(t, losesLock{st.receiver(t)}, blocks); s.Due != 1 || s.LocksLost != 1 || s.Completed != 0 {
		t.Fatalf("run 2: %+v, want the one due message taken and its lock lost", s)
	}
	after := st.rows(t)
	if r, ok := after["lost"]; !ok || r.State != ledger.StateProcessing || !r.LeaseUntil.After(time.Now()) {
		t.Errorf("row of the message whose lock was lost: %+v (present %v), want it kept under the run's claim", r, ok)
	}
	if r, ok := after["held"]; !ok || r.State != ledger.StateDeferred || !r.LeaseUntil.IsZero() || r.LastError == "" {
		t.Errorf("row of the message another receiver holds: %+v (present %v), want it released with the reason", r, ok)
	}
}
