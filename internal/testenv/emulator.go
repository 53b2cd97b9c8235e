package testenv

import (
	"context"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/holdfast-dev/holdfast/emulator"
	"github.com/holdfast-dev/holdfast/emulator/broker"
)

// Emulator starts an in-process Service Bus emulator with one queue of the given properties and an SDK client
// on it (opts nil means the SDK's defaults). At cleanup the client is closed first, then the emulator, and an
// error closing the emulator fails the test.
func Emulator(t testing.TB, queue string, props broker.QueueProperties, opts *azservicebus.ClientOptions) (*emulator.Server, *azservicebus.Client) {
	t.Helper()
	srv, err := emulator.Start(nil)
	if err != nil {
		t.Fatalf("emulator.Start: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("emulator Close: %v", err)
		}
	})
	if err := srv.Broker().CreateQueue(queue, props); err != nil {
		t.Fatalf("CreateQueue %s: %v", queue, err)
	}
	client, err := azservicebus.NewClientFromConnectionString(srv.ConnectionString(), opts)
	if err != nil {
		t.Fatalf("NewClientFromConnectionString: %v", err)
	}
	t.Cleanup(func() { _ = client.Close(context.Background()) })
	return srv, client
}
