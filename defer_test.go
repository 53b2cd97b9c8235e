package holdfast

import (
	"context"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/holdfast-dev/holdfast/emulator/broker"
	"github.com/holdfast-dev/holdfast/internal/ledger"
	"github.com/holdfast-dev/holdfast/internal/testenv"
)

// TestDeferGoesThroughTheLedger runs the handler against the emulator and Azurite: a defer outcome writes the
// ledger row, then defers the message (invariant 2).
func TestDeferGoesThroughTheLedger(t *testing.T) {
	tables := testenv.Azurite(t)
	table := testenv.TableName(t)
	srv, client := startOrdersQueue(t, func(p *broker.QueueProperties) {
		p.LockDuration = 2 * time.Second
	})
	sender, err := client.NewSender("orders", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, body := range []string{`{"outcome":"defer","deferSeconds":60}`, `{}`} {
		if err := sender.SendMessage(context.Background(), &azservicebus.Message{Body: []byte(body)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	sender.Close(context.Background())

	vars := map[string]string{"ServiceBusConnection": srv.ConnectionString(), "HOLDFAST_ENTITY": "orders",
		"DeferralStorage": tables, "HOLDFAST_DEFERRAL_TABLE": table, "HOLDFAST_RUN_BUDGET": "20s", "FUNCTIONS_CUSTOMHANDLER_PORT": "0"}
	o, out, _ := testOptions(vars, t.TempDir())
	addr := serveHandler(t, o, out)

	got := fireTimer(t, addr, out)
	if got.ReturnValue["deferred"] != 1 || got.ReturnValue["completed"] != 1 || got.ReturnValue["abandoned"] != 0 {
		t.Fatalf("ReturnValue %v\n%s", got.ReturnValue, out)
	}

	// The ledger indexes the deferred message by its sequence number.
	tc, err := ledger.NewClientFromConnectionString(tables, table, nil)
	if err != nil {
		t.Fatal(err)
	}
	l, err := ledger.New(tc, &ledger.Options{Entity: "orders"})
	if err != nil {
		t.Fatal(err)
	}
	rows, _, err := l.List(context.Background(), 10, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].State != ledger.StateDeferred {
		t.Fatalf("ledger rows %+v", rows)
	}
	r, err := client.NewReceiverForQueue("orders", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(context.Background())
	msgs, err := r.ReceiveDeferredMessages(context.Background(), []int64{rows[0].SequenceNumber}, nil)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("deferred message %d: %d messages, %v", rows[0].SequenceNumber, len(msgs), err)
	}
}
