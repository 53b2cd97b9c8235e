package holdfast

import (
	"context"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/holdfast-dev/holdfast/emulator"
	"github.com/holdfast-dev/holdfast/emulator/broker"
)

// startOrdersQueue starts an in-process emulator with the queue "orders" (default properties changed by tweak)
// and a client on it; both are closed at cleanup, the client first.
func startOrdersQueue(t *testing.T, tweak func(*broker.QueueProperties)) (*emulator.Server, *azservicebus.Client) {
	t.Helper()
	srv, err := emulator.Start(&emulator.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("emulator Close: %v", err)
		}
	})
	props := broker.DefaultQueueProperties()
	tweak(&props)
	if err := srv.Broker().CreateQueue("orders", props); err != nil {
		t.Fatal(err)
	}
	client, err := azservicebus.NewClientFromConnectionString(srv.ConnectionString(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close(context.Background()) })
	return srv, client
}
