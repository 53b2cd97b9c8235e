package ledger

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/holdfast-dev/holdfast/emulator/broker"
	"github.com/holdfast-dev/holdfast/internal/testenv"
)

const emulatorLock = 2 * time.Second

// sbEnv is an in-process Service Bus emulator with one queue, and SDK clients on it.
type sbEnv struct {
	queue  string
	client *azservicebus.Client
	sender *azservicebus.Sender
	peeker *azservicebus.Receiver // used only to peek
}

func startServiceBus(t *testing.T) *sbEnv {
	t.Helper()
	props := broker.DefaultQueueProperties()
	props.LockDuration, props.MaxDeliveryCount = emulatorLock, 10
	const queue = "orders"
	_, client := testenv.Emulator(t, queue, props, nil)
	sender, err := client.NewSender(queue, nil)
	if err != nil {
		t.Fatal(err)
	}
	peeker, err := client.NewReceiverForQueue(queue, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &sbEnv{queue: queue, client: client, sender: sender, peeker: peeker}
}

// receiver opens a peek-lock receiver; it is closed at cleanup (or earlier by the test).
func (e *sbEnv) receiver(t *testing.T) *azservicebus.Receiver {
	t.Helper()
	r, err := e.client.NewReceiverForQueue(e.queue, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close(context.Background()) })
	return r
}

// sendAndReceive sends n messages and receives them with r.
func (e *sbEnv) sendAndReceive(ctx context.Context, t *testing.T, r *azservicebus.Receiver, n int) []*azservicebus.ReceivedMessage {
	t.Helper()
	for i := range n {
		if err := e.sender.SendMessage(ctx, &azservicebus.Message{Body: []byte{byte('a' + i)}}, nil); err != nil {
			t.Fatal(err)
		}
	}
	var got []*azservicebus.ReceivedMessage
	for len(got) < n {
		msgs, err := r.ReceiveMessages(ctx, n-len(got), nil)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, msgs...)
	}
	return got
}

func crashAt(point crashPoint) func(crashPoint) error {
	return func(p crashPoint) error {
		if p == point {
			return errCrashed
		}
		return nil
	}
}

// TestCrashBeforeDeferLeavesMessageAvailable: the process dies after the ledger write, before DeferMessage.
// The message's lock expires, it is delivered again, and reconciliation removes the stale pending row.
func TestCrashBeforeDeferLeavesMessageAvailable(t *testing.T) {
	ctx, clock := testCtx(t), newTestClock()
	sb := startServiceBus(t)
	l := newTestLedger(t, newTable(t), sb.queue, clock)
	l.crash = crashAt(crashAfterRecord)

	dying := sb.receiver(t)
	msg := sb.sendAndReceive(ctx, t, dying, 1)[0]
	if err := l.Defer(ctx, dying, msg, time.Time{}, "later"); !errors.Is(err, errCrashed) {
		t.Fatalf("Defer = %v, want the simulated crash", err)
	}
	_ = dying.Close(ctx) // the process is gone; its lock runs out on its own

	// Available again: a new receiver gets the same message once the lock expired.
	again := sb.receiver(t)
	redelivered, err := again.ReceiveMessages(ctx, 1, nil)
	if err != nil || len(redelivered) != 1 || *redelivered[0].SequenceNumber != *msg.SequenceNumber {
		t.Fatalf("after the crash: received %v, %v; want message %d again", redelivered, err, *msg.SequenceNumber)
	}

	clock.Advance(emulatorLock + time.Second)
	rep, err := l.Reconcile(ctx, sb.peeker, &ReconcileOptions{LockDuration: emulatorLock})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Removed != 1 || rep.Added != 0 || !rep.Done {
		t.Fatalf("reconcile = %+v, want the stale pending row removed", rep)
	}
	if _, err := l.Get(ctx, *msg.SequenceNumber); !errors.Is(err, ErrNotFound) {
		t.Fatalf("row after reconcile: %v, want ErrNotFound", err)
	}
	if err := again.CompleteMessage(ctx, redelivered[0], nil); err != nil {
		t.Fatal(err)
	}
}

