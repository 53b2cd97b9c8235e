package holdfast

import (
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/holdfast-dev/holdfast/emulator"
	"github.com/holdfast-dev/holdfast/emulator/broker"
	"github.com/holdfast-dev/holdfast/internal/testenv"
)

// startOrdersQueue starts an in-process emulator with the queue "orders" (default properties changed by tweak)
// and a client on it; both are closed at cleanup, the client first.
func startOrdersQueue(t *testing.T, tweak func(*broker.QueueProperties)) (*emulator.Server, *azservicebus.Client) {
	t.Helper()
	props := broker.DefaultQueueProperties()
	tweak(&props)
	return testenv.Emulator(t, "orders", props, nil)
}
