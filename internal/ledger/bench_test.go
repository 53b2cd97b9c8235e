package ledger

import (
	"context"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/holdfast-dev/holdfast/internal/testenv"
)

func benchLedger(b *testing.B) *Ledger {
	b.Helper()
	client, err := NewClientFromConnectionString(testenv.Azurite(b), testenv.TableName(b), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _, _ = client.Delete(context.Background(), nil) })
	l, err := New(client, &Options{Entity: "orders"})
	if err != nil {
		b.Fatal(err)
	}
	if err := l.EnsureTable(context.Background()); err != nil {
		b.Fatal(err)
	}
	return l
}

// BenchmarkDefer measures the ledger's share of a defer: the pending write and the conditional mark.
func BenchmarkDefer(b *testing.B) {
	l := benchLedger(b)
	s := &recordingSettler{}
	ctx := context.Background()
	seq := int64(0)
	for b.Loop() {
		seq++
		if err := l.Defer(ctx, s, fakeMessage(seq, azservicebus.MessageStateActive, time.Time{}), time.Time{}, "bench"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReconcileRecover250 measures one reconcile page that recovers 250 orphaned deferred messages (three
// table transactions) plus the final empty peek.
func BenchmarkReconcileRecover250(b *testing.B) {
	ctx := context.Background()
	var msgs []*azservicebus.ReceivedMessage
	for seq := int64(1); seq <= MaxPeek; seq++ {
		msgs = append(msgs, fakeMessage(seq, azservicebus.MessageStateDeferred, time.Time{}))
	}
	p := newFakePeeker(msgs...)
	for b.Loop() {
		b.StopTimer()
		l := benchLedger(b)
		b.StartTimer()
		rep, err := l.Reconcile(ctx, p, nil)
		if err != nil || rep.Added != MaxPeek {
			b.Fatalf("reconcile = %+v, %v", rep, err)
		}
	}
}