// TestCrashAfterDeferIsMarked: the process dies after DeferMessage, before marking the row. Reconciliation finds
// the deferred message and marks its row; the drain can then receive it by sequence number.
func TestCrashAfterDeferIsMarked(t *testing.T) {
	ctx, clock := testCtx(t), newTestClock()
	sb := startServiceBus(t)
	l := newTestLedger(t, newTable(t), sb.queue, clock)
	l.crash = crashAt(crashAfterDefer)

	r := sb.receiver(t)
	msg := sb.sendAndReceive(ctx, t, r, 1)[0]
	seq := *msg.SequenceNumber
	if err := l.Defer(ctx, r, msg, clock.Now().Add(time.Hour), "later"); !errors.Is(err, errCrashed) {
		t.Fatalf("Defer = %v, want the simulated crash", err)
	}
	if row, err := l.Get(ctx, seq); err != nil || row.State != StatePending {
		t.Fatalf("row before reconcile = %+v, %v; want pending", row, err)
	}

	rep, err := l.Reconcile(ctx, sb.peeker, &ReconcileOptions{LockDuration: emulatorLock})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Marked != 1 || rep.Removed != 0 || rep.Scanned != 1 || !rep.Done {
		t.Fatalf("reconcile = %+v, want the pending row marked", rep)
	}
	if row, err := l.Get(ctx, seq); err != nil || row.State != StateDeferred {
		t.Fatalf("row after reconcile = %+v, %v; want deferred", row, err)
	}

	deferred, err := r.ReceiveDeferredMessages(ctx, []int64{seq}, nil)
	if err != nil || len(deferred) != 1 {
		t.Fatalf("ReceiveDeferredMessages(%d) = %v, %v; want the message", seq, deferred, err)
	}
	if got := deferred[0].ApplicationProperties[PropDeferReason]; got != "later" {
		t.Errorf("deferred message %s = %v, want %q", PropDeferReason, got, "later")
	}
	if err := r.CompleteMessage(ctx, deferred[0], nil); err != nil {
		t.Fatal(err)
	}
}

// TestDeferWithTableDownIsNotDeferred: with the table unreachable, Defer fails, the message is not deferred,
// and after the run abandons it the message is delivered again.
func TestDeferWithTableDownIsNotDeferred(t *testing.T) {
	ctx := testCtx(t)
	sb := startServiceBus(t)
	l, err := New(unavailableClient(t), &Options{Entity: sb.queue})
	if err != nil {
		t.Fatal(err)
	}
	r := sb.receiver(t)
	msg := sb.sendAndReceive(ctx, t, r, 1)[0]
	if err := l.Defer(ctx, r, msg, time.Time{}, "later"); err == nil {
		t.Fatal("Defer with the table down returned nil")
	}
	peeked, err := sb.peeker.PeekMessages(ctx, 10, &azservicebus.PeekMessagesOptions{FromSequenceNumber: msg.SequenceNumber})
	if err != nil || len(peeked) != 1 || peeked[0].State == azservicebus.MessageStateDeferred {
		t.Fatalf("peek = %v, %v; want the message, not deferred", peeked, err)
	}
	if err := r.AbandonMessage(ctx, msg, nil); err != nil {
		t.Fatalf("abandon after the failed defer: %v", err)
	}
	again, err := r.ReceiveMessages(ctx, 1, nil)
	if err != nil || len(again) != 1 || *again[0].SequenceNumber != *msg.SequenceNumber {
		t.Fatalf("after abandon: received %v, %v; want message %d", again, err, *msg.SequenceNumber)
	}
	if err := r.CompleteMessage(ctx, again[0], nil); err != nil {
		t.Fatal(err)
	}
}

// TestReconcileOrphanAndCompletedElsewhere: a message deferred through the SDK behind the ledger's back gets a
// row; the row of a message completed elsewhere is removed.
func TestReconcileOrphanAndCompletedElsewhere(t *testing.T) {
	ctx, clock := testCtx(t), newTestClock()
	sb := startServiceBus(t)
	l := newTestLedger(t, newTable(t), sb.queue, clock)
	r := sb.receiver(t)
	msgs := sb.sendAndReceive(ctx, t, r, 2)
	orphan, indexed := msgs[0], msgs[1]

	if err := r.DeferMessage(ctx, orphan, nil); err != nil {
		t.Fatal(err)
	}
	if err := l.Defer(ctx, r, indexed, time.Time{}, "later"); err != nil {
		t.Fatal(err)
	}
	got, err := r.ReceiveDeferredMessages(ctx, []int64{*indexed.SequenceNumber}, nil)
	if err != nil || len(got) != 1 {
		t.Fatalf("ReceiveDeferredMessages = %v, %v", got, err)
	}
	if err := r.CompleteMessage(ctx, got[0], nil); err != nil { // completed behind the ledger's back
		t.Fatal(err)
	}

	clock.Advance(emulatorLock + time.Second)
	rep, err := l.Reconcile(ctx, sb.peeker, &ReconcileOptions{LockDuration: emulatorLock})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Added != 1 || rep.Removed != 1 || rep.Marked != 0 || !rep.Done {
		t.Fatalf("reconcile = %+v, want 1 added and 1 removed", rep)
	}
	row, err := l.Get(ctx, *orphan.SequenceNumber)
	if err != nil || row.State != StateDeferred || row.Reason != ReasonRecovered || row.MessageID != orphan.MessageID {
		t.Fatalf("orphan row = %+v, %v; want a deferred row with reason %q", row, err, ReasonRecovered)
	}
	if _, err := l.Get(ctx, *indexed.SequenceNumber); !errors.Is(err, ErrNotFound) {
		t.Fatalf("row of the completed message: %v, want ErrNotFound", err)
	}
}
